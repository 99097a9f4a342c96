#pragma once
// The TOML config of product.md, parsed with toml++. Unknown sections are kept
// for forward compatibility; a known key with the wrong type is a UsageError.
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace qscd::agent {

struct WatchRule {
  std::string match;  // RFC 7512 URI the token must match
  std::string action; // provision | renew | resume
  std::string profile;
  std::string product;
  std::string key_type;
  std::string label;
  std::string subject_file;
  std::string order_file;
  std::string pin_source;
  std::string sign_pin_source;  // CKA_ALWAYS_AUTHENTICATE keys; empty: the user PIN
  bool approve = false;
};

struct Config {
  std::optional<std::filesystem::path> source;  // the file it came from, if any
  std::optional<std::string> pkcs11_module;
  std::optional<std::string> api_base_url;
  std::optional<std::string> api_ca_file;
  std::optional<std::string> api_key_source;
  // The QSCD pickup step's path (undocumented by DigiCert: docs/api.md), "{order_id}" replaced.
  std::optional<std::string> api_pickup_path;
  std::optional<std::string> state_dir;
  int renew_within_days = 30;
  std::chrono::seconds renew_check_every{86400};  // the daemon's renewal check, before jitter
  bool renew_allow_new_order = false;             // never place a paid renewal order silently
  std::optional<std::string> post_install_hook;   // hooks.post_install: a command line
  std::chrono::seconds post_install_timeout{60};  // hooks.post_install_timeout
  std::vector<WatchRule> watch_rules;
};

// Loads `explicit_path` when given (it must exist), else the first of
// $XDG_CONFIG_HOME/qscd-agent/agent.toml (~/.config when unset) and
// /etc/qscd-agent/agent.toml that exists, else an empty Config.
Config load_config(const std::optional<std::filesystem::path>& explicit_path);

// Parses TOML text (for tests and for load_config).
Config parse_config(std::string_view text, const std::string& origin);

}  // namespace qscd::agent
