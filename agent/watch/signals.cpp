#include "watch/signals.hpp"

#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace qscd::agent {

Signals::Signals() {
  sigemptyset(&set_);
  sigaddset(&set_, SIGTERM);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGHUP);
  if (::pthread_sigmask(SIG_BLOCK, &set_, &old_) != 0) throw std::runtime_error("cannot block SIGTERM/SIGINT/SIGHUP");
  fd_ = ::signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd_ < 0) throw std::runtime_error(std::string("signalfd: ") + std::strerror(errno));
}

Signals::~Signals() {
  ::close(fd_);
  ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

std::vector<int> Signals::read() const {
  std::vector<int> got;
  signalfd_siginfo info{};
  while (::read(fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) got.push_back(static_cast<int>(info.ssi_signo));
  return got;
}

}  // namespace qscd::agent
