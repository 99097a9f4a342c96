#include "watch/token_watch.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <future>
#include <thread>

#include "qscd/pkcs11/error.hpp"

namespace qscd::agent {

// The thread blocked in C_WaitForSlotEvent and the eventfd it wakes the loop with. Shared with
// the thread, which is detached: C_Finalize (the module's end) ends its wait.
struct TokenWatch::Waiter {
  int fd = -1;
  std::promise<bool> supported;  // set once: the first answer says whether the module blocks
  ~Waiter() {
    if (fd >= 0) ::close(fd);
  }
};

TokenWatch::TokenWatch(std::function<p11::Module&()> module) : module_(std::move(module)) {}
TokenWatch::~TokenWatch() = default;

SlotEvents TokenWatch::start() {
  auto waiter = std::make_shared<Waiter>();
  waiter->fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (waiter->fd < 0) {
    mode_ = SlotEvents::polling;
    return mode_;
  }
  std::future<bool> supported = waiter->supported.get_future();
  p11::Module& module = module_();
  std::thread([waiter, &module] {
    bool first = true;
    for (;;) {
      p11::Module::SlotEventResult result;
      try {
        result = module.wait_for_slot_event(true);
      } catch (const std::exception&) {
        if (first) waiter->supported.set_value(false);
        return;  // finalised (or broken): no more events from here
      }
      if (result.what == p11::Module::SlotEvent::not_supported) {
        if (first) waiter->supported.set_value(false);
        return;
      }
      if (first) {
        waiter->supported.set_value(true);
        first = false;
      }
      const std::uint64_t one = 1;
      if (::write(waiter->fd, &one, sizeof one) < 0) {
        // Full (the loop has not read it yet): it is readable, which is all the loop needs.
      }
    }
  }).detach();
  // A module that does not block answers at once; one that blocks is waiting for an event.
  if (supported.wait_for(std::chrono::milliseconds(300)) == std::future_status::ready && !supported.get()) {
    mode_ = SlotEvents::polling;
  } else {
    mode_ = SlotEvents::module_events;
    waiter_ = std::move(waiter);
  }
  return mode_;
}

int TokenWatch::event_fd() const { return waiter_ ? waiter_->fd : -1; }

void TokenWatch::drain_events() {
  if (!waiter_) return;
  std::uint64_t count = 0;
  while (::read(waiter_->fd, &count, sizeof count) > 0) {
  }
}

TokenChanges TokenWatch::look() {
  p11::Module& module = module_();
  if (mode_ == SlotEvents::polling) module.reinitialize();
  TokenChanges changes;
  std::map<std::string, p11::TokenInfo> now;
  std::set<CK_SLOT_ID> uninitialized_now;
  for (p11::TokenInfo& token : p11::list_tokens(module)) {
    if (!token.initialized) {
      uninitialized_now.insert(token.slot);
      if (!uninitialized_seen_.contains(token.slot)) changes.uninitialized.push_back(token);
      continue;
    }
    if (token.serial.empty()) continue;
    now.emplace(token.serial, std::move(token));
  }
  for (const auto& [serial, token] : now) {
    if (!present_.contains(serial)) changes.inserted.push_back(token);
  }
  for (const auto& [serial, token] : present_) {
    if (!now.contains(serial)) changes.removed.push_back(serial);
  }
  present_ = std::move(now);
  uninitialized_seen_ = std::move(uninitialized_now);
  return changes;
}

bool token_went_away(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const p11::CallError& e) {
    switch (e.rv()) {
      case CKR_DEVICE_REMOVED:
      case CKR_TOKEN_NOT_PRESENT:
      case CKR_TOKEN_NOT_RECOGNIZED:
      case CKR_SLOT_ID_INVALID:
      case CKR_SESSION_HANDLE_INVALID:
      case CKR_SESSION_CLOSED:
      case CKR_DEVICE_ERROR:
        return true;
      default:
        return false;
    }
  } catch (const p11::NotFound&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace qscd::agent
