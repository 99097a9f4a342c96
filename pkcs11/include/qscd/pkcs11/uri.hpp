#pragma once
// RFC 7512 PKCS#11 URIs, parsed, matched and formatted by p11-kit's
// p11_kit_uri_* functions (no URI parsing of our own), and the selection rules
// of product.md built on them.
#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qscd/pkcs11/attributes.hpp"
#include "qscd/pkcs11/session.hpp"
#include "qscd/pkcs11/token.hpp"

namespace qscd::p11 {

class Module;

class Uri {
 public:
  // Throws InvalidArgument naming the text and p11-kit's reason. Unknown path
  // attributes are refused too: silently ignoring `tokn=x` would widen a match.
  // A URI with pin-value= or pin-source= is refused without repeating its text;
  // one with library-* or slot-description/slot-manufacturer parts (which
  // matches() does not compare) is refused naming them.
  static Uri parse(std::string_view text);

  ~Uri();
  Uri(Uri&& other) noexcept;
  Uri& operator=(Uri&& other) noexcept;
  Uri(const Uri&) = delete;
  Uri& operator=(const Uri&) = delete;

  [[nodiscard]] const std::string& text() const noexcept { return text_; }
  // Token part (token, serial, manufacturer, model, slot-id): p11_kit_uri_match_token_info
  // plus the slot id, which p11-kit keeps apart.
  [[nodiscard]] bool matches(const TokenInfo& token) const;
  // Object part as a C_FindObjects template (id, object, type).
  [[nodiscard]] AttributeTemplate object_template() const;
  [[nodiscard]] bool names_object() const;
  // `type=` of the URI (CKO_PRIVATE_KEY for type=private), if given.
  [[nodiscard]] std::optional<CK_OBJECT_CLASS> object_class() const;

 private:
  Uri(P11KitUri* uri, std::string text) : uri_(uri), text_(std::move(text)) {}
  P11KitUri* uri_ = nullptr;
  std::string text_;
};

// The URI that names this token (token, serial, manufacturer, model).
std::string token_uri(const TokenInfo& token);
// The URI that names an object on this token by id and label (and type when given).
std::string object_uri(const TokenInfo& token, std::span<const unsigned char> id, std::string_view label,
                       std::optional<CK_OBJECT_CLASS> object_class = std::nullopt);

// Which tokens a selection considers.
enum class TokenScope {
  initialized,    // every command but `token init`
  uninitialized,  // `token init` without --token picks among these
  any,
};

// Exactly one token, by the rules of product.md:
// - `uri` given: the one token matching it; none -> NotFound naming the URI
//   (exit 3), several -> Ambiguous listing them (exit 2).
// - no `uri`: the only token in scope; none -> NotFound, several -> Ambiguous.
// A key URI works too: its object part is ignored here.
TokenInfo select_token(const Module& module, const std::optional<std::string>& uri,
                       TokenScope scope = TokenScope::initialized);

// What select_object does with the URI's own type=.
enum class UriClass {
  must_match,  // a URI whose type= names another class is refused
  ignored,     // the key's other half: type=private still finds the public key with that id/label
};

// Exactly one object of class `object_class` matching the object part of `uri`
// (id, object label) in `session`'s token. Private keys are only visible after
// login. None -> NotFound, several -> Ambiguous; with UriClass::must_match, a
// URI whose type= names another class -> InvalidArgument.
ObjectHandle select_object(const Session& session, const Uri& uri, CK_OBJECT_CLASS object_class,
                           UriClass uri_class = UriClass::must_match);

}  // namespace qscd::p11
