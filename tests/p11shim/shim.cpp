// A fault-injecting PKCS#11 module for tests: a layer over a real module, not a
// mock. Every call is forwarded to the module named by QSCD_SHIM_TARGET
// (default SoftHSM2). Controlled by the environment, read at each call:
//   QSCD_SHIM_COUNT_FILE=path          append one line per call ("C_Login")
//   QSCD_SHIM_FAIL=C_Sign:CKR_DEVICE_REMOVED[,C_X:CKR_Y]
//                                      answer that CKR without calling the module; C_X@2:CKR_Y
//                                      only for the 2nd call of C_X since C_Initialize
//   QSCD_SHIM_KILL=C_CopyObject@2      SIGKILL the process at that call, before the module sees it:
//                                      a crash in the middle of a library function
//   QSCD_SHIM_TOKEN_FLAGS_OR=CKF_USER_PIN_LOCKED|CKF_USER_PIN_FINAL_TRY|0x...
//                                      ORed into CK_TOKEN_INFO.flags
//   QSCD_SHIM_SLOT_FLAGS_OR=CKF_HW_SLOT|0x...
//                                      ORed into CK_SLOT_INFO.flags (a hardware slot)
//   QSCD_SHIM_ABSENT=C_CopyObject[,C_X] NULL in the function list C_GetFunctionList hands out
//                                      (read at that call): a module without those functions
//   QSCD_SHIM_SET_TOKEN=C_CreateObject:true[,C_CopyObject:false][,C_GenerateKeyPair:true]
//                                      CKA_TOKEN in that call's template(s) replaced by the value:
//                                      a module that ignores what the caller asked for
#include <dlfcn.h>
#include <signal.h>
#include <unistd.h>
#include <p11-kit/pkcs11.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qscd/pkcs11/error.hpp"

namespace {

std::mutex g_mutex;
CK_FUNCTION_LIST* g_target = nullptr;

CK_FUNCTION_LIST* target() {
  std::lock_guard lock(g_mutex);
  if (g_target != nullptr) return g_target;
  const char* path = std::getenv("QSCD_SHIM_TARGET");
  if (path == nullptr || *path == '\0') path = "/usr/lib/softhsm/libsofthsm2.so";
  // Never dlclosed: the target lives as long as the process, like the shim.
  void* handle = ::dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return nullptr;
  auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(handle, "C_GetFunctionList"));
  if (get == nullptr || get(&g_target) != CKR_OK) g_target = nullptr;
  return g_target;
}

void count(const char* name) {
  const char* path = std::getenv("QSCD_SHIM_COUNT_FILE");
  if (path == nullptr || *path == '\0') return;
  std::lock_guard lock(g_mutex);
  if (std::FILE* file = std::fopen(path, "a")) {
    std::fprintf(file, "%s\n", name);
    std::fclose(file);
  }
}

// Calls of each function since the last C_Initialize (1 for the first): what "C_X@N" entries
// match. Counted from C_Initialize because the shim may stay loaded after C_Finalize.
std::map<std::string, unsigned long, std::less<>> g_calls;

unsigned long note_call(std::string_view name) {
  std::lock_guard lock(g_mutex);
  if (name == "C_Initialize") g_calls.clear();
  auto [at, added] = g_calls.try_emplace(std::string(name), 0);
  return ++at->second;
}

// Whether `name` is in the comma-separated list in the environment variable `variable`
// (an entry may carry ":value" after the name; `value` receives it). An entry "C_X@N" names only
// the Nth call of C_X, `call` being this call's number (0: any entry with "@" does not match).
bool listed(const char* variable, std::string_view name, std::string_view* value = nullptr, unsigned long call = 0) {
  const char* spec = std::getenv(variable);
  if (spec == nullptr) return false;
  std::string_view rest(spec);
  while (!rest.empty()) {
    auto comma = rest.find(',');
    std::string_view entry = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    auto colon = entry.find(':');
    std::string_view function = entry.substr(0, colon);
    if (auto at = function.find('@'); at != std::string_view::npos) {
      if (std::to_string(call) != function.substr(at + 1)) continue;
      function = function.substr(0, at);
    }
    if (function != name) continue;
    if (value != nullptr) *value = colon == std::string_view::npos ? std::string_view{} : entry.substr(colon + 1);
    return true;
  }
  return false;
}

// The CKR QSCD_SHIM_FAIL assigns to this call of `name`, if any.
std::optional<CK_RV> injected_failure(std::string_view name, unsigned long call) {
  std::string_view value;
  if (!listed("QSCD_SHIM_FAIL", name, &value, call)) return std::nullopt;
  if (auto rv = qscd::p11::rv_from_name(value)) return rv;
  return CKR_GENERAL_ERROR;
}

// QSCD_SHIM_KILL: the process dies here as a kill -9 would have it, mid-call.
void injected_crash(std::string_view name, unsigned long call) {
  if (listed("QSCD_SHIM_KILL", name, nullptr, call)) ::kill(::getpid(), SIGKILL);
}

