#pragma once
// Secrets (PINs, API keys): read from their sources into an api::SecretBytes (one
// fixed buffer wiped with OPENSSL_cleanse on every path), never in std::string,
// never on argv, never logged.
#include <string>
#include <string_view>

#include "qscd/api/secret_bytes.hpp"

namespace qscd::agent {

// Appends one byte to a secret being read; throws UsageError ("secret: longer
// than 4096 bytes") when it is full.
void push_secret_byte(api::SecretBytes& secret, unsigned char byte);

// Reads a secret from a source spec of product.md: prompt, pinentry, fd:N,
// file:PATH (refused when group/other may read or write it), env:NAME.
// `what` names the secret in prompts and errors ("user PIN", "API key").
// `option` is the flag the spec came from, named in UsageErrors.
// Throws UsageError (exit 2) for a bad spec, an unsafe file or an empty secret.
api::SecretBytes read_secret(std::string_view spec, std::string_view what, std::string_view option);

// The spec to use when none is given: prompt on a terminal, otherwise a
// UsageError telling which option to set.
std::string default_secret_spec(std::string_view option);

}  // namespace qscd::agent
