#pragma once
// The CertCentral client as the agent sets it up. The CLI resolves the settings (options, then
// the config, then the defaults); this folder only uses them.
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/log.hpp"
#include "base/secret.hpp"
#include "qscd/api/client.hpp"

namespace qscd::agent {

inline constexpr const char* default_api_url = "https://certcentral.digicert.eu/services/v2";
inline constexpr const char* default_api_key_source = "env:CERTCENTRAL_API_KEY";

struct CaSettings {
  std::string base_url = default_api_url;
  std::string ca_file;  // empty: the system store
  std::string key_source = default_api_key_source;
  // The key, read once before (the daemon: an env: or fd: source can be read only once); when
  // set, key_source is not read again.
  std::shared_ptr<const api::SecretBytes> key;
  // The QSCD pickup step's path (undocumented by DigiCert: docs/api.md), "{order_id}" replaced.
  std::optional<std::string> pickup_path;
  // Request and response lines go here (X-DC-DEVKEY redacted) when set: -vv.
  const Log* trace = nullptr;
  // One progress line per retry pause (what failed, the next attempt and when) when set.
  const Log* progress = nullptr;
  // Asked during transfers and retry pauses (SIGINT/SIGTERM): true abandons the call.
  std::function<bool()> cancelled;
};

// "CertCentral: GET /order/certificate/12: HTTP 429 (rate limited); attempt 2 of 5 in 4 s".
std::string retry_line(const api::RetryNotice& notice);

// The API key: settings.key when set, else read from settings.key_source. Throws UsageError (exit 2).
api::SecretBytes read_api_key(const CaSettings& settings);
// Checks the URL, then reads the key, then makes the client. Throws UsageError /
// api::ConfigError (exit 2).
api::Client make_api_client(const CaSettings& settings);
// A client with a key read before (one client per worker thread); throws api::ConfigError.
api::Client make_api_client(const CaSettings& settings, const api::SecretBytes& key);

}  // namespace qscd::agent
