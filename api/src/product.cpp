#include "qscd/api/product.hpp"

#include <array>

namespace qscd::api {

namespace {

// certcentral-api.md §2: one row per product the agent orders.
const std::array<ProductRules, 4>& table() {
  static const std::array<ProductRules, 4> rows{{
      {.name_id = "pkio_private_services_server", .qualified = true, .key_rule = KeyRule::rsa_2048_3072_4096, .takes_oin = true},
      {.name_id = "pkio_qualified_organisation_services",
       .qualified = true,
       .qualified_seal = true,
       .only_provisioning_method = "qscd",
       .only_profile_option = "nonrepudiation"},
      {.name_id = "eu_eseal",
       .qualified = true,
       .qualified_seal = true,
       .common_name_in_order = false,
       .key_rule = KeyRule::rsa_2048_or_more,
       .provisioning_method_required = true},
      {.name_id = "eu_eseal_psd2", .qualified = true, .qualified_seal = true},
  }};
  return rows;
}

}  // namespace

ProductRules product_rules(std::string_view name_id) {
  for (const ProductRules& rules : table()) {
    if (rules.name_id == name_id) return rules;
  }
  ProductRules generic;
  generic.name_id = std::string(name_id);
  generic.qualified = name_id.starts_with("pkio_") || name_id.starts_with("eu_");
  return generic;
}

}  // namespace qscd::api
