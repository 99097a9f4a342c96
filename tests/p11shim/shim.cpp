// A fault-injecting PKCS#11 module for tests: a layer over a real module, not a
// mock. Every call is forwarded to the module named by QSCD_SHIM_TARGET
// (default SoftHSM2). Controlled by the environment, read at each call:
//   QSCD_SHIM_COUNT_FILE=path          append one line per call ("C_Login")
//   QSCD_SHIM_TRACE=path               append one line per call: "C_Login CKR_OK 20113us slot=N user=CKU_USER"
//                                      (function, what the caller got, wall time in the shim, the
//                                      slot when the call has one, the user type of a C_Login)
//   QSCD_SHIM_FAIL=C_Sign:CKR_DEVICE_REMOVED[,C_X:CKR_Y]
//                                      answer that CKR without calling the module; C_X@2:CKR_Y
//                                      only for the 2nd call of C_X since C_Initialize
//   QSCD_SHIM_KILL=C_CopyObject@2      SIGKILL the process at that call, before the module sees it:
//                                      a crash in the middle of a library function
//   QSCD_SHIM_LATENCY=default:20ms,C_GenerateKeyPair:2s
//                                      each call waits that long before the module answers (us, ms
//                                      or s; `default` for the functions not named): the APDU round
//                                      trips of a USB token. Calls on one slot take turns, as a card
//                                      answers one command at a time; other slots go on meanwhile.
//   QSCD_SHIM_REMOVED_FILE=path        the tokens pulled out right now: one token label a line, or
//                                      `*` for all; no file or an empty one: all inserted. While a
//                                      token is out, C_GetSlotList(tokenPresent) leaves its slot
//                                      out, C_GetSlotInfo clears CKF_TOKEN_PRESENT, the slot's
//                                      other functions answer CKR_TOKEN_NOT_PRESENT and its sessions
//                                      CKR_DEVICE_REMOVED; pulling it out ends its sessions and login
//                                      (C_CloseAllSessions on the module). C_WaitForSlotEvent
//                                      reports each change (blocking or CKF_DONT_BLOCK) and ends with
//                                      CKR_CRYPTOKI_NOT_INITIALIZED at C_Finalize, as a reader's would.
//   QSCD_SHIM_REMOVE_AT=C_X@N          the token is pulled out at that call (the call answers as
//                                      above) and stays out for the rest of the process
//   QSCD_SHIM_SIGN_PIN=PIN             a second PIN for the context-specific login of a
//                                      CKA_ALWAYS_AUTHENTICATE key (the eToken 5110 CC's Digital
//                                      Signature PIN): C_Login(CKU_CONTEXT_SPECIFIC) with any other
//                                      PIN answers CKR_PIN_INCORRECT; with this one the module gets
//                                      the user PIN this process logged in with
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

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "qscd/pkcs11/error.hpp"

