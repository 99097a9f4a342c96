#include "qscd/api/api_key.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>

#include "qscd/api/error.hpp"

namespace qscd::api {

ApiKey::ApiKey(std::span<const unsigned char> bytes) {
  if (bytes.empty()) throw ConfigError("API key", "is empty");
  if (bytes.size() > 1024) throw ConfigError("API key", "is longer than 1024 bytes");
  if (!std::all_of(bytes.begin(), bytes.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; })) {
    throw ConfigError("API key", "must be printable ASCII without spaces or line breaks");
  }
  data_ = std::make_unique<unsigned char[]>(bytes.size());
  std::copy(bytes.begin(), bytes.end(), data_.get());
  size_ = bytes.size();
}

ApiKey::~ApiKey() { wipe(); }

ApiKey::ApiKey(ApiKey&& other) noexcept : data_(std::move(other.data_)), size_(other.size_) { other.size_ = 0; }

ApiKey& ApiKey::operator=(ApiKey&& other) noexcept {
  if (this != &other) {
    wipe();
    data_ = std::move(other.data_);
    size_ = other.size_;
    other.size_ = 0;
  }
  return *this;
}

void ApiKey::wipe() noexcept {
  if (data_ && size_ > 0) OPENSSL_cleanse(data_.get(), size_);
  size_ = 0;
}

std::array<unsigned char, 32> ApiKey::fingerprint() const {
  std::array<unsigned char, 32> digest{};
  unsigned int length = 0;
  EVP_Digest(data_.get(), size_, digest.data(), &length, EVP_sha256(), nullptr);
  return digest;
}

}  // namespace qscd::api
