#include "qscd/pkcs11/session.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <utility>

#include "call.hpp"
#include "refusals.hpp"
#include "qscd/pkcs11/module.hpp"

namespace qscd::p11 {

using detail::refuses_copy;
using detail::refuses_session_object;

namespace {

CK_ATTRIBUTE* mutable_attributes(const AttributeTemplate& query) {
  // The C API takes non-const templates for reads it never writes through.
  return const_cast<CK_ATTRIBUTE*>(query.attributes().data());
}

// The bytes offered for a value on the first read, so that a read is one C_GetAttributeValue
// instead of a size query and a read (on a smart card each is a round trip to the card): enough
// for the ids, labels, names, keys and certificates tokens hold. A longer value is read again.
CK_ULONG first_read_capacity(CK_ATTRIBUTE_TYPE type) { return type == CKA_VALUE ? 4096 : 1024; }

// Sessions open per slot in this process. Closing the last one ends the login (PKCS#11 2.40,
// C_CloseSession: the token's login state for the application returns to public sessions), so
// its C_Logout would be one more round trip to the card for nothing.
std::mutex g_open_mutex;
std::map<CK_SLOT_ID, int> g_open_sessions;

void note_opened(CK_SLOT_ID slot) {
  std::lock_guard lock(g_open_mutex);
  ++g_open_sessions[slot];
}

// True when the session being closed is the slot's last one.
bool note_closing(CK_SLOT_ID slot) noexcept {
  std::lock_guard lock(g_open_mutex);
  auto found = g_open_sessions.find(slot);
  if (found == g_open_sessions.end()) return true;
  if (--found->second > 0) return false;
  g_open_sessions.erase(found);
  return true;
}

}  // namespace

Session::Session(const Module& module, CK_SLOT_ID slot, Access access)
    : Session(module, read_token_info(module.functions(), slot), access) {}

Session::Session(const Module& module, const TokenInfo& token, Access access)
    : functions_(module.functions()), slot_(token.slot), site_{token.slot, token.label} {
  CK_FLAGS flags = CKF_SERIAL_SESSION | (access == Access::read_write ? CKF_RW_SESSION : 0);
  QSCD_P11_CALL(functions_, site_, C_OpenSession, slot_, flags, nullptr, nullptr, &handle_);
  note_opened(slot_);
}

void Session::release() noexcept {
  if (functions_ == nullptr || handle_ == CK_INVALID_HANDLE) return;
  const bool last = note_closing(slot_);
  if (logout_on_close_ && !last) QSCD_P11_CALL_NOEXCEPT(functions_, C_Logout, handle_);
  QSCD_P11_CALL_NOEXCEPT(functions_, C_CloseSession, handle_);
  handle_ = CK_INVALID_HANDLE;
  logged_in_.reset();
  logout_on_close_ = false;
}

Session::~Session() noexcept { release(); }

void Session::close() {
  if (functions_ == nullptr || handle_ == CK_INVALID_HANDLE) return;
  CK_SESSION_HANDLE handle = std::exchange(handle_, CK_INVALID_HANDLE);
  bool was_logged_in = std::exchange(logout_on_close_, false);
  logged_in_.reset();
  const bool last = note_closing(slot_);
  // Logout failing (e.g. the token is gone) must not keep the session open.
  CK_RV logout = was_logged_in && !last ? QSCD_P11_CALL_RAW(functions_, site_, C_Logout, handle) : CKR_OK;
  QSCD_P11_CALL(functions_, site_, C_CloseSession, handle);
  if (logout != CKR_OK && logout != CKR_USER_NOT_LOGGED_IN) throw CallError(logout, "C_Logout", site_);
}

Session::Session(Session&& other) noexcept
    : functions_(other.functions_),
      handle_(std::exchange(other.handle_, CK_INVALID_HANDLE)),
      slot_(other.slot_),
      site_(std::move(other.site_)),
      logged_in_(std::exchange(other.logged_in_, std::nullopt)),
      logout_on_close_(std::exchange(other.logout_on_close_, false)) {}

Session& Session::operator=(Session&& other) noexcept {
  if (this != &other) {
    release();
    functions_ = other.functions_;
    handle_ = std::exchange(other.handle_, CK_INVALID_HANDLE);
    slot_ = other.slot_;
    site_ = std::move(other.site_);
    logged_in_ = std::exchange(other.logged_in_, std::nullopt);
    logout_on_close_ = std::exchange(other.logout_on_close_, false);
  }
  return *this;
}

TokenInfo Session::token_info() const { return read_token_info(functions_, slot_); }

bool Session::hardware_slot() const {
  if (!hardware_slot_) {
    CK_SLOT_INFO slot{};
    QSCD_P11_CALL(functions_, site_, C_GetSlotInfo, slot_, &slot);
    hardware_slot_ = (slot.flags & CKF_HW_SLOT) != 0;
  }
  return *hardware_slot_;
}

std::vector<ObjectHandle> Session::find(const AttributeTemplate& query) const {
  FindOperation operation(*this, query);
  std::vector<ObjectHandle> all;
  for (;;) {
    auto batch = operation.next(64);
    if (batch.empty()) break;
    all.insert(all.end(), batch.begin(), batch.end());
  }
  operation.finish();
  return all;
}

ObjectHandle Session::create(const AttributeTemplate& object) {
  ObjectHandle handle = CK_INVALID_HANDLE;
  QSCD_P11_CALL(functions_, site_, C_CreateObject, handle_, mutable_attributes(object), object.size(), &handle);
  return handle;
}

ObjectHandle Session::create_on_token(AttributeTemplate& object) {
  object.token(true);
  if (functions_->C_CopyObject == nullptr || functions_->C_DestroyObject == nullptr) return create(object);
  // The copy is for SoftHSM2's file store; a device writes the object once either way, and each
  // extra call is a round trip to it.
  if (hardware_slot()) return create(object);
  object.token(false);
  ObjectHandle staged = CK_INVALID_HANDLE;
  CK_RV rv = QSCD_P11_CALL_RAW(functions_, site_, C_CreateObject, handle_, object.data(), object.size(), &staged);
  object.token(true);
  if (rv != CKR_OK) {
    if (!refuses_session_object(rv)) throw CallError(rv, "C_CreateObject", site_);
    return create(object);
  }
  // `object` says CKA_TOKEN true now: a module that ignored CKA_TOKEN false has made the token
  // object already. Otherwise the staged object goes below, whatever it holds.
  if (holds(staged, object)) return staged;
  if (auto copied = copy_onto_token(staged, AttributeTemplate{}, object)) return *copied;
  return create(object);
}

std::optional<ObjectHandle> Session::copy_onto_token(ObjectHandle staged, AttributeTemplate changes,
                                                     const AttributeTemplate& expected) {
  changes.token(true);
  ObjectHandle copied = CK_INVALID_HANDLE;
  CK_RV rv = QSCD_P11_CALL_RAW(functions_, site_, C_CopyObject, handle_, staged, changes.data(), changes.size(), &copied);
  // A session object the module cannot destroy goes with the session; the lookups that matter
  // ask for CKA_TOKEN true, so it is never mistaken for the token's copy.
  QSCD_P11_CALL_NOEXCEPT(functions_, C_DestroyObject, handle_, staged);
  if (rv != CKR_OK) {
    if (!refuses_copy(rv)) throw CallError(rv, "C_CopyObject", site_);
    return std::nullopt;
  }
  bool complete = false;
  try {
    complete = holds(copied, expected);
  } catch (...) {
    // The copy is on the token but unchecked (the token failed the read): it goes, or a
    // caller's cleanup, which never learns its handle, would leave it behind (a private key
    // without its public half, issue 18 defect 9). Best effort: the read's error is what counts.
    QSCD_P11_CALL_NOEXCEPT(functions_, C_DestroyObject, handle_, copied);
    throw;
  }
  if (!complete) {
    destroy(copied);
    return std::nullopt;
  }
  return copied;
}

bool Session::holds(ObjectHandle object, const AttributeTemplate& expected) const {
  std::vector<CK_ATTRIBUTE_TYPE> types;
  for (const CK_ATTRIBUTE& attribute : expected.attributes()) types.push_back(attribute.type);
  std::vector<Attribute> stored = attributes(object, types);
  for (std::size_t i = 0; i < types.size(); ++i) {
    const CK_ATTRIBUTE& want = expected.attributes()[i];
    const auto* bytes = static_cast<const unsigned char*>(want.pValue);
    if (!stored[i].present() || !std::equal(stored[i].value.begin(), stored[i].value.end(), bytes, bytes + want.ulValueLen)) {
      return false;
    }
  }
  return true;
}

void Session::destroy(ObjectHandle object) { QSCD_P11_CALL(functions_, site_, C_DestroyObject, handle_, object); }

void Session::set_attributes(ObjectHandle object, const AttributeTemplate& values) {
  QSCD_P11_CALL(functions_, site_, C_SetAttributeValue, handle_, object, mutable_attributes(values), values.size());
}

Attribute Session::attribute(ObjectHandle object, CK_ATTRIBUTE_TYPE type) const {
  Attribute result{Attribute::State::present, Bytes(first_read_capacity(type))};
  CK_ATTRIBUTE read{type, result.value.data(), static_cast<CK_ULONG>(result.value.size())};
  CK_RV rv = QSCD_P11_CALL_RAW(functions_, site_, C_GetAttributeValue, handle_, object, &read, 1UL);
  if (rv == CKR_ATTRIBUTE_SENSITIVE) return {Attribute::State::sensitive, {}};
  if (rv == CKR_ATTRIBUTE_TYPE_INVALID) return {Attribute::State::absent, {}};
  if (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL) throw CallError(rv, "C_GetAttributeValue", site_);
  // Some modules answer OK with CK_UNAVAILABLE_INFORMATION instead of an error.
  if (rv == CKR_OK && read.ulValueLen == CK_UNAVAILABLE_INFORMATION) return {Attribute::State::sensitive, {}};
  if (rv == CKR_OK && read.ulValueLen <= result.value.size()) {
    result.value.resize(read.ulValueLen);
    return result;
  }
  return attribute_by_size(object, type);  // longer than the first guess
}

Attribute Session::attribute_by_size(ObjectHandle object, CK_ATTRIBUTE_TYPE type) const {
  CK_ATTRIBUTE probe{type, nullptr, 0};
  CK_RV rv = QSCD_P11_CALL_RAW(functions_, site_, C_GetAttributeValue, handle_, object, &probe, 1UL);
  if (rv == CKR_ATTRIBUTE_SENSITIVE) return {Attribute::State::sensitive, {}};
  if (rv == CKR_ATTRIBUTE_TYPE_INVALID) return {Attribute::State::absent, {}};
  if (rv != CKR_OK) throw CallError(rv, "C_GetAttributeValue", site_);
  if (probe.ulValueLen == CK_UNAVAILABLE_INFORMATION) return {Attribute::State::sensitive, {}};
  Attribute result{Attribute::State::present, Bytes(probe.ulValueLen)};
  if (probe.ulValueLen == 0) return result;
  probe.pValue = result.value.data();
  QSCD_P11_CALL(functions_, site_, C_GetAttributeValue, handle_, object, &probe, 1UL);
  result.value.resize(probe.ulValueLen);
  return result;
}

std::vector<Attribute> Session::attributes(ObjectHandle object, std::span<const CK_ATTRIBUTE_TYPE> types) const {
  std::vector<Attribute> result(types.size());
  std::vector<CK_ATTRIBUTE> reads;
  reads.reserve(types.size());
  for (std::size_t i = 0; i < types.size(); ++i) {
    result[i] = {Attribute::State::present, Bytes(first_read_capacity(types[i]))};
    reads.push_back({types[i], result[i].value.data(), static_cast<CK_ULONG>(result[i].value.size())});
  }
  const auto count = static_cast<CK_ULONG>(reads.size());
  CK_RV rv = QSCD_P11_CALL_RAW(functions_, site_, C_GetAttributeValue, handle_, object, reads.data(), count);
  if (rv != CKR_OK && rv != CKR_ATTRIBUTE_SENSITIVE && rv != CKR_ATTRIBUTE_TYPE_INVALID && rv != CKR_BUFFER_TOO_SMALL) {
    throw CallError(rv, "C_GetAttributeValue", site_);
  }
  for (std::size_t i = 0; i < reads.size(); ++i) {
    const CK_ULONG length = reads[i].ulValueLen;
    const CK_ULONG capacity = result[i].value.size();
    // PKCS#11 has the module process every attribute even when it answers one of the three
    // errors, and mark the sensitive, absent and too long ones CK_UNAVAILABLE_INFORMATION. A
    // length equal to the buffer after an error could also be one the module left untouched.
    const bool read = length != CK_UNAVAILABLE_INFORMATION && (length < capacity || (length == capacity && rv == CKR_OK));
    if (read) {
      result[i].value.resize(length);
    } else {
      result[i] = attribute(object, types[i]);  // alone, it says whether sensitive, absent or long
    }
  }
  return result;
}

std::optional<Bytes> Session::bytes(ObjectHandle object, CK_ATTRIBUTE_TYPE type) const {
  Attribute read = attribute(object, type);
  if (!read.present()) return std::nullopt;
  return std::move(read.value);
}

std::optional<bool> Session::flag(ObjectHandle object, CK_ATTRIBUTE_TYPE type) const {
  Attribute read = attribute(object, type);
  if (!read.present()) return std::nullopt;
  return read.as_bool();
}

std::optional<CK_ULONG> Session::ulong(ObjectHandle object, CK_ATTRIBUTE_TYPE type) const {
  Attribute read = attribute(object, type);
  if (!read.present()) return std::nullopt;
  return read.as_ulong();
}

FindOperation::FindOperation(const Session& session, const AttributeTemplate& query) : session_(&session) {
  QSCD_P11_CALL(session.functions(), session.site(), C_FindObjectsInit, session.handle(), mutable_attributes(query),
                query.size());
  active_ = true;
}

FindOperation::~FindOperation() noexcept {
  if (active_) QSCD_P11_CALL_NOEXCEPT(session_->functions(), C_FindObjectsFinal, session_->handle());
}

FindOperation::FindOperation(FindOperation&& other) noexcept
    : session_(other.session_), active_(std::exchange(other.active_, false)) {}

std::vector<ObjectHandle> FindOperation::next(CK_ULONG max) {
  std::vector<ObjectHandle> handles(max);
  CK_ULONG count = 0;
  QSCD_P11_CALL(session_->functions(), session_->site(), C_FindObjects, session_->handle(), handles.data(), max,
                &count);
  handles.resize(count);
  return handles;
}

void FindOperation::finish() {
  if (!active_) return;
  active_ = false;
  QSCD_P11_CALL(session_->functions(), session_->site(), C_FindObjectsFinal, session_->handle());
}

}  // namespace qscd::p11