namespace {

using Clock = std::chrono::steady_clock;

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

// "20ms", "2s", "500us" -> microseconds; 0 when it does not parse.
long long parse_delay(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return 0;
  const long long value = std::stoll(std::string(text.substr(0, digits)));
  const std::string_view unit = text.substr(digits);
  if (unit == "us") return value;
  if (unit == "ms" || unit.empty()) return value * 1000;
  if (unit == "s") return value * 1000000;
  return 0;
}

// QSCD_SHIM_LATENCY's delay for `name`: its own entry, else `default`, else none.
long long latency_us(std::string_view name) {
  if (name == "C_WaitForSlotEvent") return 0;  // a wait, not a command to the card
  std::string_view value;
  if (listed("QSCD_SHIM_LATENCY", name, &value)) return parse_delay(value);
  if (listed("QSCD_SHIM_LATENCY", "default", &value)) return parse_delay(value);
  return 0;
}

// What the first argument of a function is: a slot, a session, or neither.
enum class Scope { none, slot, session };

Scope scope_of(std::string_view name) {
  static constexpr std::string_view slot_functions[] = {"C_GetSlotInfo",      "C_GetTokenInfo", "C_GetMechanismList",
                                                        "C_GetMechanismInfo", "C_InitToken",    "C_OpenSession",
                                                        "C_CloseAllSessions"};
  static constexpr std::string_view global_functions[] = {"C_Initialize", "C_Finalize", "C_GetInfo", "C_GetSlotList",
                                                          "C_WaitForSlotEvent", "C_GetFunctionList"};
  for (auto function : slot_functions) {
    if (function == name) return Scope::slot;
  }
  for (auto function : global_functions) {
    if (function == name) return Scope::none;
  }
  return Scope::session;
}

// ---- sessions, slots, removal -----------------------------------------------------------------

// Everything about slots and sessions, under one mutex (never held while another thread's call
// is in the module, except the module calls made to map labels to slots).
std::mutex g_state_mutex;
bool g_initialized = false;
unsigned long g_generation = 0;                   // C_Initialize count: a wait ends when it moves
std::map<CK_SESSION_HANDLE, CK_SLOT_ID> g_sessions;  // open sessions and their slots
std::set<CK_SESSION_HANDLE> g_dead_sessions;      // ended by a removal: CKR_SESSION_HANDLE_INVALID
std::set<CK_SLOT_ID> g_removed;                   // out at the last look
std::set<CK_SLOT_ID> g_forced_out;                // QSCD_SHIM_REMOVE_AT: out for good
std::vector<CK_SLOT_ID> g_events;                 // changes not yet reported by C_WaitForSlotEvent
std::map<CK_SLOT_ID, std::unique_ptr<std::mutex>> g_slot_turns;  // a card answers one call at a time
std::vector<unsigned char> g_user_pin;            // the PIN of this process's CKU_USER login

bool removal_controlled() {
  const char* file = std::getenv("QSCD_SHIM_REMOVED_FILE");
  return (file != nullptr && *file != '\0') || std::getenv("QSCD_SHIM_REMOVE_AT") != nullptr;
}

std::string padded_label(const CK_TOKEN_INFO& info) {
  std::size_t size = sizeof info.label;
  while (size > 0 && (info.label[size - 1] == ' ' || info.label[size - 1] == '\0')) --size;
  return {reinterpret_cast<const char*>(info.label), size};
}

// The slots QSCD_SHIM_REMOVED_FILE names now (by token label, or `*`). Caller holds g_state_mutex.
std::set<CK_SLOT_ID> slots_in_removed_file() {
  std::set<CK_SLOT_ID> out;
  const char* path = std::getenv("QSCD_SHIM_REMOVED_FILE");
  if (path == nullptr || *path == '\0') return out;
  std::ifstream in(path);
  std::set<std::string> labels;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) labels.insert(line);
  }
  if (labels.empty()) return out;
  CK_FUNCTION_LIST* real = target();
  if (real == nullptr) return out;
  CK_ULONG count = 0;
  if (real->C_GetSlotList(CK_FALSE, nullptr, &count) != CKR_OK) return out;
  std::vector<CK_SLOT_ID> slots(count);
  if (real->C_GetSlotList(CK_FALSE, slots.data(), &count) != CKR_OK) return out;
  slots.resize(count);
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info{};
    if (labels.contains("*")) {
      out.insert(slot);
    } else if (real->C_GetTokenInfo(slot, &info) == CKR_OK && labels.contains(padded_label(info))) {
      out.insert(slot);
    }
  }
  return out;
}

