#include "qscd/api/rate_limiter.hpp"

#include <algorithm>
#include <map>
#include <thread>

namespace qscd::api {

namespace {

class SteadyClock final : public Clock {
 public:
  [[nodiscard]] time_point now() const override { return std::chrono::steady_clock::now(); }
  void sleep_for(duration how_long) override { std::this_thread::sleep_for(how_long); }
};

}  // namespace

std::shared_ptr<Clock> system_clock() {
  static auto clock = std::make_shared<SteadyClock>();
  return clock;
}

RateLimiter::RateLimiter(std::vector<RateWindow> windows, std::shared_ptr<Clock> clock)
    : windows_(std::move(windows)), clock_(std::move(clock)) {}

Clock::time_point RateLimiter::acquire() {
  std::chrono::milliseconds longest{0};
  for (const auto& w : windows_) longest = std::max(longest, w.window);
  for (;;) {
    Clock::duration wait{0};
    {
      std::lock_guard lock(mutex_);
      auto now = clock_->now();
      while (!starts_.empty() && now - starts_.front() >= longest) starts_.pop_front();
      for (const auto& w : windows_) {
        // Starts within this window are the newest ones: count from the back.
        auto first_inside = std::find_if(starts_.begin(), starts_.end(),
                                          [&](const Clock::time_point& t) { return now - t < w.window; });
        auto inside = std::distance(first_inside, starts_.end());
        if (inside >= w.max_requests) {
          // Wait until the start that makes the window full has left it.
          auto blocking = *(starts_.end() - w.max_requests);
          wait = std::max(wait, blocking + w.window - now);
        }
      }
      if (wait <= Clock::duration::zero()) {
        starts_.push_back(now);
        return now;
      }
    }
    clock_->sleep_for(wait);
  }
}

std::vector<RateWindow> RateLimiter::certcentral_windows() {
  using std::chrono::milliseconds;
  return {{100, milliseconds(5000 + 250)}, {1000, milliseconds(180000 + 1000)}};
}

std::shared_ptr<RateLimiter> RateLimiter::shared_for(const std::array<unsigned char, 32>& key_fingerprint) {
  static std::mutex registry_mutex;
  // Kept for the life of the process so a later client of the same key sees the history.
  static std::map<std::array<unsigned char, 32>, std::shared_ptr<RateLimiter>> registry;
  std::lock_guard lock(registry_mutex);
  auto& slot = registry[key_fingerprint];
  if (!slot) slot = std::make_shared<RateLimiter>(certcentral_windows(), system_clock());
  return slot;
}

}  // namespace qscd::api
