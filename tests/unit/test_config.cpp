#include <doctest/doctest.h>

#include "base/config.hpp"
#include "base/errors.hpp"

using qscd::agent::parse_config;
using qscd::agent::UsageError;

TEST_CASE("the product.md example config parses") {
  auto config = parse_config(R"(
[pkcs11]
module = "/usr/lib/softhsm/libsofthsm2.so"
[api]
base_url = "https://certcentral.digicert.eu/services/v2"
key_source = "file:/etc/qscd-agent/api-key"
[agent]
state_dir = "/var/lib/qscd-agent"
[renew]
within_days = 30
[[watch.rule]]
match = "pkcs11:model=SoftHSM%20v2;token=new1"
action = "provision"
profile = "pkio-eseal"
product = "pkio_qualified_organisation_services"
key_type = "rsa:3072"
label = "seal"
pin_source = "file:/run/credentials/qscd-agent-watch.service/pin"
approve = false
)", "agent.toml");
  CHECK(config.pkcs11_module == "/usr/lib/softhsm/libsofthsm2.so");
  CHECK(config.api_key_source == "file:/etc/qscd-agent/api-key");
  CHECK(config.renew_within_days == 30);
  REQUIRE(config.watch_rules.size() == 1);
  CHECK(config.watch_rules[0].action == "provision");
  CHECK(config.watch_rules[0].key_type == "rsa:3072");
}

TEST_CASE("config errors name the key and the rule") {
  CHECK_THROWS_WITH_AS(parse_config("[pkcs11]\nmodule = 3\n", "a.toml"), "a.toml:2: pkcs11.module: must be a string",
                       UsageError);
  CHECK_THROWS_WITH_AS(parse_config("[renew]\nwithin_days = 0\n", "a.toml"), doctest::Contains("renew.within_days"),
                       UsageError);
  CHECK_THROWS_WITH_AS(parse_config("[[watch.rule]]\nmatch='pkcs11:'\naction='explode'\n", "a.toml"),
                       doctest::Contains("watch.rule[0].action: must be provision, renew or resume"), UsageError);
  CHECK_THROWS_WITH_AS(parse_config("[pkcs11\n", "a.toml"), doctest::Contains("a.toml:1"), UsageError);
}

TEST_CASE("a typo in the config is exit 2 naming the file, the line and the key, with the closest known key") {
  CHECK_THROWS_WITH_AS(parse_config("[api]\nkey_source = \"env:K\"\nbase_ulr = \"https://sim.invalid/services/v2\"\n", "agent.toml"),
                       "agent.toml:3: api.base_ulr: is not a key the agent knows (base_url, ca_file, key_source, pickup_path); "
                       "did you mean base_url?",
                       UsageError);
  CHECK_THROWS_WITH_AS(parse_config("\n[apii]\nbase_url = \"x\"\n", "agent.toml"),
                       "agent.toml:2: apii: is not a section the agent knows (pkcs11, api, agent, renew, hooks, watch); did you "
                       "mean api?",
                       UsageError);
  CHECK_THROWS_WITH_AS(parse_config("[renew]\nwithin_dayz = 10\n", "agent.toml"), doctest::Contains("did you mean within_days?"),
                       UsageError);
  CHECK_THROWS_WITH_AS(parse_config("[[watch.rule]]\nmatch = \"pkcs11:\"\naction = \"resume\"\npin_sorce = \"file:/p\"\n",
                                    "agent.toml"),
                       doctest::Contains("agent.toml:4: watch.rule[0].pin_sorce: is not a key the agent knows"), UsageError);
  // Nothing close: no guess, the list only.
  CHECK_THROWS_WITH_AS(parse_config("[api]\ncolour = \"blue\"\n", "agent.toml"),
                       "agent.toml:2: api.colour: is not a key the agent knows (base_url, ca_file, key_source, pickup_path)",
                       UsageError);
  CHECK_THROWS_WITH_AS(parse_config("api = 3\n", "agent.toml"), "agent.toml:1: api: must be a table ([api])", UsageError);
  CHECK_THROWS_WITH_AS(parse_config("[renew]\nwithin_days = -5\n", "agent.toml"),
                       "agent.toml:2: renew.within_days: must be a whole number of days from 1 to 3650", UsageError);
}

TEST_CASE("api.pickup_path: the assumed QSCD pickup path can be set, and must name the order") {
  auto config = parse_config("[api]\npickup_path = \"/order/certificate/{order_id}/qscd-pickup\"\n", "a.toml");
  CHECK(config.api_pickup_path == "/order/certificate/{order_id}/qscd-pickup");
  CHECK_THROWS_WITH_AS(parse_config("[api]\npickup_path = \"/order/pickup\"\n", "a.toml"),
                       "a.toml:2: api.pickup_path: must start with / and contain {order_id}", UsageError);
}