// Looks at what is pulled out now; a token newly out loses its sessions and login, every change
// is an event. Caller holds g_state_mutex.
void update_removed() {
  if (!g_initialized || !removal_controlled()) return;
  std::set<CK_SLOT_ID> now = slots_in_removed_file();
  now.insert(g_forced_out.begin(), g_forced_out.end());
  for (CK_SLOT_ID slot : now) {
    if (g_removed.contains(slot)) continue;
    for (auto it = g_sessions.begin(); it != g_sessions.end();) {
      if (it->second == slot) {
        g_dead_sessions.insert(it->first);
        it = g_sessions.erase(it);
      } else {
        ++it;
      }
    }
    if (CK_FUNCTION_LIST* real = target()) real->C_CloseAllSessions(slot);
    g_events.push_back(slot);
  }
  for (CK_SLOT_ID slot : g_removed) {
    if (!now.contains(slot)) g_events.push_back(slot);
  }
  g_removed = std::move(now);
}

// The slot a call is about (its own argument, or its session's), if any.
std::optional<CK_SLOT_ID> slot_of(Scope scope, std::optional<CK_ULONG> first) {
  if (!first || scope == Scope::none) return std::nullopt;
  if (scope == Scope::slot) return *first;
  std::lock_guard lock(g_state_mutex);
  auto found = g_sessions.find(*first);
  if (found == g_sessions.end()) return std::nullopt;
  return found->second;
}

std::mutex& slot_turn(CK_SLOT_ID slot) {
  std::lock_guard lock(g_state_mutex);
  auto& turn = g_slot_turns[slot];
  if (!turn) turn = std::make_unique<std::mutex>();
  return *turn;
}

// What a call answers while its token is out or its session was ended by a removal; nullopt: the
// module answers.
std::optional<CK_RV> removal_answer(std::string_view name, Scope scope, std::optional<CK_ULONG> first,
                                    std::optional<CK_SLOT_ID> slot, unsigned long call) {
  if (!removal_controlled()) return std::nullopt;
  std::lock_guard lock(g_state_mutex);
  if (listed("QSCD_SHIM_REMOVE_AT", name, nullptr, call)) {
    if (slot) {
      g_forced_out.insert(*slot);
    } else if (CK_FUNCTION_LIST* real = target(); real != nullptr && g_initialized) {
      CK_ULONG count = 0;
      if (real->C_GetSlotList(CK_FALSE, nullptr, &count) == CKR_OK) {
        std::vector<CK_SLOT_ID> slots(count);
        if (real->C_GetSlotList(CK_FALSE, slots.data(), &count) == CKR_OK) {
          slots.resize(count);
          g_forced_out.insert(slots.begin(), slots.end());
        }
      }
    }
  }
  update_removed();
  if (scope == Scope::session && first && g_dead_sessions.contains(*first)) {
    return name == "C_CloseSession" || name == "C_Logout" ? CKR_SESSION_HANDLE_INVALID : CKR_DEVICE_REMOVED;
  }
  if (!slot || !g_removed.contains(*slot)) return std::nullopt;
  // The slot (the reader) is still there: its description, and sessions that are already gone.
  if (name == "C_GetSlotInfo" || name == "C_CloseAllSessions") return std::nullopt;
  return scope == Scope::slot ? CKR_TOKEN_NOT_PRESENT : CKR_DEVICE_REMOVED;
}

bool is_removed(CK_SLOT_ID slot) {
  std::lock_guard lock(g_state_mutex);
  return g_removed.contains(slot);
}

// ---- trace -----------------------------------------------------------------------------------

void trace(const char* name, CK_RV rv, Clock::time_point started, std::optional<CK_SLOT_ID> slot, const char* detail) {
  const char* path = std::getenv("QSCD_SHIM_TRACE");
  if (path == nullptr || *path == '\0') return;
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count();
  std::string line = std::string(name) + " " + qscd::p11::rv_name(rv) + " " + std::to_string(us) + "us";
  if (slot) line += " slot=" + std::to_string(*slot);
  if (detail != nullptr) line += std::string(" ") + detail;
  line += "\n";
  std::lock_guard lock(g_mutex);
  if (std::FILE* file = std::fopen(path, "a")) {
    std::fputs(line.c_str(), file);
    std::fclose(file);
  }
}

