#pragma once
// What every command that works on one token shares: the token and PIN choices, reading PINs
// from their sources, selecting the token and logging in with the anti-lockout rules of the
// token layer. The options themselves are registered by cli/token_options.
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/log.hpp"
#include "qscd/pkcs11/login.hpp"
#include "qscd/pkcs11/module.hpp"
#include "qscd/pkcs11/session.hpp"
#include "qscd/pkcs11/token.hpp"
#include "qscd/pkcs11/uri.hpp"
#include "base/secret.hpp"

namespace qscd::agent {

struct TokenOptions {
  std::string token;       // --token URI; empty: the only token present
  std::string pin_source;  // --pin-source; empty: prompt on a terminal
  bool allow_final_try = false;

  // --token, when given; a URI that does not parse -> UsageError("--token").
  [[nodiscard]] std::optional<std::string> token_uri() const;
  [[nodiscard]] p11::LoginOptions login_options() const { return {.allow_final_try = allow_final_try}; }
};

// The process's one PKCS#11 module, loaded on first use (the CLI's Context owns it), and the log.
struct TokenAccess {
  std::function<p11::Module&()> module;
  const Log& log;
};

// Every initialised token that matches `filter` (all of them without one), for --all. Throws
// p11::NotFound ("--all: no initialised token matches URI" / "... is present") when none does.
std::vector<p11::TokenInfo> initialized_tokens(p11::Module& module, const std::optional<p11::Uri>& filter);

// A secret from `spec` (the option's value), or from the default source
// (a terminal prompt) when the option was not given.
api::SecretBytes read_pin(const std::string& spec, std::string_view what, std::string_view option);

// A PIN about to be set. From an interactive source (prompt, pinentry; also the
// default prompt) it is asked twice and the two entries must agree, else
// UsageError(option, "the two entries differ"); other sources are read once.
api::SecretBytes read_new_pin(const std::string& spec, std::string_view what, std::string_view option);

// The selected token and a read/write session on it, logged in as the user.
// The PIN is read first, so a bad --pin-source is refused before the token is
// touched. It is kept (wiped on destruction) for the context-specific login a
// CKA_ALWAYS_AUTHENTICATE key needs at each signature: p11::sign(..., pin.bytes()).
struct OpenToken {
  p11::TokenInfo info;
  p11::Session session;
  api::SecretBytes pin;
};
OpenToken open_logged_in(const TokenAccess& tokens, const TokenOptions& options);

// How open_key logs in.
enum class KeyLogin {
  // When the token wants a login (CKF_LOGIN_REQUIRED): the PIN from --pin-source, by default a
  // prompt, with the anti-lockout rules and --allow-final-try (csr: the private key signs).
  required,
  // Only when --pin-source is given (install, export: certificates and public keys are public
  // objects; a PIN is asked for only where a token needs one to write or show them).
  if_pin_given,
};

struct KeyAccess {
  p11::Session::Access access = p11::Session::Access::read_only;
  KeyLogin login = KeyLogin::required;
  // Runs on the session before any PIN is read (csr: refuse a key the profile does not allow).
  std::function<void(const p11::Session&, const p11::Uri&)> before_login;
};

// The token and session for the key named by a key URI (--key): the token is --token when given,
// else the URI's token part; the caller selects the key with `uri` (its id/object part). A URI
// that does not parse or names no object -> UsageError("--key"); no / several tokens ->
// NotFound (exit 3) / Ambiguous (exit 2). `pin` is kept (wiped on destruction) for the
// context-specific login a CKA_ALWAYS_AUTHENTICATE key needs at each signature.
struct OpenKey {
  p11::TokenInfo info;
  p11::Session session;
  p11::Uri uri;
  std::optional<api::SecretBytes> pin;
};
OpenKey open_key(const TokenAccess& tokens, const std::string& key_uri, const TokenOptions& options,
                 const KeyAccess& access = {});

}  // namespace qscd::agent
