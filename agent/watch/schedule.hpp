#pragma once
// When the daemon looks again: at a job waiting on the CA, and at the renewals.
#include <chrono>
#include <random>
#include <string>

namespace qscd::agent {

// A job the daemon will run again: the token it is on, when, and after a failed attempt the delay
// before the next one.
struct PendingJob {
  std::string serial;
  std::chrono::steady_clock::time_point due;
  std::chrono::seconds backoff{0};
};

// renew.check_every plus up to a tenth of it (at most an hour) of random delay, so a fleet of
// daemons started together does not ask the CA at once.
std::chrono::seconds renewal_check_delay(std::chrono::seconds every, std::mt19937_64& random);

}  // namespace qscd::agent
