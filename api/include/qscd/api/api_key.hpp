#pragma once
// The CertCentral API key (X-DC-DEVKEY), held in a SecretBytes (wiped with
// OPENSSL_cleanse when it goes); never converted to std::string, never logged.
#include <array>
#include <span>

#include "qscd/api/secret_bytes.hpp"

namespace qscd::api {

class ApiKey {
 public:
  // Copies the bytes. Throws ConfigError when empty, longer than 1 KiB or not
  // printable ASCII without spaces (a key with CR/LF would smuggle headers).
  explicit ApiKey(std::span<const unsigned char> bytes);

  [[nodiscard]] std::span<const unsigned char> bytes() const noexcept { return key_.bytes(); }
  // SHA-256 of the key: names the key (for the shared rate limiter) without holding it.
  [[nodiscard]] std::array<unsigned char, 32> fingerprint() const;

 private:
  SecretBytes key_;
};

}  // namespace qscd::api
