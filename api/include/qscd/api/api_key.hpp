#pragma once
// The CertCentral API key (X-DC-DEVKEY): one heap buffer wiped with
// OPENSSL_cleanse when it goes; never converted to std::string, never logged.
#include <array>
#include <cstddef>
#include <memory>
#include <span>

namespace qscd::api {

class ApiKey {
 public:
  // Copies the bytes. Throws ConfigError when empty, longer than 1 KiB or not
  // printable ASCII without spaces (a key with CR/LF would smuggle headers).
  explicit ApiKey(std::span<const unsigned char> bytes);
  ~ApiKey();
  ApiKey(ApiKey&& other) noexcept;
  ApiKey& operator=(ApiKey&& other) noexcept;
  ApiKey(const ApiKey&) = delete;
  ApiKey& operator=(const ApiKey&) = delete;

  [[nodiscard]] std::span<const unsigned char> bytes() const noexcept { return {data_.get(), size_}; }
  // SHA-256 of the key: names the key (for the shared rate limiter) without holding it.
  [[nodiscard]] std::array<unsigned char, 32> fingerprint() const;

 private:
  void wipe() noexcept;
  std::unique_ptr<unsigned char[]> data_;
  std::size_t size_ = 0;
};

}  // namespace qscd::api
