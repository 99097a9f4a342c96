#include "base/stop.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <algorithm>
#include <mutex>
#include <string>

namespace qscd::agent {

namespace {

volatile std::sig_atomic_t stop_signal = 0;
// The self-pipe: the handler writes one byte, a sleep polls the read end, so a wait ends the
// moment the signal arrives instead of at its next tick.
int wake_read = -1;
int wake_write = -1;
std::once_flag installed;

extern "C" void on_stop_signal(int number) {
  const int saved = errno;
  stop_signal = number;
  if (wake_write >= 0) {
    const char byte = 1;
    (void)!::write(wake_write, &byte, 1);
  }
  errno = saved;
}

}  // namespace

void install_stop_handlers() {
  std::call_once(installed, [] {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0) {
      wake_read = fds[0];
      wake_write = fds[1];
    }
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    // No SA_RESTART: a blocking read of a PIN returns EINTR and gives up. SA_RESETHAND: the
    // second signal has the default action and ends the process at once.
    action.sa_flags = SA_RESETHAND;
    ::sigaction(SIGINT, &action, nullptr);
    ::sigaction(SIGTERM, &action, nullptr);
  });
}

bool stop_requested() noexcept { return stop_signal != 0; }

std::string stop_signal_name() {
  switch (stop_signal) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case 0:
      return {};
    default:
      return "signal " + std::to_string(static_cast<int>(stop_signal));
  }
}

bool sleep_unless_stopped(std::chrono::milliseconds duration) {
  using clock = std::chrono::steady_clock;
  const auto until = clock::now() + duration;
  for (;;) {
    if (stop_requested()) return false;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now());
    if (left <= std::chrono::milliseconds::zero()) return true;
    if (wake_read < 0) {
      // No self-pipe (pipe2 failed at start): wake now and then to look at the flag.
      const auto step = std::min(left, std::chrono::milliseconds(100));
      ::usleep(static_cast<useconds_t>(step.count()) * 1000U);
      continue;
    }
    // The byte the handler wrote stays in the pipe: every later wait wakes at once too.
    pollfd wake{wake_read, POLLIN, 0};
    const int timeout = static_cast<int>(std::min<std::chrono::milliseconds::rep>(left.count(), 1 << 30));
    (void)::poll(&wake, 1, timeout);
  }
}

bool wait_readable_unless_stopped(int fd) {
  for (;;) {
    if (stop_requested()) return false;
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_read, POLLIN, 0}};
    const int n = ::poll(fds, wake_read >= 0 ? 2 : 1, -1);
    if (n < 0 && errno == EINTR) continue;
    if (stop_requested()) return false;
    // Readable, at its end, or in error: the read that follows says which.
    return true;
  }
}

Stopped::Stopped(const std::string& where)
    : AgentError("stopped by " + (stop_signal_name().empty() ? std::string("a signal") : stop_signal_name()) +
                 (where.empty() ? std::string() : " " + where)) {}

void reset_stop_for_tests() {
  stop_signal = 0;
  if (wake_read >= 0) {
    char drained[16];
    while (::read(wake_read, drained, sizeof drained) > 0) {
    }
  }
}

}  // namespace qscd::agent