template <typename First, typename... Rest>
std::optional<CK_ULONG> first_ulong(First first, Rest...) {
  if constexpr (std::is_same_v<First, CK_ULONG>) {
    return first;
  } else {
    return std::nullopt;
  }
}

// One call through the shim: counted, traced, killed, failed, delayed or answered as removed as
// the environment says, else `forward(module)`.
template <typename Forwarder>
CK_RV intercept(const char* name, std::optional<CK_ULONG> first, Forwarder&& forward, const char* detail = nullptr) {
  const auto started = Clock::now();
  count(name);
  const unsigned long call = note_call(name);
  injected_crash(name, call);
  const Scope scope = scope_of(name);
  const std::optional<CK_SLOT_ID> slot = slot_of(scope, first);
  CK_RV rv = CKR_OK;
  const long long delay = latency_us(name);
  // A card answers one command at a time: calls on one slot take turns, other slots go on.
  std::unique_lock<std::mutex> turn;
  if (delay > 0 && slot) turn = std::unique_lock<std::mutex>(slot_turn(*slot));
  if (delay > 0) std::this_thread::sleep_for(std::chrono::microseconds(delay));
  if (auto removed = removal_answer(name, scope, first, slot, call)) {
    rv = *removed;
  } else if (auto injected = injected_failure(name, call)) {
    rv = *injected;
  } else if (CK_FUNCTION_LIST* real = target(); real == nullptr) {
    rv = CKR_GENERAL_ERROR;
  } else {
    rv = forward(real);
  }
  if (turn.owns_lock()) turn.unlock();
  trace(name, rv, started, slot, detail);
  return rv;
}

// One forwarding function per member of CK_FUNCTION_LIST, generated from the
// member's own type so the signatures can never drift from pkcs11.h.
template <typename Pointer>
struct Forward;

