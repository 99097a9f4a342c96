#include "qscd/pkcs11/error.hpp"

#include <charconv>
#include <cstdio>

namespace qscd::p11 {

namespace {

struct RvName {
  CK_RV rv;
  const char* name;
};

constexpr RvName k_rv_names[] = {
#define QSCD_RV(name) {name, #name},
    QSCD_RV(CKR_OK) QSCD_RV(CKR_CANCEL) QSCD_RV(CKR_HOST_MEMORY) QSCD_RV(CKR_SLOT_ID_INVALID)
    QSCD_RV(CKR_GENERAL_ERROR) QSCD_RV(CKR_FUNCTION_FAILED) QSCD_RV(CKR_ARGUMENTS_BAD)
    QSCD_RV(CKR_NO_EVENT) QSCD_RV(CKR_NEED_TO_CREATE_THREADS) QSCD_RV(CKR_CANT_LOCK)
    QSCD_RV(CKR_ACTION_PROHIBITED) QSCD_RV(CKR_ATTRIBUTE_READ_ONLY) QSCD_RV(CKR_ATTRIBUTE_SENSITIVE) QSCD_RV(CKR_ATTRIBUTE_TYPE_INVALID)
    QSCD_RV(CKR_ATTRIBUTE_VALUE_INVALID) QSCD_RV(CKR_DATA_INVALID) QSCD_RV(CKR_DATA_LEN_RANGE)
    QSCD_RV(CKR_DEVICE_ERROR) QSCD_RV(CKR_DEVICE_MEMORY) QSCD_RV(CKR_DEVICE_REMOVED)
    QSCD_RV(CKR_ENCRYPTED_DATA_INVALID) QSCD_RV(CKR_ENCRYPTED_DATA_LEN_RANGE) QSCD_RV(CKR_FUNCTION_CANCELED)
    QSCD_RV(CKR_FUNCTION_NOT_PARALLEL) QSCD_RV(CKR_FUNCTION_NOT_SUPPORTED) QSCD_RV(CKR_KEY_HANDLE_INVALID)
    QSCD_RV(CKR_KEY_SIZE_RANGE) QSCD_RV(CKR_KEY_TYPE_INCONSISTENT) QSCD_RV(CKR_KEY_NOT_NEEDED)
    QSCD_RV(CKR_KEY_CHANGED) QSCD_RV(CKR_KEY_NEEDED) QSCD_RV(CKR_KEY_INDIGESTIBLE)
    QSCD_RV(CKR_KEY_FUNCTION_NOT_PERMITTED) QSCD_RV(CKR_KEY_NOT_WRAPPABLE) QSCD_RV(CKR_KEY_UNEXTRACTABLE)
    QSCD_RV(CKR_MECHANISM_INVALID) QSCD_RV(CKR_MECHANISM_PARAM_INVALID) QSCD_RV(CKR_OBJECT_HANDLE_INVALID)
    QSCD_RV(CKR_OPERATION_ACTIVE) QSCD_RV(CKR_OPERATION_NOT_INITIALIZED) QSCD_RV(CKR_PIN_INCORRECT)
    QSCD_RV(CKR_PIN_INVALID) QSCD_RV(CKR_PIN_LEN_RANGE) QSCD_RV(CKR_PIN_EXPIRED) QSCD_RV(CKR_PIN_LOCKED)
    QSCD_RV(CKR_SESSION_CLOSED) QSCD_RV(CKR_SESSION_COUNT) QSCD_RV(CKR_SESSION_HANDLE_INVALID)
    QSCD_RV(CKR_SESSION_PARALLEL_NOT_SUPPORTED) QSCD_RV(CKR_SESSION_READ_ONLY) QSCD_RV(CKR_SESSION_EXISTS)
    QSCD_RV(CKR_SESSION_READ_ONLY_EXISTS) QSCD_RV(CKR_SESSION_READ_WRITE_SO_EXISTS)
    QSCD_RV(CKR_SIGNATURE_INVALID) QSCD_RV(CKR_SIGNATURE_LEN_RANGE) QSCD_RV(CKR_TEMPLATE_INCOMPLETE)
    QSCD_RV(CKR_TEMPLATE_INCONSISTENT) QSCD_RV(CKR_TOKEN_NOT_PRESENT) QSCD_RV(CKR_TOKEN_NOT_RECOGNIZED)
    QSCD_RV(CKR_TOKEN_WRITE_PROTECTED) QSCD_RV(CKR_USER_ALREADY_LOGGED_IN) QSCD_RV(CKR_USER_NOT_LOGGED_IN)
    QSCD_RV(CKR_USER_PIN_NOT_INITIALIZED) QSCD_RV(CKR_USER_TYPE_INVALID)
    QSCD_RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN) QSCD_RV(CKR_USER_TOO_MANY_TYPES)
    QSCD_RV(CKR_DOMAIN_PARAMS_INVALID) QSCD_RV(CKR_CURVE_NOT_SUPPORTED) QSCD_RV(CKR_BUFFER_TOO_SMALL)
    QSCD_RV(CKR_SAVED_STATE_INVALID) QSCD_RV(CKR_INFORMATION_SENSITIVE) QSCD_RV(CKR_STATE_UNSAVEABLE)
    QSCD_RV(CKR_CRYPTOKI_NOT_INITIALIZED) QSCD_RV(CKR_CRYPTOKI_ALREADY_INITIALIZED)
    QSCD_RV(CKR_MUTEX_BAD) QSCD_RV(CKR_MUTEX_NOT_LOCKED) QSCD_RV(CKR_FUNCTION_REJECTED)
#undef QSCD_RV
};

}  // namespace

std::string rv_name(CK_RV rv) {
  for (const auto& entry : k_rv_names) {
    if (entry.rv == rv) return entry.name;
  }
  // Hex for vendor-defined and unlisted values.
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "CKR_0x%08lX", static_cast<unsigned long>(rv));
  return buffer;
}

std::optional<CK_RV> rv_from_name(std::string_view name) {
  for (const auto& entry : k_rv_names) {
    if (name == entry.name) return entry.rv;
  }
  if (name.starts_with("CKR_0x")) name.remove_prefix(4);
  if (name.starts_with("0x") || name.starts_with("0X")) {
    name.remove_prefix(2);
    CK_RV value = 0;
    auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), value, 16);
    if (ec == std::errc() && end == name.data() + name.size() && !name.empty()) return value;
  }
  return std::nullopt;
}

namespace {

std::string describe(CK_RV rv, const char* function, const CallSite& site) {
  std::string message = std::string(function) + " failed with " + rv_name(rv);
  if (site.slot || !site.token_label.empty()) {
    message += " (";
    if (site.slot) message += "slot " + std::to_string(*site.slot);
    if (site.slot && !site.token_label.empty()) message += ", ";
    if (!site.token_label.empty()) message += "token '" + site.token_label + "'";
    message += ")";
  }
  return message;
}

}  // namespace

CallError::CallError(CK_RV rv, const char* function, const CallSite& site)
    : Error(describe(rv, function, site)), rv_(rv), function_(function), site_(site) {}

namespace {

std::string list_candidates(const std::string& what, const std::vector<std::string>& candidates) {
  std::string message = what;
  for (const auto& candidate : candidates) message += "\n  " + candidate;
  return message;
}

}  // namespace

Ambiguous::Ambiguous(const std::string& what, std::vector<std::string> candidates)
    : Error(list_candidates(what, candidates)), candidates_(std::move(candidates)) {}

}  // namespace qscd::p11
