#include "qscd/api/order.hpp"

#include "qscd/api/product.hpp"

#include <algorithm>
#include <array>
#include <ctime>
#include <set>

#include "qscd/api/csr.hpp"
#include "qscd/api/error.hpp"

namespace qscd::api {

namespace {

using nlohmann::json;

const std::set<std::string> passthrough_top = {"container", "custom_fields", "dcv_method", "certificate_dcv_scope",
                                               "disable_renewal_notifications"};
const std::set<std::string> passthrough_certificate = {"organization_units", "ca_cert_id", "cert_validity",
                                                       "use_qvtl_domain"};

std::string as_string(const json& value, const std::string& field) {
  if (!value.is_string()) throw ValidationError(field, "must be a string");
  return value.get<std::string>();
}

bool as_bool(const json& value, const std::string& field) {
  if (!value.is_boolean()) throw ValidationError(field, "must be true or false");
  return value.get<bool>();
}

// CertCentral ids are integers, but some clients send them as strings.
std::int64_t as_id(const json& value, const std::string& field) {
  if (value.is_number_integer()) return value.get<std::int64_t>();
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    if (!text.empty() && text.size() < 19 && std::all_of(text.begin(), text.end(), ::isdigit)) return std::stoll(text);
  }
  throw ValidationError(field, "must be a whole number (an id)");
}

int as_int(const json& value, const std::string& field) {
  if (!value.is_number_integer()) throw ValidationError(field, "must be a whole number");
  return value.get<int>();
}

const json& object_at(const json& parent, const std::string& key, const std::string& field) {
  const json& value = parent.at(key);
  if (!value.is_object()) throw ValidationError(field, "must be a JSON object");
  return value;
}

bool is_digits(const std::string& text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

CertificateFields certificate_from_json(const json& body) {
  CertificateFields out;
  for (const auto& [key, value] : body.items()) {
    std::string field = "certificate." + key;
    if (key == "common_name") {
      out.common_name = as_string(value, field);
    } else if (key == "dns_names") {
      if (!value.is_array()) throw ValidationError(field, "must be an array of names");
      for (const auto& name : value) out.dns_names.push_back(as_string(name, field + "[]"));
    } else if (key == "csr") {
      out.csr = as_string(value, field);
    } else if (key == "signature_hash") {
      out.signature_hash = as_string(value, field);
    } else if (key == "profile_option") {
      out.profile_option = as_string(value, field);
    } else if (key == "is_rsassa_pss") {
      out.is_rsassa_pss = as_bool(value, field);
    } else if (key == "oin") {
      out.oin = value.is_number_integer() ? std::to_string(value.get<std::int64_t>()) : as_string(value, field);
    } else if (key == "exclude_oin") {
      out.exclude_oin = as_bool(value, field);
    } else if (key == "server_platform") {
      if (!value.is_object() || !value.contains("id")) throw ValidationError(field, "must be {\"id\": N}");
      out.server_platform_id = as_id(value.at("id"), field + ".id");
    } else if (passthrough_certificate.contains(key)) {
      out.extra[key] = value;
    } else {
      throw ValidationError(field, "is not a field of the certificate");
    }
  }
  return out;
}

Contact contact_from_json(const json& body, const std::string& field) {
  if (!body.is_object()) throw ValidationError(field, "must be a JSON object");
  Contact out;
  for (const auto& [key, value] : body.items()) {
    std::string sub = field + "." + key;
    if (key == "user_id") out.user_id = as_id(value, sub);
    else if (key == "first_name") out.first_name = as_string(value, sub);
    else if (key == "last_name") out.last_name = as_string(value, sub);
    else if (key == "job_title") out.job_title = as_string(value, sub);
    else if (key == "telephone") out.telephone = as_string(value, sub);
    else if (key == "email") out.email = as_string(value, sub);
    else if (key == "contact_type") out.contact_type = as_string(value, sub);
    else throw ValidationError(sub, "is not a field of a contact");
  }
  return out;
}

OrganizationRef organization_from_json(const json& body) {
  OrganizationRef out;
  for (const auto& [key, value] : body.items()) {
    if (key == "id") {
      out.id = as_id(value, "organization.id");
    } else if (key == "contacts") {
      if (!value.is_array()) throw ValidationError("organization.contacts", "must be an array");
      for (std::size_t i = 0; i < value.size(); ++i) {
        out.contacts.push_back(contact_from_json(value[i], "organization.contacts[" + std::to_string(i) + "]"));
      }
    } else {
      out.details[key] = value;  // a new organization (Create organization shape)
    }
  }
  return out;
}

ShipInfo ship_info_from_json(const json& body) {
  ShipInfo out;
  for (const auto& [key, value] : body.items()) {
    std::string field = "ship_info." + key;
    if (key == "name") out.name = as_string(value, field);
    else if (key == "addr1") out.addr1 = as_string(value, field);
    else if (key == "addr2") out.addr2 = as_string(value, field);
    else if (key == "city") out.city = as_string(value, field);
    else if (key == "state") out.state = as_string(value, field);
    else if (key == "zip") out.zip = as_string(value, field);
    else if (key == "country") out.country = as_string(value, field);
    else if (key == "method") out.method = as_string(value, field);
    else throw ValidationError(field, "is not a field of ship_info");
  }
  return out;
}

OrderValidity validity_from_json(const json& body) {
  OrderValidity out;
  for (const auto& [key, value] : body.items()) {
    std::string field = "order_validity." + key;
    if (key == "years") out.years = as_int(value, field);
    else if (key == "days") out.days = as_int(value, field);
    else if (key == "custom_expiration_date") out.custom_expiration_date = as_string(value, field);
    else throw ValidationError(field, "is not a field of order_validity (years, days, custom_expiration_date)");
  }
  return out;
}

json contact_to_json(const Contact& contact) {
  json out = json::object();
  if (contact.user_id) out["user_id"] = *contact.user_id;
  auto put = [&](const char* key, const std::string& value) {
    if (!value.empty()) out[key] = value;
  };
  put("first_name", contact.first_name);
  put("last_name", contact.last_name);
  put("job_title", contact.job_title);
  put("telephone", contact.telephone);
  put("email", contact.email);
  put("contact_type", contact.contact_type);
  return out;
}


void check_ship_info(const std::optional<ShipInfo>& ship, const std::string& product) {
  if (!ship) throw ValidationError("ship_info", "is required for provisioning_method qscd (" + product + "): DigiCert ships the token to this address");
  const std::array<std::pair<const char*, const std::string*>, 8> fields = {{{"name", &ship->name},
                                                                             {"addr1", &ship->addr1},
                                                                             {"addr2", &ship->addr2},
                                                                             {"city", &ship->city},
                                                                             {"state", &ship->state},
                                                                             {"zip", &ship->zip},
                                                                             {"country", &ship->country},
                                                                             {"method", &ship->method}}};
  for (const auto& [name, value] : fields) {
    if (value->empty()) throw ValidationError(std::string("ship_info.") + name, "is required and must not be empty");
  }
  if (ship->method != "STANDARD" && ship->method != "EXPEDITED") {
    throw ValidationError("ship_info.method", "must be STANDARD or EXPEDITED, not \"" + ship->method + "\"");
  }
}

// "dd MMM YYYY" (e.g. 09 JUN 2021), the documented format.
std::optional<std::time_t> parse_expiration_date(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%d %b %Y", &tm);
  if (end == nullptr || *end != '\0' || text.size() != 11) return std::nullopt;
  return timegm(&tm);
}

void check_validity(const OrderValidity& validity, std::chrono::system_clock::time_point today) {
  int set = (validity.years ? 1 : 0) + (validity.days ? 1 : 0) + (validity.custom_expiration_date ? 1 : 0);
  if (set == 0) throw ValidationError("order_validity", "needs one of years, days or custom_expiration_date");
  if (set > 1) throw ValidationError("order_validity", "give only one of years, days or custom_expiration_date");
  if (validity.years && (*validity.years < 1 || *validity.years > 3)) {
    throw ValidationError("order_validity.years", "must be 1, 2 or 3");
  }
  if (validity.days && (*validity.days < 1 || *validity.days > 397)) {
    throw ValidationError("order_validity.days", "must be from 1 to 397");
  }
  if (validity.custom_expiration_date) {
    auto date = parse_expiration_date(*validity.custom_expiration_date);
    if (!date) throw ValidationError("order_validity.custom_expiration_date", "must be a date like \"09 JUN 2027\" (dd MMM YYYY)");
    std::time_t now = std::chrono::system_clock::to_time_t(today);
    double days = std::difftime(*date, now) / 86400.0;
    if (days <= 0) throw ValidationError("order_validity.custom_expiration_date", "must be in the future");
    if (days > 397) throw ValidationError("order_validity.custom_expiration_date", "must be within 397 days of today");
  }
}

void check_csr_key(const OrderRequest& request, const ProductRules& rules, const CsrInfo& csr) {
  if (!csr.signature_valid) throw ValidationError("certificate.csr", "the request's signature does not verify with its own key");
  bool rsa = csr.key_type == "RSA" || csr.key_type == "RSA-PSS";
  const std::string found = csr.key_type + " " + std::to_string(csr.key_bits);
  switch (rules.key_rule) {
    case KeyRule::rsa_2048_3072_4096:
      if (!rsa || (csr.key_bits != 2048 && csr.key_bits != 3072 && csr.key_bits != 4096)) {
        throw ValidationError("certificate.csr", rules.name_id + " takes RSA 2048, 3072 or 4096 keys only, not " + found);
      }
      break;
    case KeyRule::rsa_2048_or_more:
      if (!rsa || csr.key_bits < 2048) {
        throw ValidationError("certificate.csr", rules.name_id + " with a CSR takes RSA keys of 2048 bits or more only, not " + found);
      }
      break;
    case KeyRule::any:
      break;
  }
  if (request.certificate.is_rsassa_pss.value_or(false) && !rsa) {
    throw ValidationError("certificate.is_rsassa_pss", "is only for RSA keys");
  }
}

}  // namespace

void default_common_name(OrderRequest& request, const std::string& common_name) {
  if (request.certificate.common_name.empty() && !common_name.empty() && product_rules(request.product).common_name_in_order) {
    request.certificate.common_name = common_name;
  }
}

bool is_qscd_order(const OrderRequest& request) { return request.provisioning_method.value_or("") == "qscd"; }

std::vector<std::string_view> order_body_fields(std::string_view object) {
  std::vector<std::string_view> fields;
  if (object.empty()) {
    fields = {"certificate",    "organization",   "csa_agreed_to", "provisioning_method", "ship_info",
              "order_validity", "validity_years", "payment_method", "credit_card",        "billing_address",
              "skip_approval",  "comments",       "renewal_of_order_id"};
    fields.insert(fields.end(), passthrough_top.begin(), passthrough_top.end());
  } else if (object == "certificate") {
    fields = {"common_name", "dns_names", "csr", "signature_hash", "profile_option", "is_rsassa_pss", "oin", "exclude_oin",
              "server_platform"};
    fields.insert(fields.end(), passthrough_certificate.begin(), passthrough_certificate.end());
  } else if (object == "contact") {
    fields = {"user_id", "first_name", "last_name", "job_title", "telephone", "email", "contact_type"};
  } else if (object == "ship_info") {
    fields = {"name", "addr1", "addr2", "city", "state", "zip", "country", "method"};
  } else if (object == "order_validity") {
    fields = {"years", "days", "custom_expiration_date"};
  }
  return fields;
}

OrderRequest order_request_from_json(std::string product, const nlohmann::json& body) {
  if (!body.is_object()) throw ValidationError("order file", "must be a JSON object (the order body)");
  OrderRequest out;
  out.product = std::move(product);
  for (const auto& [key, value] : body.items()) {
    if (key == "certificate") out.certificate = certificate_from_json(object_at(body, key, key));
    else if (key == "organization") out.organization = organization_from_json(object_at(body, key, key));
    else if (key == "csa_agreed_to") out.csa_agreed_to = as_bool(value, key);
    else if (key == "provisioning_method") out.provisioning_method = as_string(value, key);
    else if (key == "ship_info") out.ship_info = ship_info_from_json(object_at(body, key, key));
    else if (key == "order_validity") out.order_validity = validity_from_json(object_at(body, key, key));
    else if (key == "validity_years") out.order_validity = OrderValidity{as_int(value, key), std::nullopt, std::nullopt};
    else if (key == "payment_method") out.payment_method = as_string(value, key);
    else if (key == "credit_card") out.credit_card = object_at(body, key, key);
    else if (key == "billing_address") out.billing_address = object_at(body, key, key);
    else if (key == "skip_approval") out.skip_approval = as_bool(value, key);
    else if (key == "comments") out.comments = as_string(value, key);
    else if (key == "renewal_of_order_id") out.renewal_of_order_id = as_id(value, key);
    else if (passthrough_top.contains(key)) out.extra[key] = value;
    else throw ValidationError(key, "is not a field of the order body");
  }
  return out;
}

nlohmann::json to_json(const OrderRequest& request) {
  json certificate = request.certificate.extra;
  const auto& c = request.certificate;
  if (!c.common_name.empty()) certificate["common_name"] = c.common_name;
  if (!c.dns_names.empty()) certificate["dns_names"] = c.dns_names;
  if (!c.csr.empty()) certificate["csr"] = c.csr;
  certificate["signature_hash"] = c.signature_hash;
  if (c.profile_option) certificate["profile_option"] = *c.profile_option;
  if (c.is_rsassa_pss) certificate["is_rsassa_pss"] = *c.is_rsassa_pss;
  if (c.oin) certificate["oin"] = *c.oin;
  if (c.exclude_oin) certificate["exclude_oin"] = *c.exclude_oin;
  if (c.server_platform_id) certificate["server_platform"] = {{"id", *c.server_platform_id}};

  json organization = request.organization.details;
  if (request.organization.id) organization["id"] = *request.organization.id;
  if (!request.organization.contacts.empty()) {
    json contacts = json::array();
    for (const auto& contact : request.organization.contacts) contacts.push_back(contact_to_json(contact));
    organization["contacts"] = contacts;
  }

  json body = request.extra;
  body["certificate"] = certificate;
  body["organization"] = organization;
  if (request.csa_agreed_to) body["csa_agreed_to"] = *request.csa_agreed_to;
  if (request.provisioning_method) body["provisioning_method"] = *request.provisioning_method;
  if (request.ship_info) {
    const auto& s = *request.ship_info;
    body["ship_info"] = {{"name", s.name}, {"addr1", s.addr1}, {"addr2", s.addr2}, {"city", s.city},
                         {"state", s.state}, {"zip", s.zip},     {"country", s.country}, {"method", s.method}};
  }
  if (request.order_validity) {
    json validity = json::object();
    const auto& v = *request.order_validity;
    if (v.years) validity["years"] = *v.years;
    if (v.days) validity["days"] = *v.days;
    if (v.custom_expiration_date) validity["custom_expiration_date"] = *v.custom_expiration_date;
    body["order_validity"] = validity;
  }
  body["payment_method"] = request.payment_method;
  if (request.credit_card) body["credit_card"] = *request.credit_card;
  if (request.billing_address) body["billing_address"] = *request.billing_address;
  if (request.skip_approval) body["skip_approval"] = *request.skip_approval;
  if (request.comments) body["comments"] = *request.comments;
  if (request.renewal_of_order_id) body["renewal_of_order_id"] = *request.renewal_of_order_id;
  return body;
}

nlohmann::json redacted(const OrderRequest& request) {
  json body = to_json(request);
  if (body.contains("credit_card")) body["credit_card"] = "<redacted>";
  if (body.contains("billing_address")) body["billing_address"] = "<redacted>";
  return body;
}

namespace {

void validate_order(const OrderRequest& request, std::chrono::system_clock::time_point today, const CsrInfo* planned) {
  const auto& product = request.product;
  const auto& c = request.certificate;
  if (product.empty() || !std::all_of(product.begin(), product.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
      })) {
    throw ValidationError("product", "must be a CertCentral product name_id (lowercase letters, digits, _)");
  }
  const ProductRules rules = product_rules(product);
  const bool qualified = rules.qualified;
  if (qualified && c.signature_hash != "sha256") {
    throw ValidationError("certificate.signature_hash", "must be sha256 for " + product + " (PKIo and EU qualified products support only SHA-256)");
  }
  if (qualified && request.csa_agreed_to != true) {
    throw ValidationError("csa_agreed_to", "must be true for " + product + " (the Certificate Subscriber Agreement)");
  }
  if (!request.organization.id && request.organization.details.empty()) {
    throw ValidationError("organization", "needs id (an existing organization, see `orgs`) or the details of a new one");
  }

