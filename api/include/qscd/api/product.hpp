#pragma once
// What CertCentral documents about each product the agent orders (certcentral-api.md §2), as one
// table: the order rules validate() checks and the facts the agent's steps ask for.
#include <optional>
#include <string>
#include <string_view>

namespace qscd::api {

enum class KeyRule {
  any,                    // no documented key restriction
  rsa_2048_3072_4096,     // PKIo Private Services Server
  rsa_2048_or_more,       // eu_eseal with a CSR
};

struct ProductRules {
  std::string name_id;
  // PKIo and EU products: SHA-256 only, csa_agreed_to must be true.
  bool qualified = false;
  // A seal product whose certificate should carry the EN 319 412-5 QC statements.
  bool qualified_seal = false;
  // false: CertCentral takes the common name from the organization record (eu_eseal), so the
  // order carries none unless the order file gives one.
  bool common_name_in_order = true;
  KeyRule key_rule = KeyRule::any;
  // The only provisioning method the product takes, when there is one ("qscd").
  std::optional<std::string_view> only_provisioning_method{};
  // The order must say qscd or csr: the seal's level depends on it (eu_eseal).
  bool provisioning_method_required = false;
  // The only certificate.profile_option the product takes, when there is one.
  std::optional<std::string_view> only_profile_option{};
  // certificate.oin / exclude_oin belong to this product.
  bool takes_oin = false;
};

// The rules of `name_id`; a product the table does not list gets the generic rules (qualified
// when its name starts with pkio_ or eu_).
ProductRules product_rules(std::string_view name_id);

}  // namespace qscd::api
