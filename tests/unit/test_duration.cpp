#include <doctest/doctest.h>

#include "base/duration.hpp"
#include "base/errors.hpp"

using qscd::agent::format_duration;
using qscd::agent::parse_duration;
using qscd::agent::UsageError;
using std::chrono::seconds;

TEST_CASE("durations: seconds, or a whole number with s, m, h or d") {
  CHECK(parse_duration("90", "--timeout") == seconds(90));
  CHECK(parse_duration("0", "--timeout") == seconds(0));
  CHECK(parse_duration("30s", "--timeout") == seconds(30));
  CHECK(parse_duration("15m", "--timeout") == seconds(900));
  CHECK(parse_duration("2h", "--timeout") == seconds(7200));
  CHECK(parse_duration("1d", "--timeout") == seconds(86400));
  for (const char* bad : {"", "s", "-5", "1.5h", "10w", "h1", "1 h", "5ms"}) {
    CHECK_THROWS_AS(parse_duration(bad, "--timeout"), UsageError);
  }
  CHECK_THROWS_WITH_AS(parse_duration("soon", "--timeout"),
                       "--timeout: must be seconds or a whole number with s, m, h or d (e.g. 90, 30s, 15m, 2h, 1d), not \"soon\"", UsageError);
  CHECK_THROWS_WITH_AS(parse_duration("4000d", "--timeout"), "--timeout: must be at most ten years", UsageError);
  CHECK_THROWS_AS(parse_duration("99999999999999999999", "--timeout"), UsageError);
}

TEST_CASE("durations print compactly for progress lines") {
  CHECK(format_duration(seconds(45)) == "45s");
  CHECK(format_duration(seconds(125)) == "2m05s");
  CHECK(format_duration(seconds(3610)) == "1h00m10s");
  CHECK(format_duration(seconds(3 * 86400 + 7200)) == "3d02h");
}
