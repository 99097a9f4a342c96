#include "watch/notify.hpp"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstdint>

namespace qscd::agent {

Notifier::Notifier() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    watchdog_every_ = std::chrono::milliseconds(std::max<std::uint64_t>(usec / 2000, 1));
  }
}

void Notifier::send(const std::string& message) const { (void)sd_notify(0, message.c_str()); }

void Notifier::ready(std::string_view status) const { send("READY=1\nSTATUS=" + std::string(status)); }
void Notifier::status(std::string_view status) const { send("STATUS=" + std::string(status)); }
void Notifier::stopping(std::string_view status) const { send("STOPPING=1\nSTATUS=" + std::string(status)); }
void Notifier::watchdog() const {
  if (watchdog_every_) send("WATCHDOG=1");
}

}  // namespace qscd::agent
