#include "key_session.hpp"

#include "../secret.hpp"
#include "qscd/pkcs11/login.hpp"
#include "qscd/pkcs11/module.hpp"
#include "qscd/pkcs11/uri.hpp"

namespace qscd::agent::cmd {

KeySession open_key_session(Context& context, const std::string& key_uri, p11::Session::Access access,
                            const std::string& pin_source) {
  p11::Uri uri = p11::Uri::parse(key_uri);
  if (!uri.names_object()) throw UsageError("--key", key_uri + " names no key: give its id= or object=");
  p11::TokenInfo token = p11::select_token(context.module(), key_uri);
  p11::Session session(context.module(), token.slot, access);
  if (!pin_source.empty()) {
    SecretBuffer pin = read_secret(pin_source, "user PIN", "--pin-source");
    p11::login(session, CKU_USER, pin.bytes());
  }
  TokenKey key = find_token_key(session, uri);
  return {std::move(token), std::move(session), std::move(key)};
}

}  // namespace qscd::agent::cmd
