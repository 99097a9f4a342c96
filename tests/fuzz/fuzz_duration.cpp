// Durations (--within, --timeout, renew.check_every, ...: agent/base/duration). Anything that
// parses must be within ten years and survive a round trip through format_duration; anything
// else must be a UsageError.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "base/duration.hpp"
#include "base/errors.hpp"

using namespace qscd::agent;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::chrono::seconds parsed{};
  try {
    parsed = parse_duration(std::string_view(reinterpret_cast<const char*>(data), size), "--fuzz");
  } catch (const UsageError&) {
    return 0;
  }
  if (parsed.count() < 0 || parsed > std::chrono::seconds(10LL * 366 * 86400)) std::abort();
  (void)format_duration(parsed);
  return 0;
}
