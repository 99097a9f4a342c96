#pragma once
// For commands that work on one key's objects (install, export): the token
// named by --key, a session on it (logged in when a PIN source is given), and
// the key.
#include <optional>
#include <string>

#include "../context.hpp"
#include "../install.hpp"
#include "qscd/pkcs11/session.hpp"
#include "qscd/pkcs11/token.hpp"

namespace qscd::agent::cmd {

struct KeySession {
  p11::TokenInfo token;
  p11::Session session;
  TokenKey key;
};

// `pin_source` empty: no login (certificates and public keys are public objects).
KeySession open_key_session(Context& context, const std::string& key_uri, p11::Session::Access access,
                            const std::string& pin_source);

}  // namespace qscd::agent::cmd
