#pragma once
// The CertCentral client as the agent sets it up: URL, trust and API key from
// the global options, then the config, then the product defaults.
#include <string>

#include "context.hpp"
#include "secret.hpp"
#include "qscd/api/client.hpp"

namespace qscd::agent {

inline constexpr const char* default_api_url = "https://certcentral.digicert.eu/services/v2";
inline constexpr const char* default_api_key_source = "env:CERTCENTRAL_API_KEY";

// --api-url, then config api.base_url, then the CertCentral Europe URL.
std::string api_url(Context& context);

// Reads the API key (--api-key-source, config api.key_source, env:CERTCENTRAL_API_KEY)
// and makes the client. Throws UsageError / api::ConfigError (exit 2).
api::Client make_api_client(Context& context);

// The API key alone, for callers that make several clients (one per worker thread).
SecretBuffer read_api_key(Context& context);
// A client with a key read before (read_api_key); throws api::ConfigError (exit 2).
api::Client make_api_client(Context& context, const SecretBuffer& key);

}  // namespace qscd::agent
