#pragma once
// PIN login with anti-lockout, after pkcs11-provider's check_pin_flags_ok:
// the token's flags are read before every C_Login; a locked PIN is never sent,
// a PIN on its final try only when the caller allows it, and a PIN that got
// CKR_PIN_INCORRECT is never sent again (the caller gets a PinError carrying
// the PIN state read after the failure). The PIN is borrowed, never stored.
#include <p11-kit/pkcs11.h>

#include <span>

#include "qscd/pkcs11/session.hpp"
#include "qscd/pkcs11/token.hpp"

namespace qscd::p11 {

struct LoginOptions {
  bool allow_final_try = false;
  // Only for changing that very PIN: logging in is then the way out.
  bool allow_to_be_changed = false;
};

// Throws PinError when `user`'s PIN must not be sent to this token now.
// Pure: reads only `token`. CKU_CONTEXT_SPECIFIC is judged by the user PIN flags.
void check_pin_flags(const TokenInfo& token, CK_USER_TYPE user, const LoginOptions& options);

// C_Login(CKU_USER / CKU_SO) on the session's token, after check_pin_flags.
// CKR_USER_ALREADY_LOGGED_IN counts as success (another session of this
// process logged in). Throws PinError or CallError.
void login(Session& session, CK_USER_TYPE user, std::span<const unsigned char> pin, const LoginOptions& options = {});

// C_Login(CKU_CONTEXT_SPECIFIC) right after C_SignInit on a key with
// CKA_ALWAYS_AUTHENTICATE; the same checks as login().
void login_context_specific(Session& session, std::span<const unsigned char> pin, const LoginOptions& options = {});

// The user's name for a user type in messages ("user PIN", "SO PIN").
const char* pin_name(CK_USER_TYPE user) noexcept;

}  // namespace qscd::p11
