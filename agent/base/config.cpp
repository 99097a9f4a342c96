#include "base/config.hpp"

#include "base/files.hpp"

#include <algorithm>
#include <cstdlib>
#include <vector>
#include <toml++/toml.h>

#include "base/duration.hpp"
#include "base/errors.hpp"
#include "base/text.hpp"
#include "base/toml_text.hpp"

namespace qscd::agent {

namespace {

struct Section {
  std::string_view name;
  std::vector<std::string_view> keys;
};

// Every key the agent reads: anything else is a typo that would otherwise be ignored in silence
// (a misspelt api.base_url sends the run to production CertCentral).
const std::vector<Section>& config_sections() {
  static const std::vector<Section> sections = {
      {"pkcs11", {"module"}},
      {"api", {"base_url", "ca_file", "key_source", "pickup_path"}},
      {"agent", {"state_dir"}},
      {"renew", {"within_days", "check_every", "allow_new_order"}},
      {"hooks", {"post_install", "post_install_timeout"}},
      {"watch", {"rule"}},
  };
  return sections;
}

const std::vector<std::string_view>& watch_rule_keys() {
  static const std::vector<std::string_view> keys = {"match",      "action",       "profile",    "product",
                                                      "key_type",   "label",        "subject_file", "order_file",
                                                      "pin_source", "sign_pin_source", "approve"};
  return keys;
}

// "agent.toml:7" (the file and the line of the node), for messages.
std::string at(const std::string& origin, const toml::source_region& where) {
  return where.begin.line > 0 ? origin + ":" + std::to_string(where.begin.line) : origin;
}

bool has(const std::vector<std::string_view>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

void check_keys(const toml::table& table, const std::string& prefix, const std::vector<std::string_view>& known,
                const std::string& origin) {
  for (const auto& [key, node] : table) {
    if (has(known, key.str())) continue;
    throw UsageError(at(origin, key.source()) + ": " + prefix + std::string(key.str()),
                     "is not a key the agent knows (" + joined(known) + ")" + did_you_mean(key.str(), known));
  }
}

void check_known_keys(const toml::table& table, const std::string& origin) {
  std::vector<std::string_view> names;
  for (const Section& section : config_sections()) names.push_back(section.name);
  for (const auto& [key, node] : table) {
    const std::string_view name = key.str();  // clang 14 cannot capture a structured binding
    const auto section = std::find_if(config_sections().begin(), config_sections().end(),
                                      [name](const Section& s) { return s.name == name; });
    if (section == config_sections().end()) {
      throw UsageError(at(origin, key.source()) + ": " + std::string(key.str()),
                       "is not a section the agent knows (" + joined(names) + ")" + did_you_mean(key.str(), names));
    }
    const toml::table* keys = node.as_table();
    if (keys == nullptr) {
      throw UsageError(at(origin, key.source()) + ": " + std::string(key.str()), "must be a table ([" + std::string(key.str()) + "])");
    }
    check_keys(*keys, std::string(key.str()) + ".", section->keys, origin);
  }
  const toml::array* rules = table.at_path("watch.rule").as_array();
  for (std::size_t i = 0; rules != nullptr && i < rules->size(); ++i) {
    if (const toml::table* rule = rules->get(i)->as_table()) {
      check_keys(*rule, "watch.rule[" + std::to_string(i) + "].", watch_rule_keys(), origin);
    }
  }
}

std::optional<std::string> optional_string(const toml::table& table, std::string_view section, std::string_view key,
                                           const std::string& origin) {
  const toml::node* node = table.at_path(std::string(section) + "." + std::string(key)).node();
  if (node == nullptr) return std::nullopt;
  if (auto value = node->value<std::string>()) return value;
  throw UsageError(at(origin, node->source()) + ": " + std::string(section) + "." + std::string(key), "must be a string");
}

std::string rule_string(const toml::table& rule, std::string_view key, std::size_t index, const std::string& origin,
                        bool required) {
  const toml::node* node = rule.get(key);
  const std::string name = "watch.rule[" + std::to_string(index) + "]." + std::string(key);
  if (node == nullptr) {
    if (required) throw UsageError(at(origin, rule.source()) + ": " + name, "is required");
    return {};
  }
  if (auto value = node->value<std::string>()) return *value;
  throw UsageError(at(origin, node->source()) + ": " + name, "must be a string");
}

}  // namespace

Config parse_config(std::string_view text, const std::string& origin) {
  check_toml_text(text, origin);  // what toml++ 3.3.0 must not see (base/toml_text.hpp)
  toml::table table;
  try {
    table = toml::parse(text, origin);
  } catch (const toml::parse_error& error) {
    const auto& where = error.source().begin;
    throw UsageError(origin + ":" + std::to_string(where.line) + ":" + std::to_string(where.column),
                     std::string(error.description()));
  }
  check_known_keys(table, origin);
  Config config;
  config.pkcs11_module = optional_string(table, "pkcs11", "module", origin);
  config.api_base_url = optional_string(table, "api", "base_url", origin);
  config.api_ca_file = optional_string(table, "api", "ca_file", origin);
  config.api_key_source = optional_string(table, "api", "key_source", origin);
  config.api_pickup_path = optional_string(table, "api", "pickup_path", origin);
  if (config.api_pickup_path && (!config.api_pickup_path->starts_with("/") ||
                                 config.api_pickup_path->find("{order_id}") == std::string::npos)) {
    throw UsageError(at(origin, table.at_path("api.pickup_path").node()->source()) + ": api.pickup_path",
                     "must start with / and contain {order_id}");
  }
  config.state_dir = optional_string(table, "agent", "state_dir", origin);
  if (const toml::node* node = table.at_path("renew.within_days").node()) {
    auto days = node->value<int64_t>();
    if (!days || *days < 1 || *days > 3650) {
      throw UsageError(at(origin, node->source()) + ": renew.within_days", "must be a whole number of days from 1 to 3650");
    }
    config.renew_within_days = static_cast<int>(*days);
  }
  auto duration_key = [&](const char* path, std::chrono::seconds& out) {
    const std::string_view name(path);
    const std::size_t dot = name.find('.');
    if (auto value = optional_string(table, name.substr(0, dot), name.substr(dot + 1), origin)) {
      const std::string where = at(origin, table.at_path(path).node()->source()) + ": " + path;
      out = parse_duration(*value, where);
      if (out.count() <= 0) throw UsageError(where, "must be more than zero");
    }
  };
  duration_key("renew.check_every", config.renew_check_every);
  if (const toml::node* node = table.at_path("renew.allow_new_order").node()) {
    auto value = node->value<bool>();
    if (!value) throw UsageError(at(origin, node->source()) + ": renew.allow_new_order", "must be true or false");
    config.renew_allow_new_order = *value;
  }
  config.post_install_hook = optional_string(table, "hooks", "post_install", origin);
  if (config.post_install_hook && config.post_install_hook->empty()) {
    throw UsageError(at(origin, table.at_path("hooks.post_install").node()->source()) + ": hooks.post_install",
                     "must name a command (leave the key out for none)");
  }
  duration_key("hooks.post_install_timeout", config.post_install_timeout);
  if (const toml::node* node = table.at_path("watch.rule").node()) {
    const toml::array* rules = node->as_array();
    if (rules == nullptr) throw UsageError(at(origin, node->source()) + ": watch.rule", "must be an array of tables ([[watch.rule]])");
    std::size_t index = 0;
    for (const toml::node& item : *rules) {
      const toml::table* rule = item.as_table();
      if (rule == nullptr) throw UsageError(at(origin, item.source()) + ": watch.rule[" + std::to_string(index) + "]", "must be a table");
      WatchRule parsed;
      parsed.match = rule_string(*rule, "match", index, origin, true);
      parsed.action = rule_string(*rule, "action", index, origin, true);
      if (parsed.action != "provision" && parsed.action != "renew" && parsed.action != "resume") {
        throw UsageError(at(origin, rule->get("action")->source()) + ": watch.rule[" + std::to_string(index) + "].action",
                         "must be provision, renew or resume");
      }
      parsed.profile = rule_string(*rule, "profile", index, origin, false);
      parsed.product = rule_string(*rule, "product", index, origin, false);
      parsed.key_type = rule_string(*rule, "key_type", index, origin, false);
      parsed.label = rule_string(*rule, "label", index, origin, false);
      parsed.subject_file = rule_string(*rule, "subject_file", index, origin, false);
      parsed.order_file = rule_string(*rule, "order_file", index, origin, false);
      parsed.pin_source = rule_string(*rule, "pin_source", index, origin, false);
      parsed.sign_pin_source = rule_string(*rule, "sign_pin_source", index, origin, false);
      if (const toml::node* approve = rule->get("approve")) {
        auto value = approve->value<bool>();
        if (!value) {
          throw UsageError(at(origin, approve->source()) + ": watch.rule[" + std::to_string(index) + "].approve", "must be true or false");
        }
        parsed.approve = *value;
      }
      config.watch_rules.push_back(std::move(parsed));
      ++index;
    }
  }
  return config;
}

Config load_config(const std::optional<std::filesystem::path>& explicit_path) {
  namespace fs = std::filesystem;
  std::vector<fs::path> candidates;
  if (explicit_path) {
    if (!fs::exists(*explicit_path)) throw UsageError("--config", explicit_path->string() + " does not exist");
    candidates.push_back(*explicit_path);
  } else {
    if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg != '\0') {
      candidates.emplace_back(fs::path(xdg) / "qscd-agent" / "agent.toml");
    } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
      candidates.emplace_back(fs::path(home) / ".config" / "qscd-agent" / "agent.toml");
    }
    candidates.emplace_back("/etc/qscd-agent/agent.toml");
  }
  for (const fs::path& path : candidates) {
    // A default location that does not exist is skipped; anything that does exist there (a
    // folder, a FIFO, a device) is refused like an explicit --config, not passed over in silence.
    std::error_code ec;
    if (!explicit_path && !fs::exists(fs::symlink_status(path, ec)) ) continue;
    const std::string origin = path.string();
    Config config = parse_config(read_input_file(path, "--config"), origin);
    config.source = path;
    return config;
  }
  return Config{};
}

}  // namespace qscd::agent
