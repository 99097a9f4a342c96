#include "qscd/pkcs11/token.hpp"

#include "call.hpp"
#include "qscd/pkcs11/module.hpp"

namespace qscd::p11 {

std::string PinState::describe() const {
  std::string text;
  auto add = [&text](bool set, const char* name) {
    if (!set) return;
    if (!text.empty()) text += ", ";
    text += name;
  };
  add(locked, "locked");
  add(final_try, "final try");
  add(count_low, "count low");
  add(to_be_changed, "to be changed");
  return text.empty() ? "ok" : text;
}

PinState user_pin_state(CK_FLAGS flags) noexcept {
  return {(flags & CKF_USER_PIN_COUNT_LOW) != 0, (flags & CKF_USER_PIN_FINAL_TRY) != 0,
          (flags & CKF_USER_PIN_LOCKED) != 0, (flags & CKF_USER_PIN_TO_BE_CHANGED) != 0};
}

PinState so_pin_state(CK_FLAGS flags) noexcept {
  return {(flags & CKF_SO_PIN_COUNT_LOW) != 0, (flags & CKF_SO_PIN_FINAL_TRY) != 0,
          (flags & CKF_SO_PIN_LOCKED) != 0, (flags & CKF_SO_PIN_TO_BE_CHANGED) != 0};
}

std::string trim_padded(const unsigned char* text, std::size_t size) {
  while (size > 0 && (text[size - 1] == ' ' || text[size - 1] == '\0')) --size;
  return {reinterpret_cast<const char*>(text), size};
}

TokenInfo read_token_info(CK_FUNCTION_LIST* functions, CK_SLOT_ID slot) {
  TokenInfo info;
  info.slot = slot;
  const CallSite site{slot, {}};
  QSCD_P11_CALL(functions, site, C_GetTokenInfo, slot, &info.raw);
  const CK_TOKEN_INFO& raw = info.raw;
  info.label = trim_padded(raw.label, sizeof raw.label);
  info.serial = trim_padded(raw.serialNumber, sizeof raw.serialNumber);
  info.manufacturer = trim_padded(raw.manufacturerID, sizeof raw.manufacturerID);
  info.model = trim_padded(raw.model, sizeof raw.model);
  info.initialized = (raw.flags & CKF_TOKEN_INITIALIZED) != 0;
  info.user_pin_initialized = (raw.flags & CKF_USER_PIN_INITIALIZED) != 0;
  info.login_required = (raw.flags & CKF_LOGIN_REQUIRED) != 0;
  info.write_protected = (raw.flags & CKF_WRITE_PROTECTED) != 0;
  info.user = user_pin_state(raw.flags);
  info.so = so_pin_state(raw.flags);
  return info;
}

TokenInfo read_token_info(const Module& module, CK_SLOT_ID slot) { return read_token_info(module.functions(), slot); }

std::vector<TokenInfo> list_tokens(const Module& module) {
  std::vector<TokenInfo> tokens;
  for (CK_SLOT_ID slot : module.slots(true)) tokens.push_back(read_token_info(module, slot));
  return tokens;
}

}  // namespace qscd::p11