  if (rules.only_provisioning_method) {
    if (request.provisioning_method != *rules.only_provisioning_method) {
      throw ValidationError("provisioning_method", "must be " + std::string(*rules.only_provisioning_method) + " for " + product +
                                                       " (the only method DigiCert supports)");
    }
  } else if (rules.provisioning_method_required) {
    if (request.provisioning_method != "qscd" && request.provisioning_method != "csr") {
      throw ValidationError("provisioning_method", "must be qscd (qualified seal, DigiCert ships the token) or csr (advanced seal) for " + product);
    }
  } else if (request.provisioning_method && *request.provisioning_method != "qscd" && *request.provisioning_method != "csr") {
    throw ValidationError("provisioning_method", "must be qscd or csr");
  }
  if (rules.only_profile_option && c.profile_option != *rules.only_profile_option) {
    throw ValidationError("certificate.profile_option", "must be " + std::string(*rules.only_profile_option) + " for " + product +
                                                             " (the only PKIo profile option)");
  }

  if (is_qscd_order(request)) {
    check_ship_info(request.ship_info, product);
    if (!c.csr.empty()) {
      throw ValidationError("certificate.csr", "must be left out for provisioning_method qscd: give the CSR to the order's pickup step (order attach)");
    }
  } else {
    if (c.csr.empty() && planned == nullptr) throw ValidationError("certificate.csr", "is required for " + product);
    check_csr_key(request, rules, c.csr.empty() ? *planned : inspect_csr(c.csr));
    if (request.ship_info) check_ship_info(request.ship_info, product);
  }

