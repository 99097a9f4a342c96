#pragma once
// Secrets (PINs, API keys): held in one fixed buffer that is wiped with
// OPENSSL_cleanse on every path, never in std::string, never on argv, never logged.
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace qscd::agent {

class SecretBuffer {
 public:
  static constexpr std::size_t max_size = 4096;

  SecretBuffer();
  ~SecretBuffer();
  SecretBuffer(SecretBuffer&& other) noexcept;
  SecretBuffer& operator=(SecretBuffer&& other) noexcept;
  SecretBuffer(const SecretBuffer&) = delete;
  SecretBuffer& operator=(const SecretBuffer&) = delete;

  // Appends one byte; throws UsageError past max_size. Never reallocates, so
  // no unwiped copy is ever left behind.
  void push_back(unsigned char byte);
  void pop_back() noexcept;
  void clear() noexcept;

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::span<const unsigned char> bytes() const noexcept { return {data_.get(), size_}; }
  [[nodiscard]] std::string_view view() const noexcept;

 private:
  std::unique_ptr<unsigned char[]> data_;
  std::size_t size_ = 0;
};

// Reads a secret from a source spec of product.md: prompt, pinentry, fd:N,
// file:PATH (refused when group/other may read or write it), env:NAME.
// `what` names the secret in prompts and errors ("user PIN", "API key").
// `option` is the flag the spec came from, named in UsageErrors.
// Throws UsageError (exit 2) for a bad spec, an unsafe file or an empty secret.
SecretBuffer read_secret(std::string_view spec, std::string_view what, std::string_view option);

// The spec to use when none is given: prompt on a terminal, otherwise a
// UsageError telling which option to set.
std::string default_secret_spec(std::string_view option);

}  // namespace qscd::agent
