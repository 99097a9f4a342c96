// Issue 18, benchmark 4: the waiting schedule's looks for an order issued after 10 s, 10 min and
// 3 days, counted from the agent's own schedule code (agent/ca/poll_schedule), with how late each
// issuance is noticed and the worst lateness of any issuance time up to 3 days.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "ca/poll_schedule.hpp"

using qscd::agent::looks_until;
using qscd::agent::PollSchedule;
using std::chrono::seconds;

namespace {
seconds allowed(seconds issued) { return std::max(seconds(3), issued / 10); }
}  // namespace

int main() {
  const PollSchedule schedule;
  struct Case {
    const char* name;
    seconds issued;
    std::size_t target;
  };
  const Case cases[] = {{"10 s", seconds(10), 6}, {"10 min", seconds(600), 15}, {"3 days", seconds(259200), 150}};
  std::printf("%-8s %6s %7s %14s %16s %8s\n", "issued", "looks", "target", "noticed late", "allowed late", "result");
  for (const Case& c : cases) {
    const std::vector<seconds> looks = looks_until(schedule, c.issued);
    const seconds late = looks.back() - c.issued;
    const bool met = looks.size() <= c.target && late <= allowed(c.issued);
    std::printf("%-8s %6zu %7zu %12llds %14llds %8s\n", c.name, looks.size(), c.target,
                static_cast<long long>(late.count()), static_cast<long long>(allowed(c.issued).count()),
                met ? "met" : "NOT met");
  }
  // Every issuance second up to 3 days: the worst lateness against max(3 s, 10 %).
  const std::vector<seconds> looks = looks_until(schedule, seconds(259200));
  double worst = 0;
  seconds worst_at(0);
  auto look = looks.begin();
  for (seconds t(1); t <= seconds(259200); ++t) {
    while (*look < t) ++look;
    const double share = static_cast<double>((*look - t).count()) / static_cast<double>(allowed(t).count());
    if (share > worst) worst = share, worst_at = t;
  }
  std::printf("worst lateness over every issuance second up to 3 days: %.3f of the allowed (at %llds)\n", worst,
              static_cast<long long>(worst_at.count()));
  // The most looks of one order in any 5 s (the client's RateLimiter bounds all calls together).
  std::size_t most = 0;
  for (std::size_t i = 0; i < looks.size(); ++i) {
    std::size_t j = i;
    while (j < looks.size() && looks[j] - looks[i] < seconds(5)) ++j;
    most = std::max(most, j - i);
  }
  std::printf("most looks of one order in any 5 s: %zu (limit 100 for all calls)\n", most);
  std::printf("first looks (s):");
  for (std::size_t i = 0; i < 14 && i < looks.size(); ++i) std::printf(" %lld", static_cast<long long>(looks[i].count()));
  std::printf(" ...\n");
  return 0;
}
