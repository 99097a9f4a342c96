#pragma once
// A session on one token (C_OpenSession .. C_Logout + C_CloseSession) and a
// find operation (C_FindObjectsInit .. C_FindObjectsFinal), both move-only RAII.
// Objects are plain CK_OBJECT_HANDLE values: they own nothing, and are only
// meaningful while the session that found them is open.
#include <p11-kit/pkcs11.h>

#include <optional>
#include <span>
#include <vector>

#include "qscd/pkcs11/attributes.hpp"
#include "qscd/pkcs11/error.hpp"
#include "qscd/pkcs11/token.hpp"

namespace qscd::p11 {

class Module;

using ObjectHandle = CK_OBJECT_HANDLE;

class Session {
 public:
  enum class Access { read_only, read_write };

  Session(const Module& module, CK_SLOT_ID slot, Access access);
  // The same for a token the caller has just read (its label for CallErrors): one
  // C_GetTokenInfo fewer.
  Session(const Module& module, const TokenInfo& token, Access access);
  // Logs out if this session logged in and another session of this process is open on the slot
  // (closing the slot's last session ends the login by itself), then closes; never throws.
  ~Session() noexcept;
  Session(Session&& other) noexcept;
  Session& operator=(Session&& other) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // The same as the destructor, but reports a failing C_CloseSession.
  void close();

  [[nodiscard]] CK_FUNCTION_LIST* functions() const noexcept { return functions_; }
  [[nodiscard]] CK_SESSION_HANDLE handle() const noexcept { return handle_; }
  [[nodiscard]] CK_SLOT_ID slot() const noexcept { return slot_; }
  // Slot and token label, for CallErrors.
  [[nodiscard]] const CallSite& site() const noexcept { return site_; }
  // Read fresh every time: the flags change after a failed login.
  [[nodiscard]] TokenInfo token_info() const;
  // Whether the slot says CKF_HW_SLOT (a device, not a software token), read once per session.
  [[nodiscard]] bool hardware_slot() const;

  // Set by the login functions (login.hpp). `by_us`: this session's C_Login
  // returned CKR_OK, so closing it ends the login. A login that was already there
  // (CKR_USER_ALREADY_LOGGED_IN: login state is shared by all sessions of the
  // application) is not this session's to end.
  void mark_logged_in(CK_USER_TYPE user, bool by_us) noexcept {
    logged_in_ = user;
    logout_on_close_ = by_us;
  }
  [[nodiscard]] std::optional<CK_USER_TYPE> logged_in() const noexcept { return logged_in_; }

  // Every object matching `query` (all objects when it is empty).
  [[nodiscard]] std::vector<ObjectHandle> find(const AttributeTemplate& query) const;
  ObjectHandle create(const AttributeTemplate& object);
  // A token object written in one go where the module allows it: made as a session object,
  // copied onto the token (C_CopyObject with CKA_TOKEN true), the session object destroyed.
  // Why: SoftHSM2's file store rewrites a new object's file once for every attribute it
  // defaults during C_CreateObject (26 times for a certificate; on ext4 each rewrite waits for
  // the previous write-back) and 3 times for a copy. A hardware slot (a device writes once
  // either way; each extra call is a round trip to it), a module without C_CopyObject, or one that
  // refuses the session object or the copy before writing anything, gets the plain
  // C_CreateObject; so does a copy that does not hold every value of `object` (it is destroyed).
  // Any other failure (token removed, session gone, a failed write) throws. `object` is left
  // saying CKA_TOKEN true.
  ObjectHandle create_on_token(AttributeTemplate& object);
  // The session object `staged` copied onto the token (C_CopyObject with `changes` and CKA_TOKEN
  // true); `staged` is destroyed either way. The copy when it holds every value of `expected`
  // (which says CKA_TOKEN true); nullopt when the module refused the copy before writing anything,
  // or when the copy does not hold `expected` (it is destroyed). Any other failure throws; a copy
  // whose check failed to read is destroyed as far as the token allows first.
  std::optional<ObjectHandle> copy_onto_token(ObjectHandle staged, AttributeTemplate changes,
                                              const AttributeTemplate& expected);
  // Whether `object` has every attribute of `expected` with exactly its value.
  [[nodiscard]] bool holds(ObjectHandle object, const AttributeTemplate& expected) const;
  void destroy(ObjectHandle object);
  void set_attributes(ObjectHandle object, const AttributeTemplate& values);
  // One attribute, in one C_GetAttributeValue call unless it is longer than 1024 bytes (4096 for
  // CKA_VALUE); CKR_ATTRIBUTE_SENSITIVE and CKR_ATTRIBUTE_TYPE_INVALID are answers
  // (Attribute::State), any other failure throws CallError.
  [[nodiscard]] Attribute attribute(ObjectHandle object, CK_ATTRIBUTE_TYPE type) const;
  // Several attributes in one C_GetAttributeValue call when they are present and fit the first
  // guess of their size; each answer as attribute() gives it. A file-backed module such as
  // SoftHSM2 re-reads the object from disk on every call, so this is what keeps key reads cheap.
  [[nodiscard]] std::vector<Attribute> attributes(ObjectHandle object, std::span<const CK_ATTRIBUTE_TYPE> types) const;
  // Convenience reads: nullopt when the attribute is absent or sensitive.
  [[nodiscard]] std::optional<Bytes> bytes(ObjectHandle object, CK_ATTRIBUTE_TYPE type) const;
  [[nodiscard]] std::optional<bool> flag(ObjectHandle object, CK_ATTRIBUTE_TYPE type) const;
  [[nodiscard]] std::optional<CK_ULONG> ulong(ObjectHandle object, CK_ATTRIBUTE_TYPE type) const;

 private:
  // The two-call read: the value's size, then the value.
  [[nodiscard]] Attribute attribute_by_size(ObjectHandle object, CK_ATTRIBUTE_TYPE type) const;
  void release() noexcept;

  CK_FUNCTION_LIST* functions_ = nullptr;
  CK_SESSION_HANDLE handle_ = CK_INVALID_HANDLE;
  CK_SLOT_ID slot_ = 0;
  CallSite site_;
  std::optional<CK_USER_TYPE> logged_in_;
  bool logout_on_close_ = false;
  mutable std::optional<bool> hardware_slot_;
};

// One C_FindObjectsInit .. C_FindObjectsFinal; a session runs one at a time.
class FindOperation {
 public:
  FindOperation(const Session& session, const AttributeTemplate& query);
  ~FindOperation() noexcept;
  FindOperation(FindOperation&& other) noexcept;
  FindOperation& operator=(FindOperation&&) = delete;
  FindOperation(const FindOperation&) = delete;
  FindOperation& operator=(const FindOperation&) = delete;

  // Up to `max` more handles; empty when the search is exhausted.
  [[nodiscard]] std::vector<ObjectHandle> next(CK_ULONG max);
  // C_FindObjectsFinal, reporting failure (the destructor swallows it).
  void finish();

 private:
  const Session* session_;
  bool active_ = false;
};

}  // namespace qscd::p11
