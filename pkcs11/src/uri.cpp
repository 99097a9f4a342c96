#include "qscd/pkcs11/uri.hpp"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>

#include "qscd/pkcs11/module.hpp"

namespace qscd::p11 {

namespace {

struct UriDeleter {
  void operator()(P11KitUri* uri) const noexcept { p11_kit_uri_free(uri); }
};
using UriPtr = std::unique_ptr<P11KitUri, UriDeleter>;

UriPtr new_uri() {
  UriPtr uri(p11_kit_uri_new());
  if (!uri) throw std::bad_alloc();
  return uri;
}

std::string format(P11KitUri* uri, P11KitUriType type) {
  char* text = nullptr;
  int result = p11_kit_uri_format(uri, type, &text);
  if (result != P11_KIT_URI_OK) throw Error(std::string("cannot format a PKCS#11 URI: ") + p11_kit_uri_message(result));
  std::string formatted(text);
  std::free(text);
  return formatted;
}

// A token info for URI formatting: only the four identifying fields, as the
// module reported them (blank-padded).
void set_token(P11KitUri* uri, const TokenInfo& token) {
  CK_TOKEN_INFO* info = p11_kit_uri_get_token_info(uri);
  std::memcpy(info->label, token.raw.label, sizeof info->label);
  std::memcpy(info->manufacturerID, token.raw.manufacturerID, sizeof info->manufacturerID);
  std::memcpy(info->model, token.raw.model, sizeof info->model);
  std::memcpy(info->serialNumber, token.raw.serialNumber, sizeof info->serialNumber);
}

// Module (library-*) and slot (slot-description, slot-manufacturer) parts: matches() compares
// token info and slot-id only, so such a part would be silently ignored and match too much.
// p11-kit leaves an absent string part zero-filled and an absent version at 255.255.
std::string unmatched_parts(P11KitUri* uri) {
  std::string parts;
  auto add = [&parts](bool present, const char* name) {
    if (present) parts += (parts.empty() ? "" : ", ") + std::string(name);
  };
  const CK_INFO* library = p11_kit_uri_get_module_info(uri);
  add(library->libraryDescription[0] != 0, "library-description");
  add(library->manufacturerID[0] != 0, "library-manufacturer");
  add(library->libraryVersion.major != 0xff || library->libraryVersion.minor != 0xff, "library-version");
  const CK_SLOT_INFO* slot = p11_kit_uri_get_slot_info(uri);
  add(slot->slotDescription[0] != 0, "slot-description");
  add(slot->manufacturerID[0] != 0, "slot-manufacturer");
  return parts;
}

}  // namespace

Uri Uri::parse(std::string_view text) {
  UriPtr uri = new_uri();
  std::string owned(text);
  int result = p11_kit_uri_parse(owned.c_str(), P11_KIT_URI_FOR_ANY, uri.get());
  if (result != P11_KIT_URI_OK) {
    // A URI that does not parse may still carry a PIN: then its text is not repeated.
    const bool may_hold_pin = owned.find("pin-") != std::string::npos;
    throw InvalidArgument((may_hold_pin ? std::string("the text") : "'" + owned + "'") +
                          " is not a PKCS#11 URI (RFC 7512): " + p11_kit_uri_message(result));
  }
  if (p11_kit_uri_get_pin_value(uri.get()) != nullptr || p11_kit_uri_get_pin_source(uri.get()) != nullptr) {
    // The URI text is not repeated: it holds the PIN, and error messages end up in logs.
    throw InvalidArgument("PINs are not accepted inside a PKCS#11 URI; use --pin-source");
  }
  if (const std::string parts = unmatched_parts(uri.get()); !parts.empty()) {
    throw InvalidArgument("'" + owned + "' has " + parts +
                          ", which this agent does not match; name the token by token=, serial=, model=, "
                          "manufacturer= or slot-id=");
  }
  if (p11_kit_uri_any_unrecognized(uri.get())) {
    throw InvalidArgument("'" + owned + "' has an attribute this agent does not know; it would match too much");
  }
  return Uri(uri.release(), std::move(owned));
}

Uri::~Uri() { p11_kit_uri_free(uri_); }

Uri::Uri(Uri&& other) noexcept : uri_(std::exchange(other.uri_, nullptr)), text_(std::move(other.text_)) {}

Uri& Uri::operator=(Uri&& other) noexcept {
  if (this != &other) {
    p11_kit_uri_free(uri_);
    uri_ = std::exchange(other.uri_, nullptr);
    text_ = std::move(other.text_);
  }
  return *this;
}

bool Uri::matches(const TokenInfo& token) const {
  CK_SLOT_ID wanted_slot = p11_kit_uri_get_slot_id(uri_);
  if (wanted_slot != static_cast<CK_SLOT_ID>(-1) && wanted_slot != token.slot) return false;
  return p11_kit_uri_match_token_info(uri_, &token.raw) == 1;
}

AttributeTemplate Uri::object_template() const {
  AttributeTemplate query;
  CK_ULONG count = 0;
  CK_ATTRIBUTE* attributes = p11_kit_uri_get_attributes(uri_, &count);
  for (CK_ULONG i = 0; i < count; ++i) {
    const CK_ATTRIBUTE& attribute = attributes[i];
    query.add_bytes(attribute.type, {static_cast<const unsigned char*>(attribute.pValue), attribute.ulValueLen});
  }
  return query;
}

bool Uri::names_object() const {
  CK_ULONG count = 0;
  p11_kit_uri_get_attributes(uri_, &count);
  return count > 0;
}

std::optional<CK_OBJECT_CLASS> Uri::object_class() const {
  CK_ATTRIBUTE* attribute = p11_kit_uri_get_attribute(uri_, CKA_CLASS);
  if (attribute == nullptr || attribute->ulValueLen != sizeof(CK_OBJECT_CLASS)) return std::nullopt;
  CK_OBJECT_CLASS value = 0;
  std::memcpy(&value, attribute->pValue, sizeof value);
  return value;
}

std::string token_uri(const TokenInfo& token) {
  UriPtr uri = new_uri();
  set_token(uri.get(), token);
  return format(uri.get(), P11_KIT_URI_FOR_TOKEN);
}

std::string object_uri(const TokenInfo& token, std::span<const unsigned char> id, std::string_view label,
                       std::optional<CK_OBJECT_CLASS> object_class) {
  UriPtr uri = new_uri();
  set_token(uri.get(), token);
  AttributeTemplate attributes;
  attributes.id(id).label(label);
  if (object_class) attributes.object_class(*object_class);
  for (const CK_ATTRIBUTE& attribute : attributes.attributes()) {
    CK_ATTRIBUTE copy = attribute;
    if (p11_kit_uri_set_attribute(uri.get(), &copy) != P11_KIT_URI_OK) throw Error("cannot put an attribute into a URI");
  }
  return format(uri.get(), P11_KIT_URI_FOR_OBJECT_ON_TOKEN);
}

namespace {

bool in_scope(const TokenInfo& token, TokenScope scope) {
  switch (scope) {
    case TokenScope::initialized:
      return token.initialized;
    case TokenScope::uninitialized:
      return !token.initialized;
    case TokenScope::any:
      return true;
  }
  return false;
}

std::string describe(const TokenInfo& token) {
  if (!token.initialized) return "pkcs11:slot-id=" + std::to_string(token.slot) + " (not initialised)";
  return token_uri(token);
}

}  // namespace

TokenInfo select_token(const Module& module, const std::optional<std::string>& uri_text, TokenScope scope) {
  std::optional<Uri> uri;
  if (uri_text) uri = Uri::parse(*uri_text);
  std::vector<TokenInfo> matches;
  for (TokenInfo& token : list_tokens(module)) {
    if (in_scope(token, scope) && (!uri || uri->matches(token))) matches.push_back(std::move(token));
  }
  if (matches.size() == 1) return std::move(matches.front());
  if (matches.empty()) {
    if (uri) throw NotFound("no token matches " + uri->text(), uri->text());
    const char* kind = scope == TokenScope::uninitialized ? "uninitialised token" : "initialised token";
    throw NotFound(std::string("no ") + kind + " is present in " + module.path(), "pkcs11:");
  }
  std::vector<std::string> candidates;
  for (const auto& token : matches) candidates.push_back(describe(token));
  if (uri) throw Ambiguous(uri->text() + " matches " + std::to_string(matches.size()) + " tokens; name one:", candidates);
  throw Ambiguous(std::to_string(matches.size()) + " tokens are present; name one with --token:", candidates);
}

namespace {

const char* class_name(CK_OBJECT_CLASS object_class) {
  switch (object_class) {
    case CKO_PRIVATE_KEY:
      return "private key";
    case CKO_PUBLIC_KEY:
      return "public key";
    case CKO_CERTIFICATE:
      return "certificate";
    default:
      return "object";
  }
}

}  // namespace

ObjectHandle select_object(const Session& session, const Uri& uri, CK_OBJECT_CLASS object_class, UriClass uri_class) {
  const char* kind = class_name(object_class);
  if (auto named = uri.object_class(); uri_class == UriClass::must_match && named && *named != object_class) {
    throw InvalidArgument(uri.text() + " names a " + class_name(*named) + ", but a " + kind + " is needed here");
  }
  AttributeTemplate query = uri.object_template();
  query.object_class(object_class);  // replaces the URI's own type=, if any
  std::vector<ObjectHandle> found = session.find(query);
  if (found.size() == 1) return found.front();
  const std::string token = "token '" + session.site().token_label + "'";
  if (found.empty()) throw NotFound(std::string("no ") + kind + " on " + token + " matches " + uri.text(), uri.text());
  TokenInfo info = session.token_info();
  std::vector<std::string> candidates;
  for (ObjectHandle handle : found) {
    Bytes id = session.bytes(handle, CKA_ID).value_or(Bytes{});
    Bytes label = session.bytes(handle, CKA_LABEL).value_or(Bytes{});
    candidates.push_back(object_uri(info, id, std::string(label.begin(), label.end())));
  }
  throw Ambiguous(uri.text() + " matches " + std::to_string(found.size()) + " " + kind + "s on " + token +
                      "; name one by id:",
                  candidates);
}

}  // namespace qscd::p11