// `attributes` with CKA_TOKEN as QSCD_SHIM_SET_TOKEN says for `name` (unchanged if it says nothing).
std::vector<CK_ATTRIBUTE> with_token_flag(std::string_view name, CK_ATTRIBUTE* attributes, CK_ULONG count,
                                          CK_BBOOL* storage) {
  std::vector<CK_ATTRIBUTE> out(attributes, attributes + count);
  std::string_view value;
  if (!listed("QSCD_SHIM_SET_TOKEN", name, &value)) return out;
  *storage = value == "true" ? CK_TRUE : CK_FALSE;
  for (auto& attribute : out) {
    if (attribute.type == CKA_TOKEN) {
      attribute.pValue = storage;
      attribute.ulValueLen = sizeof(CK_BBOOL);
      return out;
    }
  }
  out.push_back({CKA_TOKEN, storage, sizeof(CK_BBOOL)});
  return out;
}

// The flags named in the environment variable `variable` ("A|B|0x10"), ORed together.
CK_FLAGS extra_flags(const char* variable) {
  const char* spec = std::getenv(variable);
  if (spec == nullptr) return 0;
  static constexpr struct {
    const char* name;
    CK_FLAGS flag;
  } names[] = {
      {"CKF_HW_SLOT", CKF_HW_SLOT},
      {"CKF_USER_PIN_COUNT_LOW", CKF_USER_PIN_COUNT_LOW}, {"CKF_USER_PIN_FINAL_TRY", CKF_USER_PIN_FINAL_TRY},
      {"CKF_USER_PIN_LOCKED", CKF_USER_PIN_LOCKED},       {"CKF_USER_PIN_TO_BE_CHANGED", CKF_USER_PIN_TO_BE_CHANGED},
      {"CKF_SO_PIN_COUNT_LOW", CKF_SO_PIN_COUNT_LOW},     {"CKF_SO_PIN_FINAL_TRY", CKF_SO_PIN_FINAL_TRY},
      {"CKF_SO_PIN_LOCKED", CKF_SO_PIN_LOCKED},           {"CKF_SO_PIN_TO_BE_CHANGED", CKF_SO_PIN_TO_BE_CHANGED},
  };
  CK_FLAGS flags = 0;
  std::string_view rest(spec);
  while (!rest.empty()) {
    auto bar = rest.find('|');
    std::string_view entry = rest.substr(0, bar);
    rest = bar == std::string_view::npos ? std::string_view{} : rest.substr(bar + 1);
    bool known = false;
    for (const auto& [name, flag] : names) {
      if (entry == name) {
        flags |= flag;
        known = true;
      }
    }
    if (!known) flags |= std::strtoul(std::string(entry).c_str(), nullptr, 0);
  }
  return flags;
}

// One forwarding function per member of CK_FUNCTION_LIST, generated from the
// member's own type so the signatures can never drift from pkcs11.h.
template <typename Pointer>
struct Forward;

template <typename... Args>
struct Forward<CK_RV (*)(Args...)> {
  template <auto Member, const char* Name>
  static CK_RV call(Args... args) {
    count(Name);
    const unsigned long call = note_call(Name);
    injected_crash(Name, call);
    if (auto rv = injected_failure(Name, call)) return *rv;
    CK_FUNCTION_LIST* real = target();
    if (real == nullptr) return CKR_GENERAL_ERROR;
    if (real->*Member == nullptr) return CKR_FUNCTION_NOT_SUPPORTED;
    return (real->*Member)(args...);
  }
};

#define QSCD_SHIM_FUNCTIONS(X)                                                                                   \
  X(C_Initialize) X(C_Finalize) X(C_GetInfo) X(C_GetSlotList) X(C_GetSlotInfo) X(C_GetTokenInfo)                  \
  X(C_GetMechanismList) X(C_GetMechanismInfo) X(C_InitToken) X(C_InitPIN) X(C_SetPIN) X(C_OpenSession)           \
  X(C_CloseSession) X(C_CloseAllSessions) X(C_GetSessionInfo) X(C_GetOperationState) X(C_SetOperationState)      \
  X(C_Login) X(C_Logout) X(C_CreateObject) X(C_CopyObject) X(C_DestroyObject) X(C_GetObjectSize)                 \
  X(C_GetAttributeValue) X(C_SetAttributeValue) X(C_FindObjectsInit) X(C_FindObjects) X(C_FindObjectsFinal)      \
  X(C_EncryptInit) X(C_Encrypt) X(C_EncryptUpdate) X(C_EncryptFinal) X(C_DecryptInit) X(C_Decrypt)               \
  X(C_DecryptUpdate) X(C_DecryptFinal) X(C_DigestInit) X(C_Digest) X(C_DigestUpdate) X(C_DigestKey)              \
  X(C_DigestFinal) X(C_SignInit) X(C_Sign) X(C_SignUpdate) X(C_SignFinal) X(C_SignRecoverInit) X(C_SignRecover)  \
  X(C_VerifyInit) X(C_Verify) X(C_VerifyUpdate) X(C_VerifyFinal) X(C_VerifyRecoverInit) X(C_VerifyRecover)       \
  X(C_DigestEncryptUpdate) X(C_DecryptDigestUpdate) X(C_SignEncryptUpdate) X(C_DecryptVerifyUpdate)              \
  X(C_GenerateKey) X(C_GenerateKeyPair) X(C_WrapKey) X(C_UnwrapKey) X(C_DeriveKey) X(C_SeedRandom)               \
  X(C_GenerateRandom) X(C_GetFunctionStatus) X(C_CancelFunction) X(C_WaitForSlotEvent)

