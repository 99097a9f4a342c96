#pragma once
// The one wiped-buffer type for secrets (API keys, PINs): one heap buffer of a
// fixed capacity, allocated once and never reallocated, wiped with
// OPENSSL_cleanse when cleared, destroyed or overwritten by a move. No copy
// constructor, no conversion to std::string; never logged.
#include <cstddef>
#include <memory>
#include <span>
#include <string_view>

namespace qscd::api {

class SecretBytes {
 public:
  static constexpr std::size_t default_capacity = 4096;

  // An empty secret that can hold up to `capacity` bytes.
  explicit SecretBytes(std::size_t capacity = default_capacity);
  // An explicit copy of `bytes`, with exactly their size as capacity.
  [[nodiscard]] static SecretBytes copy_of(std::span<const unsigned char> bytes);

  ~SecretBytes();
  // Moving hands the buffer over: nothing is copied and the source is left
  // empty with no capacity. Move assignment first wipes the buffer it
  // replaces, which the source then keeps (empty).
  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  // Appends one byte; false (and nothing changed) when the buffer is full.
  // The caller decides what a too-long secret means.
  [[nodiscard]] bool push_back(unsigned char byte) noexcept;
  // Removes the last byte and wipes its place.
  void pop_back() noexcept;
  // Wipes the whole buffer; the capacity stays.
  void clear() noexcept;

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::span<const unsigned char> bytes() const noexcept { return {data_.get(), size_}; }
  [[nodiscard]] std::string_view view() const noexcept;

 private:
  std::unique_ptr<unsigned char[]> data_;
  std::size_t capacity_ = 0;
  std::size_t size_ = 0;
};

}  // namespace qscd::api
