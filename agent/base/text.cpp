#include "base/text.hpp"

#include <string>

#include "base/errors.hpp"

namespace qscd::agent {

std::size_t utf8_sequence_length(std::string_view text, std::size_t at) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(at);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // the allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // no overlong forms
    if (lead == 0xED) high = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;  // nothing past U+10FFFF
  } else {
    return 0;
  }
  if (at + length > text.size()) return 0;
  if (byte(at + 1) < low || byte(at + 1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(at + i) < 0x80 || byte(at + i) > 0xBF) return 0;
  }
  return length;
}

void require_utf8_text(std::string_view value, std::string_view field, std::string_view what) {
  for (std::size_t at = 0; at < value.size();) {
    if (value[at] == '\0') {
      throw UsageError(std::string(field), std::string(what) + " holds a NUL byte at byte " + std::to_string(at + 1) +
                                               "; PKCS#11 labels and PINs are UTF-8 text");
    }
    const std::size_t length = utf8_sequence_length(value, at);
    if (length == 0) {
      throw UsageError(std::string(field), std::string(what) + " is not UTF-8 (byte " + std::to_string(at + 1) +
                                               "); PKCS#11 labels and PINs are UTF-8 text");
    }
    at += length;
  }
}

}  // namespace qscd::agent
