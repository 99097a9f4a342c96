#pragma once
// The one place a PIN is handed to the module (C_Login, C_SetPIN, C_InitToken,
// C_InitPIN's SO login): flags checked first, failures turned into PinErrors
// that carry the PIN state read after the failure.
#include <p11-kit/pkcs11.h>

#include <functional>

#include "qscd/pkcs11/login.hpp"

namespace qscd::p11::detail {

// `send` makes the one call that carries the PIN and returns its CK_RV.
// Throws PinError (refused, incorrect, locked, expired) or CallError.
void guarded_pin_call(CK_FUNCTION_LIST* functions, CK_SLOT_ID slot, CK_USER_TYPE user, const LoginOptions& options,
                      const char* function, const std::function<CK_RV()>& send);

// CK_UTF8CHAR_PTR for a borrowed PIN; the module does not write through it.
inline CK_UTF8CHAR_PTR pin_pointer(std::span<const unsigned char> pin) {
  return const_cast<CK_UTF8CHAR_PTR>(pin.data());
}

}  // namespace qscd::p11::detail
