#pragma once
// SIGTERM, SIGINT and SIGHUP for the daemon, blocked and read from a signalfd: nothing runs in a
// handler. Made before any thread starts, so every thread of the process leaves them to this one.
#include <signal.h>

#include <vector>

namespace qscd::agent {

class Signals {
 public:
  Signals();
  ~Signals();
  Signals(const Signals&) = delete;
  Signals& operator=(const Signals&) = delete;

  [[nodiscard]] int fd() const { return fd_; }
  // The signals that arrived, in order; none when none did.
  [[nodiscard]] std::vector<int> read() const;

 private:
  sigset_t set_{};
  sigset_t old_{};
  int fd_ = -1;
};

}  // namespace qscd::agent
