#pragma once
// Token administration: initialise a token, change a PIN, unblock the user PIN.
// Every PIN goes through the same anti-lockout guard as login (login.hpp).
#include <p11-kit/pkcs11.h>

#include <span>
#include <string>
#include <string_view>

#include "qscd/pkcs11/error.hpp"
#include "qscd/pkcs11/login.hpp"
#include "qscd/pkcs11/session.hpp"

namespace qscd::p11 {

class Module;

using Pin = std::span<const unsigned char>;

// Objects a session without login can see (public objects only). Used to
// refuse re-initialising a token that holds something, without asking for a
// PIN just to find out. 0 for a token that is not initialised.
std::size_t count_public_objects(const Module& module, CK_SLOT_ID slot);

// A new PIN the token would refuse (outside ulMinPinLen..ulMaxPinLen). Exit 2.
class NewPinRejected : public InvalidArgument {
 public:
  NewPinRejected(CK_USER_TYPE user, const std::string& message) : InvalidArgument(message), user_(user) {}
  // Whose PIN: CKU_USER or CKU_SO.
  [[nodiscard]] CK_USER_TYPE user() const noexcept { return user_; }

 private:
  CK_USER_TYPE user_;
};

// Throws NewPinRejected when `pin` is outside the token's PIN length limits.
// Checked before any call that changes the token, so a refused new PIN changes nothing.
void check_new_pin_length(const TokenInfo& token, CK_USER_TYPE user, Pin pin);

// C_InitToken(SO PIN, label blank-padded to 32 bytes), then an SO session that
// sets the first user PIN (C_InitPIN). On an initialised token the SO PIN must
// be the current one; its flags are checked first. Throws InvalidArgument for
// a label longer than 32 bytes or empty, or PINs the token would refuse by length.
void init_token(const Module& module, CK_SLOT_ID slot, Pin security_officer_pin, std::string_view label, Pin user_pin,
                const LoginOptions& options = {});

// C_SetPIN(old, new). The user PIN is changed from a public session (this also
// works when the token wants it changed); the SO PIN after an SO login.
// `session` must be read/write and not logged in.
void change_pin(Session& session, CK_USER_TYPE user, Pin old_pin, Pin new_pin, const LoginOptions& options = {});

// SO login, then C_InitPIN(new user PIN): resets a locked or forgotten user PIN.
void unblock_user_pin(Session& session, Pin security_officer_pin, Pin new_user_pin, const LoginOptions& options = {});

}  // namespace qscd::p11
