#include "ca/poll_schedule.hpp"

#include <algorithm>

namespace qscd::agent {

using std::chrono::seconds;

seconds PollSchedule::longest() const { return cap ? std::max(*cap, seconds(1)) : default_cap; }

seconds PollSchedule::next(seconds waited, seconds at_least) const {
  // A tenth of the time waited: an issuance that happened just after a look is noticed at most
  // 10 % later than it happened (3 s in the first 30 s).
  const seconds grown = std::max(min_delay, waited / 10);
  return std::max(std::min(grown, longest()), at_least);
}

std::vector<seconds> looks_until(const PollSchedule& schedule, seconds issued_at) {
  std::vector<seconds> looks{seconds(0)};
  while (looks.back() < issued_at) looks.push_back(looks.back() + schedule.next(looks.back()));
  return looks;
}

}  // namespace qscd::agent
