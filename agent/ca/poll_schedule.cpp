#include "ca/poll_schedule.hpp"

#include <algorithm>

namespace qscd::agent {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

seconds PollSchedule::cap_after(seconds waited) const {
  if (cap) return std::max(*cap, seconds(1));
  if (waited < hours(1)) return minutes(5);
  if (waited < hours(24)) return minutes(30);
  return hours(1);
}

seconds PollSchedule::next(seconds waited, seconds at_least) const {
  // Half the time waited: an issuance is noticed at most half as late again as it happened.
  const seconds grown = std::max(first_delay, waited / 2);
  return std::max(std::min(grown, cap_after(waited)), at_least);
}

std::vector<seconds> looks_until(const PollSchedule& schedule, seconds issued_at) {
  std::vector<seconds> looks{seconds(0)};
  while (looks.back() < issued_at) looks.push_back(looks.back() + schedule.next(looks.back()));
  return looks;
}

}  // namespace qscd::agent
