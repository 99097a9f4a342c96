#include "qscd/pkcs11/module.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <utility>

#include "call.hpp"
#include "qscd/pkcs11/error.hpp"

#ifndef QSCD_P11_KIT_PROXY
#define QSCD_P11_KIT_PROXY "p11-kit-proxy.so"
#endif

namespace qscd::p11 {

namespace {
// A module is initialised once per process: a second C_Initialize fails, and
// C_Finalize from one owner would pull the rug from under another.
std::atomic<bool> g_module_alive{false};
}  // namespace

std::string Module::default_path() { return QSCD_P11_KIT_PROXY; }

Module::Module(const std::string& path, std::string_view origin) : path_(path) {
  const std::string named = std::string(origin) + " " + path;  // "--module /x", "QSCD_AGENT_MODULE /x"...
  if (g_module_alive.exchange(true)) throw Error("a PKCS#11 module is already loaded in this process");
  handle_ = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle_ == nullptr) {
    g_module_alive = false;
    const char* why = ::dlerror();
    throw ModuleLoadError(named + " is not a loadable PKCS#11 module: " + (why ? why : "dlopen failed"));
  }
  auto get_function_list = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(handle_, "C_GetFunctionList"));
  if (get_function_list == nullptr) {
    ::dlclose(handle_);
    handle_ = nullptr;
    g_module_alive = false;
    throw ModuleLoadError(named + " is not a PKCS#11 module: it has no C_GetFunctionList");
  }
  CK_RV rv = detail::call_raw(CallSite{}, "C_GetFunctionList", get_function_list, &functions_);
  if (rv != CKR_OK || functions_ == nullptr) {
    ::dlclose(handle_);
    handle_ = nullptr;
    functions_ = nullptr;
    g_module_alive = false;
    throw ModuleLoadError(named + ": C_GetFunctionList failed with " + rv_name(rv));
  }
  try {
    initialize();
  } catch (...) {
    ::dlclose(handle_);
    handle_ = nullptr;
    functions_ = nullptr;
    g_module_alive = false;
    throw;
  }
}

Module::Module(CK_FUNCTION_LIST* functions, std::string name) : functions_(functions), path_(std::move(name)) {
  if (g_module_alive.exchange(true)) throw Error("a PKCS#11 module is already loaded in this process");
  try {
    initialize();
  } catch (...) {
    functions_ = nullptr;
    g_module_alive = false;
    throw;
  }
}

void Module::initialize() {
  CK_C_INITIALIZE_ARGS args;
  std::memset(&args, 0, sizeof args);
  args.flags = CKF_OS_LOCKING_OK;
  QSCD_P11_CALL(functions_, CallSite{}, C_Initialize, &args);
}

void Module::release() noexcept {
  if (functions_ != nullptr) {
    QSCD_P11_CALL_NOEXCEPT(functions_, C_Finalize, nullptr);
    functions_ = nullptr;
    g_module_alive = false;
  }
  if (handle_ != nullptr) {
    ::dlclose(handle_);
    handle_ = nullptr;
  }
}

Module::~Module() noexcept { release(); }

Module::Module(Module&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)),
      functions_(std::exchange(other.functions_, nullptr)),
      path_(std::move(other.path_)) {}

Module& Module::operator=(Module&& other) noexcept {
  if (this != &other) {
    release();
    handle_ = std::exchange(other.handle_, nullptr);
    functions_ = std::exchange(other.functions_, nullptr);
    path_ = std::move(other.path_);
  }
  return *this;
}

CK_INFO Module::info() const {
  CK_INFO info;
  std::memset(&info, 0, sizeof info);
  QSCD_P11_CALL(functions_, CallSite{}, C_GetInfo, &info);
  return info;
}

std::vector<CK_SLOT_ID> Module::slots(bool token_present) const {
  // One call with room for more slots than a host has readers, instead of asking the count
  // first (on a card reader each call is a round trip). A longer list answers
  // CKR_BUFFER_TOO_SMALL with its length; it can grow between two calls (a token plugged in): retry.
  std::vector<CK_SLOT_ID> slots(32);
  for (;;) {
    CK_ULONG count = static_cast<CK_ULONG>(slots.size());
    CK_RV rv = QSCD_P11_CALL_RAW(functions_, CallSite{}, C_GetSlotList, static_cast<CK_BBOOL>(token_present),
                                 slots.data(), &count);
    if (rv == CKR_BUFFER_TOO_SMALL) {
      slots.resize(std::max<std::size_t>(count, slots.size() * 2));
      continue;
    }
    if (rv != CKR_OK) throw CallError(rv, "C_GetSlotList", CallSite{});
    slots.resize(count);
    return slots;
  }
}

void Module::reinitialize() {
  if (functions_ == nullptr) throw Error("the PKCS#11 module is not loaded");
  // Not initialised (a failed earlier re-init) is no reason not to initialise it now.
  const CK_RV rv = QSCD_P11_CALL_RAW(functions_, CallSite{}, C_Finalize, nullptr);
  if (rv != CKR_OK && rv != CKR_CRYPTOKI_NOT_INITIALIZED) throw CallError(rv, "C_Finalize", CallSite{});
  initialize();
}

Module::SlotEventResult Module::wait_for_slot_event(bool block) const {
  SlotEventResult result;
  CK_SLOT_ID slot = 0;
  if (functions_->C_WaitForSlotEvent == nullptr) {
    result.what = SlotEvent::not_supported;
    return result;
  }
  const CK_FLAGS flags = block ? 0 : CKF_DONT_BLOCK;
  const CK_RV rv = QSCD_P11_CALL_RAW(functions_, CallSite{}, C_WaitForSlotEvent, flags, &slot, nullptr);
  switch (rv) {
    case CKR_OK:
      result.what = SlotEvent::event;
      result.slot = slot;
      return result;
    case CKR_NO_EVENT:
      result.what = SlotEvent::no_event;
      return result;
    case CKR_FUNCTION_NOT_SUPPORTED:
      result.what = SlotEvent::not_supported;
      return result;
    default:
      throw CallError(rv, "C_WaitForSlotEvent", CallSite{});
  }
}

}  // namespace qscd::p11
