#include "qscd/api/product.hpp"

#include <array>

namespace qscd::api {

namespace {

ProductRules pkio_private_services_server() {
  ProductRules r;
  r.name_id = "pkio_private_services_server";
  r.qualified = true;
  r.key_rule = KeyRule::rsa_2048_3072_4096;
  r.takes_oin = true;
  return r;
}

ProductRules pkio_qualified_organisation_services() {
  ProductRules r;
  r.name_id = "pkio_qualified_organisation_services";
  r.qualified = true;
  r.qualified_seal = true;
  r.only_provisioning_method = "qscd";
  r.only_profile_option = "nonrepudiation";
  return r;
}

ProductRules eu_eseal() {
  ProductRules r;
  r.name_id = "eu_eseal";
  r.qualified = true;
  r.qualified_seal = true;
  r.common_name_in_order = false;
  r.key_rule = KeyRule::rsa_2048_or_more;
  r.provisioning_method_required = true;
  return r;
}

ProductRules eu_eseal_psd2() {
  ProductRules r;
  r.name_id = "eu_eseal_psd2";
  r.qualified = true;
  r.qualified_seal = true;
  return r;
}

using Maker = ProductRules (*)();
constexpr std::array<std::pair<std::string_view, Maker>, 4> table{{
    {"pkio_private_services_server", pkio_private_services_server},
    {"pkio_qualified_organisation_services", pkio_qualified_organisation_services},
    {"eu_eseal", eu_eseal},
    {"eu_eseal_psd2", eu_eseal_psd2},
}};

}  // namespace

ProductRules product_rules(std::string_view name_id) {
  for (const auto& [name, make] : table) {
    if (name == name_id) return make();
  }
  ProductRules generic;
  generic.name_id = std::string(name_id);
  generic.qualified = name_id.starts_with("pkio_") || name_id.starts_with("eu_");
  return generic;
}

}  // namespace qscd::api
