#pragma once
// systemd's notification protocol (sd_notify, libsystemd): READY=1, STATUS=, WATCHDOG=1,
// STOPPING=1. Without NOTIFY_SOCKET (not run by systemd) every call does nothing.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace qscd::agent {

class Notifier {
 public:
  Notifier();

  void ready(std::string_view status) const;
  void status(std::string_view status) const;
  void stopping(std::string_view status) const;
  // WATCHDOG=1, when the unit asks for it.
  void watchdog() const;
  // How often to send WATCHDOG=1 (half of WATCHDOG_USEC), when the unit asks for it
  // (sd_watchdog_enabled).
  [[nodiscard]] std::optional<std::chrono::milliseconds> watchdog_every() const { return watchdog_every_; }

 private:
  void send(const std::string& message) const;
  std::optional<std::chrono::milliseconds> watchdog_every_;
};

}  // namespace qscd::agent
