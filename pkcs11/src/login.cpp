#include "qscd/pkcs11/login.hpp"

#include "call.hpp"
#include "pin_guard.hpp"

namespace qscd::p11 {

const char* pin_name(CK_USER_TYPE user) noexcept {
  if (user == CKU_SO) return "SO PIN";
  return user == CKU_CONTEXT_SPECIFIC ? "signature PIN (the key's own login)" : "user PIN";
}

namespace {

std::string where(const TokenInfo& token) {
  return "token '" + token.label + "' (slot " + std::to_string(token.slot) + ")";
}

}  // namespace

void check_pin_flags(const TokenInfo& token, CK_USER_TYPE user, const LoginOptions& options) {
  const PinState& state = user == CKU_SO ? token.so : token.user;
  const std::string name = pin_name(user);
  if (state.locked) {
    throw PinError(PinProblem::locked,
                   where(token) + ": the " + name + " is locked; no PIN was sent" +
                       (user == CKU_SO ? "" : " (an SO can reset it with `qscd-agent token unblock`)"));
  }
  if (state.final_try && !options.allow_final_try) {
    throw PinError(PinProblem::final_try, where(token) + ": the " + name +
                                              " is on its final try (one more wrong PIN locks it); no PIN was "
                                              "sent. Rerun with --allow-final-try if you are sure of the PIN");
  }
  if (state.to_be_changed && !options.allow_to_be_changed) {
    throw PinError(PinProblem::to_be_changed, where(token) + ": the " + name +
                                                  " must be changed before first use; run `qscd-agent token change-pin" +
                                                  (user == CKU_SO ? " --so" : "") + "`");
  }
  if (user != CKU_SO && !token.user_pin_initialized) {
    throw PinError(PinProblem::not_initialized,
                   where(token) + ": the user PIN was never set; run `qscd-agent token init` or `token unblock`");
  }
}

namespace detail {

void guarded_pin_call(CK_FUNCTION_LIST* functions, CK_SLOT_ID slot, CK_USER_TYPE user, const LoginOptions& options,
                      const char* function, const std::function<CK_RV()>& send) {
  TokenInfo before = read_token_info(functions, slot);
  check_pin_flags(before, user, options);
  CK_RV rv = send();
  if (rv == CKR_OK) return;
  const std::string name = pin_name(user);
  if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED) {
    // What the token says now is what the officer needs to know next.
    TokenInfo after = read_token_info(functions, slot);
    const PinState& state = user == CKU_SO ? after.so : after.user;
    PinProblem problem = rv == CKR_PIN_LOCKED || state.locked ? PinProblem::locked : PinProblem::incorrect;
    throw PinError(problem, std::string(function) + " failed with " + rv_name(rv) + ": " + where(after) + ": the " +
                                name + (rv == CKR_PIN_LOCKED ? " is locked" : " is wrong") +
                                "; PIN state now: " + state.describe() + ". The PIN was not retried.");
  }
  if (rv == CKR_PIN_EXPIRED) {
    throw PinError(PinProblem::to_be_changed, std::string(function) + " failed with CKR_PIN_EXPIRED: " +
                                                  where(before) + ": the " + name +
                                                  " has expired; run `qscd-agent token change-pin`");
  }
  throw CallError(rv, function, CallSite{slot, before.label});
}

}  // namespace detail

void login(Session& session, CK_USER_TYPE user, std::span<const unsigned char> pin, const LoginOptions& options) {
  bool already = false;
  detail::guarded_pin_call(session.functions(), session.slot(), user, options, "C_Login", [&]() -> CK_RV {
    CK_RV rv = QSCD_P11_CALL_RAW(session.functions(), session.site(), C_Login, session.handle(), user,
                                 detail::pin_pointer(pin), static_cast<CK_ULONG>(pin.size()));
    already = rv == CKR_USER_ALREADY_LOGGED_IN;
    return already ? CKR_OK : rv;
  });
  session.mark_logged_in(user, !already);  // another session's login is not ours to log out
}

void login_context_specific(Session& session, std::span<const unsigned char> pin, const LoginOptions& options) {
  detail::guarded_pin_call(session.functions(), session.slot(), CKU_CONTEXT_SPECIFIC, options, "C_Login", [&] {
    return QSCD_P11_CALL_RAW(session.functions(), session.site(), C_Login, session.handle(),
                             static_cast<CK_USER_TYPE>(CKU_CONTEXT_SPECIFIC), detail::pin_pointer(pin),
                             static_cast<CK_ULONG>(pin.size()));
  });
}

}  // namespace qscd::p11
