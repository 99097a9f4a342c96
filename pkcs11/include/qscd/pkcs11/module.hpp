#pragma once
// A PKCS#11 module: dlopen + C_GetFunctionList + C_Initialize(CKF_OS_LOCKING_OK),
// C_Finalize + dlclose on destruction. Move-only; at most one live per process,
// because a second C_Initialize of the same module fails.
#include <p11-kit/pkcs11.h>

#include <string>
#include <string_view>
#include <vector>

namespace qscd::p11 {

class Module {
 public:
  // Throws ModuleLoadError when `path` is not a PKCS#11 module, CallError when
  // C_Initialize fails, Error when another Module is still alive. `origin` says
  // where the path came from ("--module", an environment variable, a config
  // key...); the ModuleLoadError names it.
  explicit Module(const std::string& path, std::string_view origin = "--module");
  // Wraps an already-resolved function list (a fault-injecting layer in tests).
  // The Module initialises it and finalises it; it never dlcloses anything.
  Module(CK_FUNCTION_LIST* functions, std::string name);
  ~Module() noexcept;
  Module(Module&& other) noexcept;
  Module& operator=(Module&& other) noexcept;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The function list every call goes through; the seam for fault injection.
  [[nodiscard]] CK_FUNCTION_LIST* functions() const noexcept { return functions_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] CK_INFO info() const;
  // Slots, with or without a token present (C_GetSlotList).
  [[nodiscard]] std::vector<CK_SLOT_ID> slots(bool token_present) const;

  // C_Finalize, then C_Initialize again: a module such as SoftHSM2 2.6.1 only shows a token
  // another process initialised after this. Every session of the module is gone afterwards,
  // so the caller must hold none. Throws CallError when C_Initialize fails.
  void reinitialize();

  // What C_WaitForSlotEvent answered.
  enum class SlotEvent {
    event,          // something happened in `slot`
    no_event,       // CKF_DONT_BLOCK and nothing happened (CKR_NO_EVENT)
    not_supported,  // CKR_FUNCTION_NOT_SUPPORTED (SoftHSM2 2.6.1 when blocking)
  };
  struct SlotEventResult {
    SlotEvent what = SlotEvent::no_event;
    CK_SLOT_ID slot = 0;
  };
  // C_WaitForSlotEvent: blocks until a slot event unless `block` is false (CKF_DONT_BLOCK).
  // Other answers throw CallError (CKR_CRYPTOKI_NOT_INITIALIZED once C_Finalize ended a wait).
  [[nodiscard]] SlotEventResult wait_for_slot_event(bool block) const;

  // The compiled-in default: p11-kit's proxy module.
  static std::string default_path();

 private:
  void initialize();
  void release() noexcept;

  void* handle_ = nullptr;
  CK_FUNCTION_LIST* functions_ = nullptr;
  std::string path_;
};

}  // namespace qscd::p11