  if (rules.takes_oin) {
    if (c.oin && c.exclude_oin.value_or(false)) {
      throw ValidationError("certificate.oin", "give either oin or exclude_oin: true, not both");
    }
    if (c.oin && (c.oin->size() != 20 || !is_digits(*c.oin))) {
      throw ValidationError("certificate.oin", "must be 20 digits (an OIN or HRN)");
    }
  }
  if (!is_qscd_order(request) && c.common_name.empty() && rules.common_name_in_order) {
    throw ValidationError("certificate.common_name", "is required for " + product);
  }

  if (request.order_validity) check_validity(*request.order_validity, today);

  if (request.payment_method != "balance" && request.payment_method != "profile" && request.payment_method != "card") {
    throw ValidationError("payment_method", "must be balance, profile or card");
  }
  if (request.payment_method == "card" && (!request.credit_card || !request.billing_address)) {
    throw ValidationError("payment_method", "card needs credit_card and billing_address");
  }
}

}  // namespace

void validate(const OrderRequest& request, std::chrono::system_clock::time_point today) {
  validate_order(request, today, nullptr);
}

void validate(const OrderRequest& request, std::chrono::system_clock::time_point today, const CsrInfo& planned) {
  validate_order(request, today, &planned);
}

nlohmann::json to_json(const ReissueRequest& request) {
  json certificate = json::object();
  certificate["csr"] = request.csr;
  if (!request.common_name.empty()) certificate["common_name"] = request.common_name;
  if (!request.dns_names.empty()) certificate["dns_names"] = request.dns_names;
  certificate["signature_hash"] = request.signature_hash;
  if (request.server_platform_id) certificate["server_platform"] = {{"id", *request.server_platform_id}};
  json body = {{"certificate", certificate}};
  if (request.skip_approval) body["skip_approval"] = *request.skip_approval;
  if (request.comments) body["comments"] = *request.comments;
  return body;
}

const char* to_string(CertificateFormat format) {
  switch (format) {
    case CertificateFormat::pem_noroot: return "pem_noroot";
    case CertificateFormat::pem_all: return "pem_all";
    case CertificateFormat::p7b: return "p7b";
  }
  return "pem_noroot";
}

}  // namespace qscd::api
