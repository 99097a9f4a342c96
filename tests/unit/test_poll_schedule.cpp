// The waiting schedule: a tenth of the time waited, at least 3 s, at most 1 h; --poll-interval,
// Retry-After.
#include <doctest/doctest.h>

#include <algorithm>

#include "ca/poll_schedule.hpp"

using qscd::agent::looks_until;
using qscd::agent::PollSchedule;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

TEST_CASE("the schedule looks every 3 s first, then every tenth of the time waited, at most hourly") {
  const PollSchedule schedule;
  CHECK(schedule.next(seconds(0)) == seconds(3));
  CHECK(schedule.next(seconds(29)) == seconds(3));
  CHECK(schedule.next(seconds(60)) == seconds(6));
  CHECK(schedule.next(minutes(50)) == minutes(5));
  CHECK(schedule.next(hours(5)) == minutes(30));
  CHECK(schedule.next(hours(30)) == hours(1));
  CHECK(schedule.next(seconds(10), seconds(40)) == seconds(40));  // the CA's Retry-After
}

TEST_CASE("the call counts docs/api.md gives") {
  const PollSchedule schedule;
  CHECK(looks_until(schedule, seconds(10)).size() == 5);
  CHECK(looks_until(schedule, minutes(10)).size() == 44);
  CHECK(looks_until(schedule, hours(72)).size() == 149);
}

TEST_CASE("every issuance within 3 days is noticed within max(3 s, 10 % of the time it took)") {
  const PollSchedule schedule;
  // The looks up to 3 days once; an issuance at t is noticed at the first look at or after t.
  const std::vector<seconds> looks = looks_until(schedule, hours(72));
  auto look = looks.begin();
  for (seconds issued(1); issued <= hours(72); ++issued) {
    while (*look < issued) ++look;
    REQUIRE(*look - issued <= std::max(seconds(3), issued / 10));
  }
  // No two looks closer than 3 s: at most 2 in any 5 s.
  for (std::size_t i = 1; i < looks.size(); ++i) REQUIRE(looks[i] - looks[i - 1] >= seconds(3));
}

TEST_CASE("--poll-interval is the cap, whatever the time waited") {
  PollSchedule capped;
  capped.cap = seconds(1);
  CHECK(capped.next(seconds(0)) == seconds(1));
  CHECK(capped.next(hours(48)) == seconds(1));
  capped.cap = minutes(10);
  CHECK(capped.next(hours(48)) == minutes(10));
  capped.cap = hours(3);
  CHECK(capped.next(hours(48)) == hours(3));
}
