#include "token/token_access.hpp"

#include "base/errors.hpp"
#include "base/text.hpp"
#include "qscd/pkcs11/error.hpp"
#include "qscd/pkcs11/login.hpp"
#include "qscd/pkcs11/module.hpp"

namespace qscd::agent {

std::optional<std::string> TokenOptions::token_uri() const {
  if (token.empty()) return std::nullopt;
  try {
    (void)p11::Uri::parse(token);  // refused here, against --token, not later without a name
  } catch (const p11::InvalidArgument& e) {
    throw UsageError("--token", e.what());
  }
  return token;
}

std::vector<p11::TokenInfo> initialized_tokens(p11::Module& module, const std::optional<p11::Uri>& filter) {
  std::vector<p11::TokenInfo> matching;
  for (p11::TokenInfo& token : p11::list_tokens(module)) {
    if (!token.initialized) continue;
    if (filter && !filter->matches(token)) continue;
    matching.push_back(std::move(token));
  }
  if (matching.empty()) {
    throw p11::NotFound("--all: no initialised token" + (filter ? " matches " + filter->text() : std::string(" is present")),
                        filter ? filter->text() : std::string());
  }
  return matching;
}

api::SecretBytes read_pin(const std::string& spec, std::string_view what, std::string_view option) {
  std::string source = spec.empty() ? default_secret_spec(option) : spec;
  return read_secret(source, what, option);
}

api::SecretBytes read_new_pin(const std::string& spec, std::string_view what, std::string_view option) {
  std::string source = spec.empty() ? default_secret_spec(option) : spec;
  api::SecretBytes pin = read_secret(source, what, option);
  require_utf8_text(pin.view(), option, "the " + std::string(what));
  if (source != "prompt" && source != "pinentry") return pin;  // nobody typed it: no typo to catch
  // A mistyped confirmation asks for the new PIN twice again, not for the whole command again.
  constexpr int tries = 3;
  for (int attempt = 1;; ++attempt) {
    api::SecretBytes again = read_secret(source, std::string(what) + " again", option);
    if (pin.view() == again.view()) return pin;  // both buffers wipe themselves
    if (attempt == tries) throw UsageError(std::string(option), "the two entries differed " + std::to_string(tries) + " times");
    pin = read_secret(source, std::string(what) + " (the two entries differed; type it again)", option);
    require_utf8_text(pin.view(), option, "the " + std::string(what));
  }
}

OpenToken open_logged_in(const TokenAccess& tokens, const TokenOptions& options) {
  p11::Module& module = tokens.module();
  p11::TokenInfo info = p11::select_token(module, options.token_uri());
  // A locked PIN or a final try without --allow-final-try is refused before the PIN is asked for.
  p11::check_pin_flags(info, CKU_USER, options.login_options());
  api::SecretBytes pin = read_pin(options.pin_source, "user PIN", "--pin-source");
  tokens.log.info("token '" + info.label + "' in slot " + std::to_string(info.slot));
  p11::Session session(module, info.slot, p11::Session::Access::read_write);
  p11::login(session, CKU_USER, pin.bytes(), options.login_options());
  return {std::move(info), std::move(session), std::move(pin)};
}

OpenKey open_key(const TokenAccess& tokens, const std::string& key_uri, const TokenOptions& options, const KeyAccess& access) {
  p11::Uri uri = [&] {
    try {
      return p11::Uri::parse(key_uri);
    } catch (const p11::InvalidArgument& e) {
      throw UsageError("--key", e.what());
    }
  }();
  if (!uri.names_object()) throw UsageError("--key", key_uri + " names no key: add id=... or object=...");
  p11::Module& module = tokens.module();
  p11::TokenInfo info = p11::select_token(module, options.token_uri().value_or(key_uri));
  tokens.log.info("token '" + info.label + "' in slot " + std::to_string(info.slot));
  p11::Session session(module, info.slot, access.access);
  if (access.before_login) access.before_login(session, uri);
  std::optional<api::SecretBytes> pin;
  const bool log_in = access.login == KeyLogin::required ? info.login_required : !options.pin_source.empty();
  if (log_in) {
    p11::check_pin_flags(info, CKU_USER, options.login_options());
    pin = read_pin(options.pin_source, "user PIN", "--pin-source");
    p11::login(session, CKU_USER, pin->bytes(), options.login_options());
  }
  return {std::move(info), std::move(session), std::move(uri), std::move(pin)};
}

}  // namespace qscd::agent
