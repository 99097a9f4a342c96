#pragma once
// The one funnel every PKCS#11 call goes through. Use QSCD_P11_CALL so the
// function's name in the error is always the function actually called.
#include <p11-kit/pkcs11.h>

#include "qscd/pkcs11/error.hpp"

namespace qscd::p11::detail {

template <typename Function, typename... Args>
CK_RV call(const CallSite& site, const char* name, Function function, Args... args) {
  if (function == nullptr) throw CallError(CKR_FUNCTION_NOT_SUPPORTED, name, site);
  CK_RV rv = function(args...);
  if (rv != CKR_OK) throw CallError(rv, name, site);
  return rv;
}

// For the few calls where a non-OK value is an answer, not a failure
// (CKR_BUFFER_TOO_SMALL probes, CKR_ATTRIBUTE_SENSITIVE reads): the caller decides.
template <typename Function, typename... Args>
CK_RV call_raw(const CallSite& site, const char* name, Function function, Args... args) {
  if (function == nullptr) throw CallError(CKR_FUNCTION_NOT_SUPPORTED, name, site);
  return function(args...);
}

// For destructors and cleanup while another error propagates, which must not
// throw: the module's answer, CKR_FUNCTION_NOT_SUPPORTED when it lacks the function.
template <typename Function, typename... Args>
CK_RV call_noexcept(Function function, Args... args) noexcept {
  if (function == nullptr) return CKR_FUNCTION_NOT_SUPPORTED;
  return function(args...);
}

}  // namespace qscd::p11::detail

#define QSCD_P11_CALL(functions, site, name, ...) \
  ::qscd::p11::detail::call((site), #name, (functions)->name, __VA_ARGS__)
#define QSCD_P11_CALL_RAW(functions, site, name, ...) \
  ::qscd::p11::detail::call_raw((site), #name, (functions)->name, __VA_ARGS__)
#define QSCD_P11_CALL_NOEXCEPT(functions, name, ...) ::qscd::p11::detail::call_noexcept((functions)->name, __VA_ARGS__)
