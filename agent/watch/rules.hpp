#pragma once
// The config's [[watch.rule]]s, checked: each rule's URI parsed (p11-kit, pkcs11/uri) and its
// action known. The first rule whose URI matches a token is the token's rule.
#include <optional>
#include <string>
#include <vector>

#include "base/config.hpp"
#include "provision/provisioner.hpp"
#include "qscd/pkcs11/token.hpp"
#include "qscd/pkcs11/uri.hpp"
#include "renew/renewer.hpp"

namespace qscd::agent {

enum class RuleAction { provision, renew, resume };

struct CheckedRule {
  WatchRule rule;
  RuleAction action = RuleAction::resume;
  std::shared_ptr<p11::Uri> uri;
  std::size_t index = 0;  // 1-based, for log lines ("rule 2")
  [[nodiscard]] std::string name() const;
};

// What the daemon was started with that the rules fall back to.
struct RuleDefaults {
  std::string pin_source;       // --pin-source
  std::string sign_pin_source;  // --sign-pin-source
  bool allow_final_try = false;
};

// Throws UsageError naming the rule when a URI does not parse, an action is unknown, or a
// provision rule lacks what provision requires (profile, product, key_type, label, subject_file).
std::vector<CheckedRule> check_rules(const std::vector<WatchRule>& rules);

// The daemon reads a PIN at every job, so its sources must be files (file:PATH, as the systemd
// unit gives them): --pin-source, --sign-pin-source and every rule's. Throws UsageError naming
// the option or rule otherwise.
void check_pin_sources(const std::vector<CheckedRule>& rules, const RuleDefaults& defaults);

// The token's rule, or nullptr.
const CheckedRule* rule_for(const std::vector<CheckedRule>& rules, const p11::TokenInfo& token);

// The token URI the daemon selects a token by: its serial.
std::string serial_uri(const p11::TokenInfo& token);

// `provision` for the rule on `token`, without waiting on the CA (--no-wait).
ProvisionOptions provision_options(const CheckedRule& rule, const RuleDefaults& defaults, const p11::TokenInfo& token);
// `renew` on `token` with the config's window and new-order policy, without waiting on the CA.
RenewOptions renew_options(const CheckedRule* rule, const RuleDefaults& defaults, const Config& config,
                           const p11::TokenInfo& token);
// The token options of a rule (or the defaults) for `token`.
TokenOptions token_options(const CheckedRule* rule, const RuleDefaults& defaults, const p11::TokenInfo& token);

}  // namespace qscd::agent
