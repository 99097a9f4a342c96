#pragma once
// When to look at an order that is not issued yet. Quick first looks (CertCentral often issues
// within seconds), then a delay that grows with the time already waited, capped: 5 minutes in
// the first hour, 30 minutes in the first day, an hour after that. `--poll-interval` replaces
// the caps. docs/api.md has the schedule and its call counts.
#include <chrono>
#include <optional>
#include <vector>

namespace qscd::agent {

struct PollSchedule {
  // --poll-interval: the longest delay, whatever the time waited. nullopt: the default caps.
  std::optional<std::chrono::seconds> cap;

  static constexpr std::chrono::seconds first_delay{2};

  // The delay before the next look, for an order waited on for `waited` so far. Never shorter
  // than `at_least` (the CA's Retry-After).
  [[nodiscard]] std::chrono::seconds next(std::chrono::seconds waited,
                                          std::chrono::seconds at_least = std::chrono::seconds::zero()) const;
  // The cap in force after `waited`.
  [[nodiscard]] std::chrono::seconds cap_after(std::chrono::seconds waited) const;
};

// The times of every look (the first at 0) until the first look at or after `issued_at`.
std::vector<std::chrono::seconds> looks_until(const PollSchedule& schedule, std::chrono::seconds issued_at);

}  // namespace qscd::agent
