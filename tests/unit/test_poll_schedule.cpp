// The waiting schedule: quick first looks, growing delays, the caps, --poll-interval, Retry-After.
#include <doctest/doctest.h>

#include "ca/poll_schedule.hpp"

using qscd::agent::looks_until;
using qscd::agent::PollSchedule;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

TEST_CASE("the schedule looks quickly first, then every half of the time waited, within its caps") {
  const PollSchedule schedule;
  CHECK(schedule.next(seconds(0)) == seconds(2));
  CHECK(schedule.next(seconds(60)) == seconds(30));
  CHECK(schedule.next(minutes(50)) == minutes(5));
  CHECK(schedule.next(hours(5)) == minutes(30));
  CHECK(schedule.next(hours(30)) == hours(1));
  CHECK(schedule.next(seconds(10), seconds(40)) == seconds(40));  // the CA's Retry-After
}

TEST_CASE("the call counts docs/api.md gives") {
  const PollSchedule schedule;
  CHECK(looks_until(schedule, seconds(10)).size() == 6);
  CHECK(looks_until(schedule, minutes(10)).size() == 16);
  CHECK(looks_until(schedule, hours(72)).size() == 120);
  // Every issuance is noticed at most half as late again as it happened (2 s at the start).
  for (const seconds issued : {seconds(1), seconds(7), seconds(180), seconds(2400), seconds(72000)}) {
    const seconds noticed = looks_until(schedule, issued).back();
    CHECK(noticed - issued <= std::max(seconds(2), issued / 2));
  }
}

TEST_CASE("--poll-interval is the cap, whatever the time waited") {
  PollSchedule capped;
  capped.cap = seconds(1);
  CHECK(capped.next(seconds(0)) == seconds(1));
  CHECK(capped.next(hours(48)) == seconds(1));
  capped.cap = minutes(10);
  CHECK(capped.next(hours(48)) == minutes(10));
}
