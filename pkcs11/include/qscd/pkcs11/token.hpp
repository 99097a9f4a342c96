#pragma once
// What a token says about itself (C_GetTokenInfo), decoded: padded strings
// trimmed, flags turned into PIN states a signing officer can read.
#include <p11-kit/pkcs11.h>

#include <string>
#include <vector>

namespace qscd::p11 {

class Module;

// The state of one PIN (user or SO) from the token's flags.
struct PinState {
  bool count_low = false;      // a wrong PIN was entered since the last good one
  bool final_try = false;      // the next wrong PIN locks it
  bool locked = false;         // locked: no login possible
  bool to_be_changed = false;  // set by the issuer/SO: change it before use

  // "ok", or the set flags joined with ", " ("count low, final try").
  [[nodiscard]] std::string describe() const;
  [[nodiscard]] bool ok() const noexcept { return !count_low && !final_try && !locked && !to_be_changed; }
};

PinState user_pin_state(CK_FLAGS flags) noexcept;
PinState so_pin_state(CK_FLAGS flags) noexcept;

struct TokenInfo {
  CK_SLOT_ID slot = 0;
  std::string label;
  std::string serial;
  std::string manufacturer;
  std::string model;
  bool initialized = false;           // CKF_TOKEN_INITIALIZED
  bool user_pin_initialized = false;  // CKF_USER_PIN_INITIALIZED
  bool login_required = false;        // CKF_LOGIN_REQUIRED
  bool write_protected = false;       // CKF_WRITE_PROTECTED
  PinState user;
  PinState so;
  CK_TOKEN_INFO raw{};  // as the module returned it, for URI matching
};

// Blank-padded PKCS#11 text (labels, serials) without the padding.
std::string trim_padded(const unsigned char* text, std::size_t size);

TokenInfo read_token_info(const Module& module, CK_SLOT_ID slot);
TokenInfo read_token_info(CK_FUNCTION_LIST* functions, CK_SLOT_ID slot);
// Every slot that holds a token, initialised or not, in slot order.
std::vector<TokenInfo> list_tokens(const Module& module);

}  // namespace qscd::p11
