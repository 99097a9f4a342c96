#pragma once
// Typed errors of the token layer. Every PKCS#11 call goes through one funnel
// (src/call.hpp) that turns a CK_RV into a CallError naming the C_* function,
// the slot and the token label, with the CKR_* name in the message.
#include <p11-kit/pkcs11.h>

#include <optional>
#include <stdexcept>
#include <string>

namespace qscd::p11 {

// The symbolic name of a return value ("CKR_PIN_INCORRECT"), or its hex value.
std::string rv_name(CK_RV rv);

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The module file is missing, not a shared object, or has no C_GetFunctionList.
class ModuleLoadError : public Error {
 public:
  using Error::Error;
};

// A caller passed something the layer cannot use (bad URI, bad key type, bad id).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// Where a call was made: filled in by whoever knows (slot, token label).
struct CallSite {
  std::optional<CK_SLOT_ID> slot;
  std::string token_label;
};

// A C_* function returned something other than CKR_OK.
class CallError : public Error {
 public:
  CallError(CK_RV rv, const char* function, const CallSite& site);

  [[nodiscard]] CK_RV rv() const noexcept { return rv_; }
  [[nodiscard]] const std::string& function() const noexcept { return function_; }
  [[nodiscard]] const CallSite& site() const noexcept { return site_; }

 private:
  CK_RV rv_;
  std::string function_;
  CallSite site_;
};

}  // namespace qscd::p11
