#include "base/duration.hpp"

#include <charconv>
#include <cstdio>

#include "base/errors.hpp"

namespace qscd::agent {

std::chrono::seconds parse_duration(std::string_view text, std::string_view option) {
  const std::string rule = "must be seconds or a whole number with s, m, h or d (e.g. 90, 30s, 15m, 2h, 1d), not \"" + std::string(text) + "\"";
  if (text.empty()) throw UsageError(std::string(option), rule);
  std::int64_t unit = 1;
  std::string_view digits = text;
  switch (text.back()) {
    case 's': unit = 1; digits.remove_suffix(1); break;
    case 'm': unit = 60; digits.remove_suffix(1); break;
    case 'h': unit = 3600; digits.remove_suffix(1); break;
    case 'd': unit = 86400; digits.remove_suffix(1); break;
    default: break;
  }
  std::int64_t value = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (digits.empty() || error != std::errc() || end != digits.data() + digits.size() || value < 0) {
    throw UsageError(std::string(option), rule);
  }
  constexpr std::int64_t ten_years = 3650LL * 86400;
  if (value > ten_years / unit) throw UsageError(std::string(option), "must be at most ten years");
  return std::chrono::seconds(value * unit);
}

std::string format_duration(std::chrono::seconds duration) {
  long long total = duration.count();
  long long days = total / 86400, hours = total % 86400 / 3600, minutes = total % 3600 / 60, seconds = total % 60;
  char buffer[48];
  if (days > 0) {
    std::snprintf(buffer, sizeof buffer, "%lldd%02lldh", days, hours);
  } else if (hours > 0) {
    std::snprintf(buffer, sizeof buffer, "%lldh%02lldm%02llds", hours, minutes, seconds);
  } else if (minutes > 0) {
    std::snprintf(buffer, sizeof buffer, "%lldm%02llds", minutes, seconds);
  } else {
    std::snprintf(buffer, sizeof buffer, "%llds", seconds);
  }
  return buffer;
}

}  // namespace qscd::agent
