// The client-side limiter: sliding windows on a fake clock, then a real burst
// of 300 calls checked against the simulator's audit timestamps.
#include <doctest/doctest.h>

#include <algorithm>
#include <ctime>
#include <thread>

#include "api_fixture.hpp"

using namespace qscd;
using test::CertCentralSim;
using test::FakeClock;

namespace {

// Largest number of starts within any window of `width`, over sorted times.
template <class T, class D>
long busiest_window(const std::vector<T>& sorted, D width) {
  long best = 0;
  std::size_t first = 0;
  for (std::size_t last = 0; last < sorted.size(); ++last) {
    while (sorted[last] - sorted[first] >= width) ++first;
    best = std::max(best, static_cast<long>(last - first + 1));
  }
  return best;
}

// "2026-11-22T04:07:11.499Z" -> milliseconds since the epoch.
long long audit_ms(const std::string& time) {
  std::tm tm{};
  strptime(time.substr(0, 19).c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  return static_cast<long long>(timegm(&tm)) * 1000 + std::stoi(time.substr(20, 3));
}

}  // namespace

TEST_CASE("sliding windows: 100 per 5 s and 1000 per 3 min, across threads") {
  auto clock = std::make_shared<FakeClock>();
  api::RateLimiter limiter(api::RateLimiter::certcentral_windows(), clock);
  std::vector<api::Clock::time_point> starts;
  std::mutex mutex;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 300; ++i) {
        auto start = limiter.acquire();
        std::lock_guard lock(mutex);
        starts.push_back(start);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::sort(starts.begin(), starts.end());
  REQUIRE(starts.size() == 1200);
  CHECK(busiest_window(starts, std::chrono::seconds(5)) <= 100);
  CHECK(busiest_window(starts, std::chrono::minutes(3)) <= 1000);
  // It does not hold back more than it must: 1200 starts need just over 3 minutes.
  CHECK(starts.back() - starts.front() < std::chrono::minutes(4));
}

TEST_CASE("one limiter per API key within the process") {
  auto a = test::key_from("key-a");
  auto b = test::key_from("key-b");
  CHECK(api::RateLimiter::shared_for(a.fingerprint()) == api::RateLimiter::shared_for(test::key_from("key-a").fingerprint()));
  CHECK(api::RateLimiter::shared_for(a.fingerprint()) != api::RateLimiter::shared_for(b.fingerprint()));
}

TEST_CASE("a real burst of 300 calls stays within CertCentral's limits") {
  CertCentralSim sim;  // the simulator also answers 429 past the limits
  auto options = test::options_for(sim);
  options.limiter = std::make_shared<api::RateLimiter>(api::RateLimiter::certcentral_windows(), api::system_clock());
  api::Client first(options, test::key_from(CertCentralSim::api_key));
  api::Client second(options, test::key_from(CertCentralSim::api_key));  // two jobs, one key, one limiter
  auto started = std::chrono::steady_clock::now();
  int theirs = 0;
  std::thread other([&] {
    for (int i = 0; i < 150; ++i) theirs += second.list_organizations().ok() ? 1 : 0;
  });
  int mine = 0;
  for (int i = 0; i < 150; ++i) mine += first.list_organizations().ok() ? 1 : 0;
  other.join();
  CHECK(mine + theirs == 300);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(30));
  std::vector<long long> times;
  for (const auto& line : sim.audit()) {
    CHECK(line["status"] == 200);
    times.push_back(audit_ms(line["time"]));
  }
  std::sort(times.begin(), times.end());
  CHECK(times.size() == 300);
  CHECK(busiest_window(times, 5000LL) <= 100);
}
