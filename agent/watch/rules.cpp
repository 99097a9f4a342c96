#include "watch/rules.hpp"

#include <cctype>

#include "base/errors.hpp"
#include "qscd/pkcs11/error.hpp"

namespace qscd::agent {

std::string CheckedRule::name() const { return "watch.rule " + std::to_string(index) + " (" + rule.match + ")"; }

std::vector<CheckedRule> check_rules(const std::vector<WatchRule>& rules) {
  std::vector<CheckedRule> checked;
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const WatchRule& rule = rules[i];
    const std::string where = "watch.rule " + std::to_string(i + 1);
    CheckedRule c;
    c.rule = rule;
    c.index = i + 1;
    if (rule.match.empty()) throw UsageError(where, "match is required: the RFC 7512 URI of the tokens it is for");
    try {
      c.uri = std::make_shared<p11::Uri>(p11::Uri::parse(rule.match));
    } catch (const p11::InvalidArgument& e) {
      throw UsageError(where, std::string("match: ") + e.what());
    }
    if (rule.action == "provision") {
      c.action = RuleAction::provision;
      const std::pair<const char*, const std::string*> required[] = {
          {"profile", &rule.profile}, {"product", &rule.product}, {"key_type", &rule.key_type},
          {"label", &rule.label},     {"subject_file", &rule.subject_file}};
      for (const auto& [key, value] : required) {
        if (value->empty()) throw UsageError(where, std::string(key) + " is required for action \"provision\"");
      }
    } else if (rule.action == "renew") {
      c.action = RuleAction::renew;
    } else if (rule.action == "resume") {
      c.action = RuleAction::resume;
    } else {
      throw UsageError(where, "action must be provision, renew or resume, not \"" + rule.action + "\"");
    }
    checked.push_back(std::move(c));
  }
  return checked;
}

void check_pin_sources(const std::vector<CheckedRule>& rules, const RuleDefaults& defaults) {
  const auto check = [](const std::string& source, const std::string& where, bool required) {
    if (source.empty() && !required) return;
    if (!source.starts_with("file:")) {
      throw UsageError(where, source.empty() ? "required: the daemon reads the PIN at every job, give file:PATH"
                                             : "must be file:PATH: the daemon reads the PIN at every job, and a prompt, "
                                               "pinentry, fd: or env: source can be read only once");
    }
  };
  bool every_rule_has_pin = !rules.empty();
  for (const CheckedRule& rule : rules) {
    check(rule.rule.pin_source, rule.name() + " pin_source", false);
    check(rule.rule.sign_pin_source, rule.name() + " sign_pin_source", false);
    if (rule.rule.pin_source.empty()) every_rule_has_pin = false;
  }
  // Jobs of tokens without a rule (resumed on insertion) use --pin-source too.
  check(defaults.pin_source, "--pin-source", !every_rule_has_pin || rules.empty());
  check(defaults.sign_pin_source, "--sign-pin-source", false);
}

const CheckedRule* rule_for(const std::vector<CheckedRule>& rules, const p11::TokenInfo& token) {
  for (const CheckedRule& rule : rules) {
    if (rule.uri->matches(token)) return &rule;
  }
  return nullptr;
}

std::string serial_uri(const p11::TokenInfo& token) {
  // The serial as p11-kit writes it, percent-encoded where needed.
  std::string out = "pkcs11:serial=";
  static const char* digits = "0123456789ABCDEF";
  for (unsigned char c : token.serial) {
    if (std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(digits[c >> 4U]);
      out.push_back(digits[c & 0x0fU]);
    }
  }
  return out;
}

TokenOptions token_options(const CheckedRule* rule, const RuleDefaults& defaults, const p11::TokenInfo& token) {
  TokenOptions options;
  options.token = serial_uri(token);
  options.pin_source = rule != nullptr && !rule->rule.pin_source.empty() ? rule->rule.pin_source : defaults.pin_source;
  options.allow_final_try = defaults.allow_final_try;
  return options;
}

ProvisionOptions provision_options(const CheckedRule& rule, const RuleDefaults& defaults, const p11::TokenInfo& token) {
  ProvisionOptions options;
  const WatchRule& r = rule.rule;
  options.profile = r.profile;
  options.product = r.product;
  options.token = token_options(&rule, defaults, token);
  options.sign_pin_source = r.sign_pin_source.empty() ? defaults.sign_pin_source : r.sign_pin_source;
  options.key_type = r.key_type;
  options.label = r.label;
  options.subject_file = r.subject_file;
  options.order_file = r.order_file;
  options.approve = r.approve;
  options.no_wait = true;
  return options;
}

RenewOptions renew_options(const CheckedRule* rule, const RuleDefaults& defaults, const Config& config,
                           const p11::TokenInfo& token) {
  RenewOptions options;
  options.token = token_options(rule, defaults, token);
  options.sign_pin_source = rule != nullptr && !rule->rule.sign_pin_source.empty() ? rule->rule.sign_pin_source : defaults.sign_pin_source;
  options.within_days = config.renew_within_days;
  options.allow_new_order = config.renew_allow_new_order;
  options.approve = rule != nullptr && rule->rule.approve;
  options.no_wait = true;
  return options;
}

}  // namespace qscd::agent
