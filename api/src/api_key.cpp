#include "qscd/api/api_key.hpp"

#include <openssl/evp.h>

#include <algorithm>

#include "qscd/api/error.hpp"

namespace qscd::api {

namespace {

std::span<const unsigned char> checked(std::span<const unsigned char> bytes) {
  if (bytes.empty()) throw ConfigError("API key", "is empty");
  if (bytes.size() > 1024) throw ConfigError("API key", "is longer than 1024 bytes");
  if (!std::all_of(bytes.begin(), bytes.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; })) {
    throw ConfigError("API key", "must be printable ASCII without spaces or line breaks");
  }
  return bytes;
}

}  // namespace

ApiKey::ApiKey(std::span<const unsigned char> bytes) : key_(SecretBytes::copy_of(checked(bytes))) {}

std::array<unsigned char, 32> ApiKey::fingerprint() const {
  std::array<unsigned char, 32> digest{};
  unsigned int length = 0;
  const auto key = key_.bytes();
  EVP_Digest(key.data(), key.size(), digest.data(), &length, EVP_sha256(), nullptr);
  return digest;
}

}  // namespace qscd::api