#define QSCD_SHIM_NAME(name) constexpr char name_##name[] = #name;
QSCD_SHIM_FUNCTIONS(QSCD_SHIM_NAME)
#undef QSCD_SHIM_NAME

constexpr char name_C_GetFunctionList[] = "C_GetFunctionList";

CK_RV get_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO* info) {
  CK_RV rv = Forward<CK_C_GetTokenInfo>::call<&CK_FUNCTION_LIST::C_GetTokenInfo, name_C_GetTokenInfo>(slot, info);
  if (rv == CKR_OK && info != nullptr) info->flags |= extra_flags("QSCD_SHIM_TOKEN_FLAGS_OR");
  return rv;
}

CK_RV get_slot_info(CK_SLOT_ID slot, CK_SLOT_INFO* info) {
  CK_RV rv = Forward<CK_C_GetSlotInfo>::call<&CK_FUNCTION_LIST::C_GetSlotInfo, name_C_GetSlotInfo>(slot, info);
  if (rv == CKR_OK && info != nullptr) info->flags |= extra_flags("QSCD_SHIM_SLOT_FLAGS_OR");
  return rv;
}

CK_RV create_object(CK_SESSION_HANDLE session, CK_ATTRIBUTE* attributes, CK_ULONG count, CK_OBJECT_HANDLE* object) {
  CK_BBOOL token = CK_FALSE;
  auto changed = with_token_flag(name_C_CreateObject, attributes, count, &token);
  return Forward<CK_C_CreateObject>::call<&CK_FUNCTION_LIST::C_CreateObject, name_C_CreateObject>(
      session, changed.data(), static_cast<CK_ULONG>(changed.size()), object);
}

CK_RV copy_object(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE source, CK_ATTRIBUTE* attributes, CK_ULONG count,
                  CK_OBJECT_HANDLE* object) {
  CK_BBOOL token = CK_FALSE;
  auto changed = with_token_flag(name_C_CopyObject, attributes, count, &token);
  return Forward<CK_C_CopyObject>::call<&CK_FUNCTION_LIST::C_CopyObject, name_C_CopyObject>(
      session, source, changed.data(), static_cast<CK_ULONG>(changed.size()), object);
}

CK_RV generate_key_pair(CK_SESSION_HANDLE session, CK_MECHANISM* mechanism, CK_ATTRIBUTE* public_template,
                        CK_ULONG public_count, CK_ATTRIBUTE* private_template, CK_ULONG private_count,
                        CK_OBJECT_HANDLE* public_key, CK_OBJECT_HANDLE* private_key) {
  CK_BBOOL public_token = CK_FALSE;
  CK_BBOOL private_token = CK_FALSE;
  auto public_changed = with_token_flag(name_C_GenerateKeyPair, public_template, public_count, &public_token);
  auto private_changed = with_token_flag(name_C_GenerateKeyPair, private_template, private_count, &private_token);
  return Forward<CK_C_GenerateKeyPair>::call<&CK_FUNCTION_LIST::C_GenerateKeyPair, name_C_GenerateKeyPair>(
      session, mechanism, public_changed.data(), static_cast<CK_ULONG>(public_changed.size()), private_changed.data(),
      static_cast<CK_ULONG>(private_changed.size()), public_key, private_key);
}

CK_RV get_function_list(CK_FUNCTION_LIST** list);

CK_FUNCTION_LIST make_list() {
  CK_FUNCTION_LIST list{};
  list.version = {2, 40};
#define QSCD_SHIM_SET(name) \
  list.name = &Forward<decltype(CK_FUNCTION_LIST::name)>::call<&CK_FUNCTION_LIST::name, name_##name>;
  QSCD_SHIM_FUNCTIONS(QSCD_SHIM_SET)
#undef QSCD_SHIM_SET
  list.C_GetTokenInfo = &get_token_info;
  list.C_GetSlotInfo = &get_slot_info;
  list.C_CreateObject = &create_object;
  list.C_CopyObject = &copy_object;
  list.C_GenerateKeyPair = &generate_key_pair;
  list.C_GetFunctionList = &get_function_list;
  return list;
}

CK_FUNCTION_LIST g_list = make_list();

CK_RV get_function_list(CK_FUNCTION_LIST** list) {
  count(name_C_GetFunctionList);
  if (list == nullptr) return CKR_ARGUMENTS_BAD;
  g_list = make_list();
#define QSCD_SHIM_ABSENT(name) \
  if (listed("QSCD_SHIM_ABSENT", #name)) g_list.name = nullptr;
  QSCD_SHIM_FUNCTIONS(QSCD_SHIM_ABSENT)
#undef QSCD_SHIM_ABSENT
  *list = &g_list;
  return CKR_OK;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST** list) {
  return get_function_list(list);
}
