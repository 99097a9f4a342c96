#include "base/text.hpp"

#include <algorithm>
#include <string>
#include <vector>

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

namespace {

// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
// neighbours each cost one, case ignored.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); };
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) && lower(a[i - 2]) == lower(b[j - 1])) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::string closest_name(std::string_view given, const std::vector<std::string_view>& known) {
  // A name this long is no typo of a short key: keep the work bounded.
  if (given.size() > 64) return {};
  const std::size_t allowed = std::max<std::size_t>(2, given.size() / 3);
  std::string best;
  std::size_t best_distance = allowed + 1;
  for (std::string_view name : known) {
    const std::size_t distance = edit_distance(given, name);
    if (distance < best_distance) {
      best_distance = distance;
      best = std::string(name);
    }
  }
  return best;
}

std::string did_you_mean(std::string_view given, const std::vector<std::string_view>& known) {
  const std::string closest = closest_name(given, known);
  return closest.empty() ? std::string() : "; did you mean " + closest + "?";
}

std::string joined(const std::vector<std::string_view>& names) {
  std::string out;
  for (std::string_view name : names) out += (out.empty() ? "" : ", ") + std::string(name);
  return out;
}

}  // namespace qscd::agent
