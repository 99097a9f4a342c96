#include "qscd/pkcs11/admin.hpp"

#include <algorithm>
#include <array>

#include "call.hpp"
#include "pin_guard.hpp"
#include "qscd/pkcs11/module.hpp"

namespace qscd::p11 {

std::size_t count_public_objects(const Module& module, CK_SLOT_ID slot) {
  if (!read_token_info(module, slot).initialized) return 0;
  Session session(module, slot, Session::Access::read_only);
  return session.find(AttributeTemplate{}).size();
}

void check_new_pin_length(const TokenInfo& token, CK_USER_TYPE user, Pin pin) {
  const CK_ULONG min = token.raw.ulMinPinLen;
  const CK_ULONG max = token.raw.ulMaxPinLen;
  if (pin.size() < min || (max != 0 && max != CK_UNAVAILABLE_INFORMATION && pin.size() > max)) {
    std::string where = token.label.empty() ? "the blank token in slot " + std::to_string(token.slot)
                                            : "token '" + token.label + "'";
    throw NewPinRejected(user, std::string("the new ") + pin_name(user) + " has length " + std::to_string(pin.size()) +
                                   "; " + where + " takes " + std::to_string(min) + " to " + std::to_string(max) +
                                   " characters");
  }
}

void init_token(const Module& module, CK_SLOT_ID slot, Pin security_officer_pin, std::string_view label, Pin user_pin,
                const LoginOptions& options) {
  std::array<unsigned char, 32> padded{};
  if (label.empty() || label.size() > padded.size()) {
    throw InvalidArgument("token label '" + std::string(label) + "' must be 1 to 32 bytes");
  }
  padded.fill(' ');
  std::copy(label.begin(), label.end(), padded.begin());
  CK_FUNCTION_LIST* functions = module.functions();
  TokenInfo before = read_token_info(module, slot);
  const CallSite site{slot, before.label};
  if (!before.initialized) check_new_pin_length(before, CKU_SO, security_officer_pin);
  check_new_pin_length(before, CKU_USER, user_pin);
  auto send = [&] {
    return QSCD_P11_CALL_RAW(functions, site, C_InitToken, slot, detail::pin_pointer(security_officer_pin),
                             static_cast<CK_ULONG>(security_officer_pin.size()), padded.data());
  };
  if (before.initialized) {
    detail::guarded_pin_call(functions, slot, CKU_SO, options, "C_InitToken", send);
  } else {
    // A blank token has no SO PIN yet, so its SO flags mean nothing (SoftHSM2
    // reports a blank slot's SO PIN as locked): this call sets the SO PIN.
    CK_RV rv = send();
    if (rv != CKR_OK) throw CallError(rv, "C_InitToken", site);
  }
  Session session(module, slot, Session::Access::read_write);
  login(session, CKU_SO, security_officer_pin, options);
  QSCD_P11_CALL(functions, session.site(), C_InitPIN, session.handle(), detail::pin_pointer(user_pin),
                static_cast<CK_ULONG>(user_pin.size()));
  session.close();
}

void change_pin(Session& session, CK_USER_TYPE user, Pin old_pin, Pin new_pin, const LoginOptions& options) {
  check_new_pin_length(session.token_info(), user, new_pin);
  LoginOptions change_options = options;
  change_options.allow_to_be_changed = true;
  if (user == CKU_SO) login(session, CKU_SO, old_pin, change_options);
  detail::guarded_pin_call(session.functions(), session.slot(), user, change_options, "C_SetPIN", [&] {
    return QSCD_P11_CALL_RAW(session.functions(), session.site(), C_SetPIN, session.handle(),
                             detail::pin_pointer(old_pin), static_cast<CK_ULONG>(old_pin.size()),
                             detail::pin_pointer(new_pin), static_cast<CK_ULONG>(new_pin.size()));
  });
}

void unblock_user_pin(Session& session, Pin security_officer_pin, Pin new_user_pin, const LoginOptions& options) {
  check_new_pin_length(session.token_info(), CKU_USER, new_user_pin);
  login(session, CKU_SO, security_officer_pin, options);
  QSCD_P11_CALL(session.functions(), session.site(), C_InitPIN, session.handle(), detail::pin_pointer(new_user_pin),
                static_cast<CK_ULONG>(new_user_pin.size()));
}

}  // namespace qscd::p11
