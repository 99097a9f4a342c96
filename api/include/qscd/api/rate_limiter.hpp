#pragma once
// Time for the client, injectable so tests of backoff and limits do not sleep,
// and the client-side limiter that keeps a process under CertCentral's limits.
#include <array>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

namespace qscd::api {

class Clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;
  virtual ~Clock() = default;
  [[nodiscard]] virtual time_point now() const = 0;
  virtual void sleep_for(duration how_long) = 0;
};

// The steady clock and real sleeps.
std::shared_ptr<Clock> system_clock();

struct RateWindow {
  int max_requests;
  std::chrono::milliseconds window;
};

// Sliding windows: a request may start when fewer than max_requests started
// within the last `window`, for every window. Thread-safe; waiting threads
// sleep without holding the lock.
class RateLimiter {
 public:
  RateLimiter(std::vector<RateWindow> windows, std::shared_ptr<Clock> clock);
  // Blocks (through the clock) until a request may start, counts it and
  // returns the start time it counted.
  Clock::time_point acquire();

  // CertCentral's documented limits (100 / 5 s and 1000 / 3 min, rolling, per
  // key), each window widened by a margin for network jitter.
  static std::vector<RateWindow> certcentral_windows();
  // One limiter per API key fingerprint and process, shared by every client.
  static std::shared_ptr<RateLimiter> shared_for(const std::array<unsigned char, 32>& key_fingerprint);

 private:
  std::vector<RateWindow> windows_;
  std::shared_ptr<Clock> clock_;
  std::mutex mutex_;
  std::deque<Clock::time_point> starts_;  // oldest first, trimmed to the longest window
};

}  // namespace qscd::api
