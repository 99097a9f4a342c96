#pragma once
// Which tokens are present, and how the daemon learns that this changed: C_WaitForSlotEvent
// on a thread of its own where the module blocks in it, else polling C_GetSlotList(tokenPresent)
// with the module finalised and initialised again before each look (SoftHSM2 2.6.1 answers a
// blocking C_WaitForSlotEvent with CKR_FUNCTION_NOT_SUPPORTED and shows a token another process
// initialised only after a re-initialisation). Tokens are told apart by serial.
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "qscd/pkcs11/module.hpp"
#include "qscd/pkcs11/token.hpp"

namespace qscd::agent {

enum class SlotEvents {
  module_events,  // C_WaitForSlotEvent blocks on a thread and wakes the loop
  polling,        // C_GetSlotList every poll, the module re-initialised before each
};

// The module's answers that mean the token went away under a running job (removed, not
// recognised, its slot or session gone, a device error), and NotFound for a token no longer listed.
bool token_went_away(const std::exception_ptr& error);

// What changed since the last look.
struct TokenChanges {
  std::vector<p11::TokenInfo> inserted;       // initialised tokens seen for the first time (or again)
  std::vector<std::string> removed;           // serials gone
  std::vector<p11::TokenInfo> uninitialized;  // slots with an uninitialised token, not seen before
};

class TokenWatch {
 public:
  explicit TokenWatch(std::function<p11::Module&()> module);
  ~TokenWatch();
  TokenWatch(const TokenWatch&) = delete;
  TokenWatch& operator=(const TokenWatch&) = delete;

  // Decides how events are noticed: a blocking C_WaitForSlotEvent on a thread; when the module
  // answers it with CKR_FUNCTION_NOT_SUPPORTED, polling.
  SlotEvents start();
  [[nodiscard]] SlotEvents mode() const { return mode_; }
  // A file descriptor that becomes readable when the module reports a slot event
  // (module_events), else -1. Call drain_events() after it did.
  [[nodiscard]] int event_fd() const;
  void drain_events();

  // Looks at the slots again (polling: after re-initialising the module; the caller holds no
  // session) and says what changed.
  TokenChanges look();
  // The initialised tokens present at the last look, by serial.
  [[nodiscard]] const std::map<std::string, p11::TokenInfo>& present() const { return present_; }
  [[nodiscard]] bool is_present(const std::string& serial) const { return present_.contains(serial); }

 private:
  struct Waiter;
  std::function<p11::Module&()> module_;
  SlotEvents mode_ = SlotEvents::polling;
  std::shared_ptr<Waiter> waiter_;
  std::map<std::string, p11::TokenInfo> present_;
  std::set<CK_SLOT_ID> uninitialized_seen_;
};

}  // namespace qscd::agent
