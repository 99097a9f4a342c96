#pragma once
// When to look at an order that is not issued yet: a tenth of the time waited so far, at least
// 3 s, at most 1 h. An issuance is noticed within max(3 s, 10 % of the time it took); the price
// is more looks in the first minutes than a faster-growing schedule (docs/api.md has the counts,
// docs/performance.md the trade-off). `--poll-interval` replaces the 1 h cap.
#include <chrono>
#include <optional>
#include <vector>

namespace qscd::agent {

struct PollSchedule {
  // --poll-interval: the longest delay, whatever the time waited. nullopt: default_cap.
  std::optional<std::chrono::seconds> cap;

  static constexpr std::chrono::seconds min_delay{3};
  static constexpr std::chrono::seconds default_cap{std::chrono::hours(1)};

  // The delay before the next look, for an order waited on for `waited` so far. Never shorter
  // than `at_least` (the CA's Retry-After).
  [[nodiscard]] std::chrono::seconds next(std::chrono::seconds waited,
                                          std::chrono::seconds at_least = std::chrono::seconds::zero()) const;
  // The longest delay: --poll-interval (at least 1 s) or default_cap.
  [[nodiscard]] std::chrono::seconds longest() const;
};

// The times of every look (the first at 0) until the first look at or after `issued_at`.
std::vector<std::chrono::seconds> looks_until(const PollSchedule& schedule, std::chrono::seconds issued_at);

}  // namespace qscd::agent
