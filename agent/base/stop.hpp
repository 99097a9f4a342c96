#pragma once
// SIGINT and SIGTERM for the commands that run jobs: the first one asks the run to stop at the
// next safe point (the current PKCS#11 call and journal commit finish, a wait or a retry pause
// ends at once, an HTTP transfer is abandoned as a kill would leave it); a second one of either
// ends the process at once, which the journal survives as it survives SIGKILL. The watch daemon
// reads the same signals through its signalfd instead (it blocks them, so these handlers never run).
#include <chrono>
#include <string>

#include "base/errors.hpp"

namespace qscd::agent {

// Installs the handlers (idempotent). Called by main before a command runs.
void install_stop_handlers();

// True once SIGINT or SIGTERM arrived. Async-signal-safe to read.
[[nodiscard]] bool stop_requested() noexcept;
// "SIGINT" or "SIGTERM"; "" before one arrived.
[[nodiscard]] std::string stop_signal_name();

// Sleeps for `duration` unless a stop is asked for before or during it; false when it ended
// early for a stop.
bool sleep_unless_stopped(std::chrono::milliseconds duration);

// Blocks until `fd` can be read (or is at its end or in error) or a stop is asked for; false
// for a stop. A signal that came just before the wait is not missed (the self-pipe stays readable).
bool wait_readable_unless_stopped(int fd);

// Thrown where a run gives up because a stop was asked for (a prompt that was reading the PIN,
// a CertCentral call abandoned). main prints "stopped" for it, not an error.
class Stopped : public AgentError {
 public:
  explicit Stopped(const std::string& where);
};

// Tests only: forget a stop that was asked for.
void reset_stop_for_tests();

}  // namespace qscd::agent
