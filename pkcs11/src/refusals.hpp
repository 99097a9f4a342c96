#pragma once
// How a module says "not this way" before it has written anything: the answers after which a
// caller may try another way (a plain token object instead of a staged session object) without
// risking two objects. Used by Session::create_on_token and generate_key_pair's staging.
#include <p11-kit/pkcs11.h>

namespace qscd::p11::detail {

// The copy onto the token (C_CopyObject) refused. Not CKR_FUNCTION_FAILED or CKR_DEVICE_ERROR:
// those may come after the copy was written (SoftHSM2 answers CKR_FUNCTION_FAILED when storing
// it fails), and a second write could then leave two objects.
inline bool refuses_copy(CK_RV rv) {
  switch (rv) {
    case CKR_FUNCTION_NOT_SUPPORTED:
    case CKR_ACTION_PROHIBITED:
    case CKR_ATTRIBUTE_READ_ONLY:
    case CKR_ATTRIBUTE_TYPE_INVALID:
    case CKR_ATTRIBUTE_VALUE_INVALID:
    case CKR_TEMPLATE_INCONSISTENT:
      return true;
    default:
      return false;
  }
}

// A session object (or pair) of this kind refused: the same answers, and, since nothing is on the
// token yet, those that could otherwise mean a half-done write.
inline bool refuses_session_object(CK_RV rv) {
  return refuses_copy(rv) || rv == CKR_FUNCTION_FAILED || rv == CKR_TEMPLATE_INCOMPLETE || rv == CKR_DEVICE_MEMORY;
}

}  // namespace qscd::p11::detail
