#pragma once
// Durations on the command line (product.md): seconds, or a whole number with
// s, m, h or d ("90", "30s", "15m", "2h", "1d").
#include <chrono>
#include <string>
#include <string_view>

namespace qscd::agent {

// Throws UsageError(option, rule) for anything else (empty, negative,
// fractions, unknown units, more than ten years).
std::chrono::seconds parse_duration(std::string_view text, std::string_view option);

// "45s", "2m05s", "1h00m10s", "3d02h": for progress lines.
std::string format_duration(std::chrono::seconds duration);

}  // namespace qscd::agent