template <typename... Args>
struct Forward<CK_RV (*)(Args...)> {
  template <auto Member, const char* Name>
  static CK_RV call(Args... args) {
    return intercept(Name, first_ulong(args...), [&](CK_FUNCTION_LIST* real) -> CK_RV {
      if (real->*Member == nullptr) return CKR_FUNCTION_NOT_SUPPORTED;
      return (real->*Member)(args...);
    });
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

#define QSCD_SHIM_FORWARD(name, ...) \
  Forward<decltype(CK_FUNCTION_LIST::name)>::call<&CK_FUNCTION_LIST::name, name_##name>(__VA_ARGS__)

CK_RV initialize(void* args) {
  CK_RV rv = QSCD_SHIM_FORWARD(C_Initialize, args);
  if (rv != CKR_OK) return rv;
  std::lock_guard lock(g_state_mutex);
  g_initialized = true;
  ++g_generation;
  g_sessions.clear();
  g_dead_sessions.clear();
  g_events.clear();
  g_removed.clear();
  // What is out at the start is how things are, not a change.
  update_removed();
  g_events.clear();
  return rv;
}

CK_RV finalize(void* reserved) {
  {
    std::lock_guard lock(g_state_mutex);
    g_initialized = false;
    ++g_generation;  // ends a C_WaitForSlotEvent
    g_user_pin.clear();
  }
  return QSCD_SHIM_FORWARD(C_Finalize, reserved);
}

CK_RV get_slot_list(CK_BBOOL token_present, CK_SLOT_ID* list, CK_ULONG* count) {
  if (!removal_controlled() || token_present == CK_FALSE) return QSCD_SHIM_FORWARD(C_GetSlotList, token_present, list, count);
  return intercept(name_C_GetSlotList, std::nullopt, [&](CK_FUNCTION_LIST* real) -> CK_RV {
    if (count == nullptr) return CKR_ARGUMENTS_BAD;
    CK_ULONG all = 0;
    CK_RV rv = real->C_GetSlotList(CK_TRUE, nullptr, &all);
    if (rv != CKR_OK) return rv;
    std::vector<CK_SLOT_ID> slots(all);
    rv = real->C_GetSlotList(CK_TRUE, slots.data(), &all);
    if (rv != CKR_OK) return rv;
    slots.resize(all);
    std::vector<CK_SLOT_ID> present;
    for (CK_SLOT_ID slot : slots) {
      if (!is_removed(slot)) present.push_back(slot);
    }
    const CK_ULONG room = *count;
    *count = static_cast<CK_ULONG>(present.size());
    if (list == nullptr) return CKR_OK;
    if (room < present.size()) return CKR_BUFFER_TOO_SMALL;
    std::copy(present.begin(), present.end(), list);
    return CKR_OK;
  });
}

CK_RV wait_for_slot_event(CK_FLAGS flags, CK_SLOT_ID* slot, void* reserved) {
  if (!removal_controlled()) return QSCD_SHIM_FORWARD(C_WaitForSlotEvent, flags, slot, reserved);
  return intercept(name_C_WaitForSlotEvent, std::nullopt, [&](CK_FUNCTION_LIST*) -> CK_RV {
    unsigned long generation = 0;
    {
      std::lock_guard lock(g_state_mutex);
      generation = g_generation;
    }
    for (;;) {
      {
        std::lock_guard lock(g_state_mutex);
        if (!g_initialized || g_generation != generation) return CKR_CRYPTOKI_NOT_INITIALIZED;
        update_removed();
        if (!g_events.empty()) {
          if (slot != nullptr) *slot = g_events.front();
          g_events.erase(g_events.begin());
          return CKR_OK;
        }
      }
      if ((flags & CKF_DONT_BLOCK) != 0) return CKR_NO_EVENT;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
}

CK_RV open_session(CK_SLOT_ID slot, CK_FLAGS flags, void* application, CK_NOTIFY notify, CK_SESSION_HANDLE* session) {
  CK_RV rv = QSCD_SHIM_FORWARD(C_OpenSession, slot, flags, application, notify, session);
  if (rv == CKR_OK && session != nullptr) {
    std::lock_guard lock(g_state_mutex);
    g_sessions[*session] = slot;
    g_dead_sessions.erase(*session);  // the module may hand out a closed session's handle again
  }
  return rv;
}

CK_RV close_session(CK_SESSION_HANDLE session) {
  CK_RV rv = QSCD_SHIM_FORWARD(C_CloseSession, session);
  std::lock_guard lock(g_state_mutex);
  if (rv == CKR_OK) g_sessions.erase(session);
  return rv;
}

CK_RV close_all_sessions(CK_SLOT_ID slot) {
  CK_RV rv = QSCD_SHIM_FORWARD(C_CloseAllSessions, slot);
  std::lock_guard lock(g_state_mutex);
  if (rv == CKR_OK) std::erase_if(g_sessions, [slot](const auto& entry) { return entry.second == slot; });
  return rv;
}

const char* user_name(CK_USER_TYPE user) {
  switch (user) {
    case CKU_SO:
      return "user=CKU_SO";
    case CKU_USER:
      return "user=CKU_USER";
    case CKU_CONTEXT_SPECIFIC:
      return "user=CKU_CONTEXT_SPECIFIC";
    default:
      return "user=?";
  }
}

CK_RV login(CK_SESSION_HANDLE session, CK_USER_TYPE user, CK_UTF8CHAR* pin, CK_ULONG length) {
  const char* sign_pin = std::getenv("QSCD_SHIM_SIGN_PIN");
  const bool second_pin = sign_pin != nullptr && user == CKU_CONTEXT_SPECIFIC;
  return intercept(name_C_Login, session, [&](CK_FUNCTION_LIST* real) -> CK_RV {
    if (real->C_Login == nullptr) return CKR_FUNCTION_NOT_SUPPORTED;
    if (second_pin) {
      const std::string_view given(reinterpret_cast<const char*>(pin), pin == nullptr ? 0 : length);
      if (given != sign_pin) return CKR_PIN_INCORRECT;
      std::vector<unsigned char> user_pin;
      {
        std::lock_guard lock(g_state_mutex);
        user_pin = g_user_pin;
      }
      if (user_pin.empty()) return CKR_USER_NOT_LOGGED_IN;
      return real->C_Login(session, user, user_pin.data(), static_cast<CK_ULONG>(user_pin.size()));
    }
    CK_RV rv = real->C_Login(session, user, pin, length);
    if (rv == CKR_OK && user == CKU_USER && pin != nullptr) {
      std::lock_guard lock(g_state_mutex);
      g_user_pin.assign(pin, pin + length);
    }
    return rv;
  }, user_name(user));
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

CK_RV get_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO* info) {
  CK_RV rv = QSCD_SHIM_FORWARD(C_GetTokenInfo, slot, info);
  if (rv == CKR_OK && info != nullptr) info->flags |= extra_flags("QSCD_SHIM_TOKEN_FLAGS_OR");
  return rv;
}

CK_RV get_slot_info(CK_SLOT_ID slot, CK_SLOT_INFO* info) {
  CK_RV rv = QSCD_SHIM_FORWARD(C_GetSlotInfo, slot, info);
  if (rv == CKR_OK && info != nullptr) {
    info->flags |= extra_flags("QSCD_SHIM_SLOT_FLAGS_OR");
    if (removal_controlled()) {
      // A reader: the token can be pulled out, and now may be.
      info->flags |= CKF_REMOVABLE_DEVICE;
      if (is_removed(slot)) info->flags &= ~static_cast<CK_FLAGS>(CKF_TOKEN_PRESENT);
    }
  }
  return rv;
}

CK_RV create_object(CK_SESSION_HANDLE session, CK_ATTRIBUTE* attributes, CK_ULONG count, CK_OBJECT_HANDLE* object) {
  CK_BBOOL token = CK_FALSE;
  auto changed = with_token_flag(name_C_CreateObject, attributes, count, &token);
  return QSCD_SHIM_FORWARD(C_CreateObject, session, changed.data(), static_cast<CK_ULONG>(changed.size()), object);
}

CK_RV copy_object(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE source, CK_ATTRIBUTE* attributes, CK_ULONG count,
                  CK_OBJECT_HANDLE* object) {
  CK_BBOOL token = CK_FALSE;
  auto changed = with_token_flag(name_C_CopyObject, attributes, count, &token);
  return QSCD_SHIM_FORWARD(C_CopyObject, session, source, changed.data(), static_cast<CK_ULONG>(changed.size()), object);
}

CK_RV generate_key_pair(CK_SESSION_HANDLE session, CK_MECHANISM* mechanism, CK_ATTRIBUTE* public_template,
                        CK_ULONG public_count, CK_ATTRIBUTE* private_template, CK_ULONG private_count,
                        CK_OBJECT_HANDLE* public_key, CK_OBJECT_HANDLE* private_key) {
  CK_BBOOL public_token = CK_FALSE;
  CK_BBOOL private_token = CK_FALSE;
  auto public_changed = with_token_flag(name_C_GenerateKeyPair, public_template, public_count, &public_token);
  auto private_changed = with_token_flag(name_C_GenerateKeyPair, private_template, private_count, &private_token);
  return QSCD_SHIM_FORWARD(C_GenerateKeyPair, session, mechanism, public_changed.data(),
                           static_cast<CK_ULONG>(public_changed.size()), private_changed.data(),
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
  list.C_Initialize = &initialize;
  list.C_Finalize = &finalize;
  list.C_GetSlotList = &get_slot_list;
  list.C_WaitForSlotEvent = &wait_for_slot_event;
  list.C_OpenSession = &open_session;
  list.C_CloseSession = &close_session;
  list.C_CloseAllSessions = &close_all_sessions;
  list.C_Login = &login;
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
