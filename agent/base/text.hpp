#pragma once
// Text the agent hands to a token: PKCS#11 labels and PINs are UTF-8 (PKCS#11 3.0, 2.1), and a
// NUL inside one is cut off by C code on the way.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace qscd::agent {

// The length of the UTF-8 sequence at `text[at]`, or 0 when it is not a valid one (RFC 3629: no
// overlong forms, no surrogates, nothing past U+10FFFF).
std::size_t utf8_sequence_length(std::string_view text, std::size_t at);

// Throws UsageError(field, ...) naming the first bad byte's position when `value` is not UTF-8
// (no overlong forms, no surrogates, nothing past U+10FFFF) or holds a NUL byte. `what` names
// the value in the message ("the label", "the new PIN"); the value itself is never repeated.
void require_utf8_text(std::string_view value, std::string_view field, std::string_view what);

// The known name closest to a mistyped one (edit distance with transpositions), when it is
// close enough to be a typo: "base_ulr" -> "base_url". Empty when none is.
std::string closest_name(std::string_view given, const std::vector<std::string_view>& known);
// "; did you mean base_url?" or "".
std::string did_you_mean(std::string_view given, const std::vector<std::string_view>& known);
// "a, b, c".
std::string joined(const std::vector<std::string_view>& names);

}  // namespace qscd::agent
