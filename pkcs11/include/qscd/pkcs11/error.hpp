#pragma once
// Typed errors of the token layer. Every PKCS#11 call goes through one funnel
// (src/call.hpp) that turns a CK_RV into a CallError naming the C_* function,
// the slot and the token label, with the CKR_* name in the message.
#include <p11-kit/pkcs11.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace qscd::p11 {

// The symbolic name of a return value ("CKR_PIN_INCORRECT"), or its hex value.
std::string rv_name(CK_RV rv);
// The inverse: "CKR_DEVICE_REMOVED" or "0x32" to the value; nullopt when unknown.
std::optional<CK_RV> rv_from_name(std::string_view name);

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

// A PKCS#11 URI matched nothing (no such token, no such key). Exit 3.
class NotFound : public Error {
 public:
  // `message` says what was looked for and names the URI.
  NotFound(const std::string& message, std::string uri) : Error(message), uri_(std::move(uri)) {}
  [[nodiscard]] const std::string& uri() const noexcept { return uri_; }

 private:
  std::string uri_;
};

// A selection matched several tokens or keys where one is needed. Exit 2:
// the caller must name one; `candidates` are URIs that each name one.
class Ambiguous : public Error {
 public:
  // The message is `what` followed by one candidate per line.
  Ambiguous(const std::string& what, std::vector<std::string> candidates);
  [[nodiscard]] const std::vector<std::string>& candidates() const noexcept { return candidates_; }

 private:
  std::vector<std::string> candidates_;
};

// Why a login was refused or failed; the PIN state was read from the token.
enum class PinProblem {
  locked,         // refused: CKF_*_PIN_LOCKED, no C_Login sent
  final_try,      // refused: CKF_*_PIN_FINAL_TRY without allow_final_try, no C_Login sent
  to_be_changed,  // refused: CKF_*_PIN_TO_BE_CHANGED, the PIN must be changed first
  not_initialized,// refused: the user PIN was never set (CKF_USER_PIN_INITIALIZED clear)
  incorrect,      // C_Login answered CKR_PIN_INCORRECT; never sent again
};

// A login that was refused before sending the PIN, or failed because of it. Exit 3.
class PinError : public Error {
 public:
  PinError(PinProblem problem, const std::string& message) : Error(message), problem_(problem) {}
  [[nodiscard]] PinProblem problem() const noexcept { return problem_; }

 private:
  PinProblem problem_;
};

}  // namespace qscd::p11
