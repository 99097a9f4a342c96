#include "qscd/api/secret_bytes.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <utility>

namespace qscd::api {

SecretBytes::SecretBytes(std::size_t capacity)
    : data_(capacity > 0 ? std::make_unique<unsigned char[]>(capacity) : nullptr), capacity_(capacity) {}

SecretBytes SecretBytes::copy_of(std::span<const unsigned char> bytes) {
  SecretBytes copy(bytes.size());
  std::copy(bytes.begin(), bytes.end(), copy.data_.get());
  copy.size_ = bytes.size();
  return copy;
}

SecretBytes::~SecretBytes() { clear(); }

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(std::move(other.data_)),
      capacity_(std::exchange(other.capacity_, 0)),
      size_(std::exchange(other.size_, 0)) {}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    clear();
    std::swap(data_, other.data_);
    std::swap(capacity_, other.capacity_);
    std::swap(size_, other.size_);  // other.size_ is now 0: this buffer was just wiped
  }
  return *this;
}

bool SecretBytes::push_back(unsigned char byte) noexcept {
  if (size_ >= capacity_) return false;
  data_[size_++] = byte;
  return true;
}

void SecretBytes::pop_back() noexcept {
  if (size_ > 0) OPENSSL_cleanse(&data_[--size_], 1);
}

void SecretBytes::clear() noexcept {
  if (data_) OPENSSL_cleanse(data_.get(), capacity_);
  size_ = 0;
}

std::string_view SecretBytes::view() const noexcept {
  return {reinterpret_cast<const char*>(data_.get()), size_};
}

}  // namespace qscd::api
