// certcentral-sim against the documentation, not against our client: for each endpoint the
// documented request, the documented answer's shape (a JSON schema per answer, written from
// shared/reference/certcentral-api.md and seed 003), and each documented refusal with its code.
// Everything here runs in strict mode (the default).
#include <doctest/doctest.h>
#include <httplib.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "certcentral_sim.hpp"
#include "test_pki.hpp"

using nlohmann::json;
using qscd::test::CertCentralSim;

namespace {

// ---- a small JSON Schema subset: type, required, properties, additionalProperties (false),
// items, enum, format (date-time: UTC ISO 8601 with offset, date: yyyy-MM-dd) ----

void check_schema(const json& value, const json& schema, const std::string& at, std::vector<std::string>& problems) {
  if (schema.contains("type")) {
    std::vector<std::string> types = schema["type"].is_array() ? schema["type"].get<std::vector<std::string>>()
                                                              : std::vector<std::string>{schema["type"].get<std::string>()};
    bool fits = false;
    for (const auto& type : types) {
      fits = fits || (type == "object" && value.is_object()) || (type == "array" && value.is_array()) ||
             (type == "string" && value.is_string()) || (type == "integer" && value.is_number_integer()) ||
             (type == "boolean" && value.is_boolean()) || (type == "null" && value.is_null());
    }
    if (!fits) {
      problems.push_back(at + ": is " + value.dump().substr(0, 60) + ", not " + schema["type"].dump());
      return;
    }
  }
  if (schema.contains("enum") && std::find(schema["enum"].begin(), schema["enum"].end(), value) == schema["enum"].end()) {
    problems.push_back(at + ": " + value.dump() + " is not one of " + schema["enum"].dump());
  }
  if (schema.contains("format") && value.is_string()) {
    static const std::regex date_time(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+00:00)");
    static const std::regex date(R"(\d{4}-\d{2}-\d{2})");
    static const std::regex hex(R"([0-9A-F]+)");
    const std::string& format = schema["format"].get_ref<const std::string&>();
    const std::string& text = value.get_ref<const std::string&>();
    bool ok = format == "date-time" ? std::regex_match(text, date_time)
              : format == "date"    ? std::regex_match(text, date)
              : format == "hex"     ? std::regex_match(text, hex)
              : format == "pem"     ? text.find("-----BEGIN CERTIFICATE") == 0
                                    : true;
    if (!ok) problems.push_back(at + ": \"" + text.substr(0, 40) + "\" is not a " + format);
  }
  if (value.is_object()) {
    for (const auto& name : schema.value("required", json::array())) {
      if (!value.contains(name.get<std::string>())) problems.push_back(at + ": lacks " + name.get<std::string>());
    }
    const json properties = schema.value("properties", json::object());
    for (const auto& [key, item] : value.items()) {
      if (properties.contains(key)) {
        check_schema(item, properties[key], at + "." + key, problems);
      } else if (schema.contains("additionalProperties") && schema["additionalProperties"] == false) {
        problems.push_back(at + ": has " + key + ", which the documented answer does not");
      }
    }
  }
  if (value.is_array() && schema.contains("items")) {
    for (std::size_t i = 0; i < value.size(); ++i) check_schema(value[i], schema["items"], at + "[" + std::to_string(i) + "]", problems);
  }
}

#define CHECK_SCHEMA(value, schema)                                                        \
  do {                                                                                     \
    std::vector<std::string> problems_;                                                    \
    check_schema((value), (schema), "$", problems_);                                       \
    for (const auto& problem_ : problems_) FAIL_CHECK(problem_);                           \
    CHECK_MESSAGE(problems_.empty(), (value).dump().substr(0, 2000));                      \
  } while (false)

// ---- the documented answers (reference section in each comment) ----

const json id_type = {{"type", "integer"}};
const json date_time = {{"type", "string"}, {"format", "date-time"}};
const json date_only = {{"type", "string"}, {"format", "date"}};
const json string_type = {{"type", "string"}};
const json strings = {{"type", "array"}, {"items", string_type}};
const json request_status = {{"type", "string"}, {"enum", {"submitted", "pending", "approved", "rejected"}}};
const json order_status = {{"type", "string"},
                           {"enum", {"needs_approval", "pending", "processing", "submitted", "reissue_pending", "waiting_pickup", "issued",
                                     "rejected", "canceled", "denied", "revoked", "expired"}}};

// §1.5 errors
const json error_schema = {
    {"type", "object"},
    {"required", {"errors"}},
    {"additionalProperties", false},
    {"properties",
     {{"errors",
       {{"type", "array"},
        {"items", {{"type", "object"}, {"required", {"code", "message"}}, {"additionalProperties", false},
                   {"properties", {{"code", string_type}, {"message", string_type}}}}}}}}}};

const json chain_item = {{"type", "object"},
                         {"required", {"subject_common_name", "pem"}},
                         {"additionalProperties", false},
                         {"properties", {{"subject_common_name", string_type}, {"pem", {{"type", "string"}, {"format", "pem"}}}}}};

// §2.1 / seed 003: the POST answer
const json submit_schema = {
    {"type", "object"},
    {"required", {"id"}},
    {"additionalProperties", false},
    {"properties",
     {{"id", id_type},
      {"requests", {{"type", "array"}, {"items", {{"type", "object"}, {"required", {"id", "status"}}, {"additionalProperties", false},
                                                  {"properties", {{"id", id_type}, {"status", request_status}}}}}}},
      {"certificate_id", id_type},
      {"certificate_chain", {{"type", "array"}, {"items", chain_item}}}}}};

const json named = {{"type", "object"}, {"required", {"id", "name"}}, {"properties", {{"id", id_type}, {"name", string_type}}}};
const json product_brief = {{"type", "object"},
                            {"required", {"name_id", "name", "type"}},
                            {"properties", {{"name_id", string_type}, {"name", string_type}, {"type", string_type}}}};

// §2.4 order info
json order_info_schema(bool issued) {
  json certificate = {{"type", "object"},
                      {"required", {"common_name", "dns_names", "date_created", "csr", "organization", "signature_hash", "server_platform"}},
                      {"properties",
                       {{"id", id_type},
                        {"thumbprint", {{"type", "string"}, {"format", "hex"}}},
                        {"serial_number", {{"type", "string"}, {"format", "hex"}}},
                        {"common_name", string_type},
                        {"dns_names", strings},
                        {"date_created", date_time},
                        {"date_issued", date_time},
                        {"valid_from", date_only},
                        {"valid_till", date_only},
                        {"days_remaining", id_type},
                        {"csr", string_type},
                        {"organization", {{"type", "object"}, {"required", {"id"}}, {"properties", {{"id", id_type}}}}},
                        {"organization_units", strings},
                        {"server_platform", {{"type", "object"}, {"required", {"id"}}, {"properties", {{"id", id_type}}}}},
                        {"signature_hash", string_type},
                        {"key_size", id_type},
                        {"ca_cert", {{"type", "object"}, {"required", {"id", "name"}}, {"properties", {{"id", string_type}, {"name", string_type}}}}},
                        {"cert_validity", {{"type", "object"}}}}}};
  if (issued) {
    for (const char* key : {"id", "thumbprint", "serial_number", "date_issued", "valid_from", "valid_till", "days_remaining", "key_size", "ca_cert"}) {
      certificate["required"].push_back(key);
    }
  }
  return {{"type", "object"},
          {"required", {"id", "certificate", "status", "date_created", "order_valid_till", "organization", "product", "container", "requests", "is_renewal"}},
          {"properties",
           {{"id", id_type},
            {"certificate", certificate},
            {"status", order_status},
            {"date_created", date_time},
            {"order_valid_till", date_only},
            {"is_renewal", {{"type", "boolean"}}},
            {"organization", named},
            {"product", product_brief},
            {"container", named},
            {"requests", {{"type", "array"},
                          {"items", {{"type", "object"}, {"required", {"id", "date", "type", "status"}},
                                     {"properties", {{"id", id_type}, {"date", date_time}, {"type", string_type}, {"status", request_status},
                                                     {"comments", {{"type", {"string", "null"}}}}}}}}}},
            {"organization_contact", {{"type", "object"}}},
            {"technical_contact", {{"type", "object"}}}}}};
}

// §2.6 list orders: exactly these fields
const json list_schema = {
    {"type", "object"},
    {"required", {"orders", "page"}},
    {"additionalProperties", false},
    {"properties",
     {{"orders",
       {{"type", "array"},
        {"items",
         {{"type", "object"},
          {"required", {"id", "certificate", "status", "is_renewed", "date_created", "organization", "validity_years", "disable_renewal_notifications",
                        "container", "product", "has_duplicates", "product_name_id"}},
          {"additionalProperties", false},
          {"properties",
           {{"id", id_type},
            {"certificate",
             {{"type", "object"},
              {"required", {"common_name", "dns_names", "signature_hash"}},
              {"additionalProperties", false},
              {"properties", {{"id", id_type}, {"common_name", string_type}, {"dns_names", strings}, {"valid_till", date_only},
                              {"days_remaining", id_type}, {"signature_hash", string_type}}}}},
            {"status", order_status},
            {"is_renewed", {{"type", "boolean"}}},
            {"date_created", date_time},
            {"organization", named},
            {"validity_years", id_type},
            {"disable_renewal_notifications", {{"type", "boolean"}}},
            {"container", named},
            {"product", product_brief},
            {"has_duplicates", {{"type", "boolean"}}},
            {"product_name_id", string_type}}}}}}},
      {"page", {{"type", "object"}, {"required", {"total", "limit", "offset"}}, {"additionalProperties", false},
                {"properties", {{"total", id_type}, {"limit", id_type}, {"offset", id_type}}}}}}}};

// §2.7 organizations
const json organization_schema = {
    {"type", "object"},
    {"required", {"id", "status", "name", "display_name", "is_active", "address", "zip", "city", "state", "country", "telephone", "container"}},
    {"properties",
     {{"id", id_type}, {"status", {{"type", "string"}, {"enum", {"active", "inactive"}}}}, {"name", string_type}, {"is_active", {{"type", "boolean"}}},
      {"country", {{"type", "string"}}}, {"container", {{"type", "object"}, {"required", {"id", "name"}}}}}}};

// §2.9 request info
const json request_schema = {
    {"type", "object"},
    {"required", {"id", "date", "type", "status", "requester", "order"}},
    {"properties",
     {{"id", id_type},
      {"date", date_time},
      {"type", {{"type", "string"}, {"enum", {"new_request", "revoke", "duplicate", "reissue"}}}},
      {"status", request_status},
      {"date_processed", date_time},
      {"requester", {{"type", "object"}, {"required", {"id", "first_name", "last_name", "email"}}}},
      {"order", {{"type", "object"}, {"required", {"id"}}, {"properties", {{"id", id_type}}}}},
      {"comments", {{"type", {"string", "null"}}}}}}};

// §2.3 products (client code: riboseinc, Keyfactor)
const json product_schema = {{"type", "object"},
                             {"required", {"name_id", "name", "type", "group_name", "allowed_validity_years", "signature_hash_types"}},
                             {"properties",
                              {{"name_id", string_type},
                               {"allowed_validity_years", {{"type", "array"}, {"items", id_type}}},
                               {"signature_hash_types", {{"type", "object"}, {"required", {"allowed_hash_types", "default_hash_type_id"}}}}}}};

// ---- HTTP ----

class Api {
 public:
  explicit Api(const CertCentralSim& sim) : client_("127.0.0.1", sim.port()) {
    client_.set_ca_cert_path(sim.ca_file().c_str());
    client_.enable_server_certificate_verification(true);
    client_.set_keep_alive(true);
  }
  httplib::Result get(const std::string& path) { return client_.Get(("/services/v2" + path).c_str(), headers()); }
  httplib::Result post(const std::string& path, const json& body) { return send("POST", path, body.dump()); }
  httplib::Result put(const std::string& path, const json& body) { return send("PUT", path, body.dump()); }
  httplib::Result send(const std::string& method, const std::string& path, const std::string& text) {
    if (method == "POST") return client_.Post(("/services/v2" + path).c_str(), headers(), text, "application/json");
    if (method == "PUT") return client_.Put(("/services/v2" + path).c_str(), headers(), text, "application/json");
    return client_.Delete(("/services/v2" + path).c_str(), headers(), text, "application/json");
  }

 private:
  httplib::Headers headers() const { return {{"X-DC-DEVKEY", CertCentralSim::api_key}}; }
  httplib::SSLClient client_;
};

json body_of(const httplib::Result& result) {
  REQUIRE(result);
  json doc = json::parse(result->body, nullptr, false);
  REQUIRE_MESSAGE(!doc.is_discarded(), result->body);
  return doc;
}

// A refusal: the status, the documented error shape, JSON content type, and the code.
void check_refused(const httplib::Result& result, int status, const std::string& code) {
  REQUIRE(result);
  CHECK_MESSAGE(result->status == status, result->body);
  CHECK(result->get_header_value("Content-Type") == "application/json");
  CHECK_FALSE(result->has_header("EXCEPTION_WHAT"));
  json doc = body_of(result);
  CHECK_SCHEMA(doc, error_schema);
  if (doc.contains("errors") && !doc["errors"].empty()) CHECK(doc["errors"][0]["code"] == code);
}

std::string rsa_csr(const std::string& cn, std::size_t bits = 2048) {
  auto key = qscd::test::make_key("RSA", bits);
  return qscd::test::make_csr(key.get(), cn);
}

// §2.2 example body for pkio_private_services_server.
json server_order(const std::string& csr) {
  return {{"certificate", {{"common_name", "svc.example.nl"}, {"dns_names", {"svc.example.nl"}}, {"csr", csr}, {"signature_hash", "sha256"},
                           {"oin", "00000003123456780000"}}},
          {"csa_agreed_to", true},
          {"dcv_method", "email"},
          {"organization", {{"id", 112233}}},
          {"order_validity", {{"years", 1}}},
          {"payment_method", "balance"},
          {"skip_approval", true}};
}

// Seed 003, the documented example (ids as strings, a verified contact).
json seal_order() {
  return json::parse(R"({
    "certificate": {"signature_hash": "sha256", "profile_option": "nonrepudiation"},
    "csa_agreed_to": true,
    "provisioning_method": "qscd",
    "ship_info": {"name": "John Doe", "addr1": "534 Jefferson Street", "addr2": "Floor 94", "city": "New Orleans", "state": "la",
                  "zip": "58061", "country": "us", "method": "STANDARD"},
    "organization": {"id": "112233", "contacts": [{"user_id": "2812497", "first_name": "John", "last_name": "Doe", "job_title": "Engineer",
                     "telephone": "1801-903-4284", "email": "john.doe@johndoe.com", "contact_type": "verified_contact"}]},
    "order_validity": {"years": 1},
    "payment_method": "balance"
  })");
}

std::string id_text(const json& value) { return value.is_string() ? value.get<std::string>() : std::to_string(value.get<std::int64_t>()); }

}  // namespace

TEST_CASE("POST /order/certificate/{product}: the documented answers, issued at once and waiting for approval") {
  CertCentralSim sim;
  Api api(sim);
  auto placed = api.post("/order/certificate/pkio_private_services_server", server_order(rsa_csr("svc.example.nl")));
  REQUIRE(placed);
  CHECK(placed->status == 201);
  CHECK(placed->get_header_value("Content-Type") == "application/json");
  json answer = body_of(placed);
  CHECK_SCHEMA(answer, submit_schema);
  CHECK(answer["requests"][0]["status"] == "approved");
  CHECK(answer.contains("certificate_id"));  // issued at once (skip_approval, nothing to validate)
  CHECK_FALSE(answer.contains("certificate_chain"));  // only with --chain-in-post

  auto waiting = api.post("/order/certificate/pkio_qualified_organisation_services", seal_order());
  CHECK(waiting->status == 201);
  json seal = body_of(waiting);
  CHECK_SCHEMA(seal, submit_schema);
  CHECK(seal["requests"][0]["status"] == "pending");
  CHECK_FALSE(seal.contains("certificate_id"));
}

TEST_CASE("GET /order/certificate/{id}: the documented order info, before and after issuance; by thumbprint and serial too") {
  CertCentralSim sim;
  Api api(sim);
  json seal = body_of(api.post("/order/certificate/pkio_qualified_organisation_services", seal_order()));
  json waiting = body_of(api.get("/order/certificate/" + id_text(seal["id"])));
  CHECK_SCHEMA(waiting, order_info_schema(false));
  CHECK(waiting["status"] == "needs_approval");
  CHECK(waiting["requests"][0]["status"] == "pending");
  CHECK(waiting["requests"][0]["type"] == "new_request");

  std::string csr = rsa_csr("svc.example.nl");
  json placed = body_of(api.post("/order/certificate/pkio_private_services_server", server_order(csr)));
  json order = body_of(api.get("/order/certificate/" + id_text(placed["id"])));
  CHECK_SCHEMA(order, order_info_schema(true));
  CHECK(order["status"] == "issued");
  CHECK(order["certificate"]["id"] == placed["certificate_id"]);
  CHECK(order["certificate"]["csr"] == csr);
  CHECK(order["certificate"]["key_size"] == 2048);
  CHECK(order["organization"]["name"] == "Voorbeeld Organisatie B.V.");
  CHECK(order["product"]["name_id"] == "pkio_private_services_server");
  // The certificate object is what CertCentral holds, not an echo of the request body.
  CHECK_FALSE(order["certificate"].contains("oin"));
  for (const char* key : {"thumbprint", "serial_number"}) {
    json same = body_of(api.get("/order/certificate/" + order["certificate"][key].get<std::string>()));
    CHECK(same["id"] == order["id"]);
  }
  check_refused(api.get("/order/certificate/424242"), 404, "not_found|order");
}

TEST_CASE("GET /order/certificate: the documented list entries, filters, pages; bad paging is a JSON 400") {
  CertCentralSim sim({"--auto-approve"});
  Api api(sim);
  REQUIRE(api.post("/order/certificate/pkio_private_services_server", server_order(rsa_csr("svc.example.nl")))->status == 201);
  REQUIRE(api.post("/order/certificate/pkio_qualified_organisation_services", seal_order())->status == 201);
  json seal_be = seal_order();
  seal_be["organization"] = {{"id", 445566}};
  REQUIRE(api.post("/order/certificate/pkio_qualified_organisation_services", seal_be)->status == 201);
  json all = body_of(api.get("/order/certificate"));
  CHECK_SCHEMA(all, list_schema);
  CHECK(all["page"]["total"] == 3);
  CHECK(body_of(api.get("/order/certificate?filters%5Borganization_id%5D=445566"))["page"]["total"] == 1);
  CHECK(body_of(api.get("/order/certificate?filters%5Bstatus%5D=waiting_pickup"))["page"]["total"] == 2);
  CHECK(body_of(api.get("/order/certificate?filters%5Bproduct_name_id%5D=pkio_private_services_server"))["orders"].size() == 1);
  json paged = body_of(api.get("/order/certificate?limit=1&offset=1"));
  CHECK(paged["orders"].size() == 1);
  CHECK(paged["page"]["limit"] == 1);
  CHECK(paged["page"]["offset"] == 1);
  check_refused(api.get("/order/certificate?limit=abc"), 400, "invalid_param|limit");
  check_refused(api.get("/order/certificate?offset=-1"), 400, "invalid_param|offset");
  check_refused(api.get("/order/certificate?filters%5Borganization_id%5D=x"), 400, "invalid_param|filters[organization_id]");
}

TEST_CASE("organizations, products, requests and status changes have their documented shapes") {
  CertCentralSim sim;
  Api api(sim);
  json orgs = body_of(api.get("/organization"));
  REQUIRE(orgs["organizations"].size() == 2);
  for (const auto& org : orgs["organizations"]) CHECK_SCHEMA(org, organization_schema);
  CHECK_SCHEMA(orgs["page"], list_schema["properties"]["page"]);
  CHECK_SCHEMA(body_of(api.get("/organization/112233")), organization_schema);
  check_refused(api.get("/organization/999"), 404, "not_found|organization");

  json products = body_of(api.get("/product"));
  REQUIRE(products["products"].size() >= 3);
  for (const auto& product : products["products"]) CHECK_SCHEMA(product, product_schema);
  CHECK_SCHEMA(body_of(api.get("/product/eu_eseal")), product_schema);
  check_refused(api.get("/product/no_such_product"), 404, "not_found|product");

  json placed = body_of(api.post("/order/certificate/pkio_qualified_organisation_services", seal_order()));
  std::string request_id = id_text(placed["requests"][0]["id"]);
  json requests = body_of(api.get("/request"));
  REQUIRE(requests["requests"].size() == 1);
  CHECK_SCHEMA(requests["requests"][0], request_schema);
  CHECK_SCHEMA(requests["page"], list_schema["properties"]["page"]);
  json request = body_of(api.get("/request/" + request_id));
  CHECK_SCHEMA(request, request_schema);
  CHECK_FALSE(request.contains("date_processed"));  // absent while pending
  auto approved = api.put("/request/" + request_id + "/status", {{"status", "approved"}, {"processor_comment", "ok"}});
  CHECK(approved->status == 204);
  CHECK(approved->body.empty());
  json processed = body_of(api.get("/request/" + request_id));
  CHECK_SCHEMA(processed, request_schema);
  CHECK(processed["status"] == "approved");
  CHECK(processed.contains("date_processed"));
  check_refused(api.put("/request/" + request_id + "/status", {{"status", "approved"}}), 400, "invalid_status_change");
  check_refused(api.put("/request/" + request_id + "/status", {{"status", "maybe"}}), 400, "invalid_param|status");
  check_refused(api.get("/request/1"), 404, "not_found|request");

  json changes = body_of(api.get("/order/certificate/status-changes?filters%5Bstatus_last_updated%5D=2000-01-01T00:00:00...2999-01-01T00:00:00"));
  const json change_schema = {{"type", "object"}, {"required", {"orders"}}, {"additionalProperties", false},
                              {"properties", {{"orders", {{"type", "array"}, {"items", {{"type", "object"}, {"required", {"order_id", "status"}},
                                                                                      {"additionalProperties", false},
                                                                                      {"properties", {{"order_id", id_type}, {"certificate_id", id_type},
                                                                                                      {"status", order_status}}}}}}}}}};
  CHECK_SCHEMA(changes, change_schema);
  CHECK(changes["orders"].size() == 1);
  CHECK(changes["orders"][0]["status"] == "waiting_pickup");
  CHECK(body_of(api.get("/order/certificate/status-changes?filters%5Bstatus_last_updated%5D=2000-01-01...2000-01-02"))["orders"].empty());
  check_refused(api.get("/order/certificate/status-changes"), 400, "missing_param|filters[status_last_updated]");
}

TEST_CASE("cancel, reissue, revoke: documented bodies, 204/201 answers and refusals") {
  CertCentralSim sim;
  Api api(sim);
  json seal = body_of(api.post("/order/certificate/pkio_qualified_organisation_services", seal_order()));
  std::string seal_id = id_text(seal["id"]);
  // needs_approval is ended by rejecting its request; cancel takes pending and waiting_pickup (§2.10).
  check_refused(api.put("/order/certificate/" + seal_id + "/status", {{"status", "canceled"}, {"note", "n"}}), 400, "invalid_status_change");
  REQUIRE(api.put("/request/" + id_text(seal["requests"][0]["id"]) + "/status", {{"status", "approved"}})->status == 204);
  check_refused(api.put("/order/certificate/" + seal_id + "/status", {{"status", "canceled"}}), 400, "missing_param|note");
  auto canceled = api.put("/order/certificate/" + seal_id + "/status", {{"status", "canceled"}, {"note", "not needed"}});
  CHECK(canceled->status == 204);
  CHECK(body_of(api.get("/order/certificate/" + seal_id))["status"] == "canceled");

  json placed = body_of(api.post("/order/certificate/pkio_private_services_server", server_order(rsa_csr("svc.example.nl"))));
  std::string id = id_text(placed["id"]);
  check_refused(api.put("/order/certificate/" + id + "/status", {{"status", "canceled"}, {"note", "n"}}), 400, "invalid_status_change");
  auto reissued = api.post("/order/certificate/" + id + "/reissue", {{"certificate", {{"csr", rsa_csr("svc.example.nl", 3072)}}}, {"skip_approval", true}});
  CHECK(reissued->status == 201);
  json reissue = body_of(reissued);
  CHECK_SCHEMA(reissue, submit_schema);
  json order = body_of(api.get("/order/certificate/" + id));
  CHECK(order["status"] == "issued");
  CHECK(order["certificate"]["key_size"] == 3072);
  CHECK(order["requests"].size() == 2);
  CHECK(order["requests"][1]["type"] == "reissue");
  check_refused(api.post("/order/certificate/" + id + "/reissue", {{"certificate", {{"csr", qscd::test::make_csr(qscd::test::make_key("EC").get(), "x")}}}}),
                400, "invalid_param|certificate.csr");

  // Revoke the current certificate: without skip_approval a revoke request that must be approved.
  std::string certificate_id = id_text(order["certificate"]["id"]);
  auto requested = api.put("/certificate/" + certificate_id + "/revoke", {{"comments", "key lost"}, {"revocation_reason", "keyCompromise"}});
  CHECK(requested->status == 201);
  json revoke = body_of(requested);
  // §2.12: { id, date, type: "revoke", status: "pending", requester{...}, comments }
  const json revoke_schema = {{"type", "object"}, {"required", {"id", "date", "type", "status", "requester", "comments"}}, {"additionalProperties", false},
                              {"properties", {{"id", id_type}, {"date", date_time}, {"type", string_type}, {"status", request_status},
                                              {"requester", request_schema["properties"]["requester"]}, {"comments", string_type}}}};
  CHECK_SCHEMA(revoke, revoke_schema);
  CHECK(revoke["type"] == "revoke");
  CHECK(revoke["status"] == "pending");
  CHECK(body_of(api.get("/order/certificate/" + id))["status"] == "issued");
  REQUIRE(api.put("/request/" + id_text(revoke["id"]) + "/status", {{"status", "approved"}})->status == 204);
  CHECK(body_of(api.get("/order/certificate/" + id))["status"] == "revoked");
  check_refused(api.put("/certificate/" + certificate_id + "/revoke", {{"skip_approval", true}}), 400, "invalid_status_change");
  check_refused(api.put("/certificate/" + certificate_id + "/revoke", {{"revocation_reason", "bored"}}), 400, "invalid_param|revocation_reason");

  // A whole order at once, with skip_approval: 204, no body.
  json other = body_of(api.post("/order/certificate/pkio_private_services_server", server_order(rsa_csr("b.example.nl"))));
  auto revoked = api.put("/order/certificate/" + id_text(other["id"]) + "/revoke", {{"comments", "done"}, {"skip_approval", true}});
  CHECK(revoked->status == 204);
  CHECK(revoked->body.empty());
  CHECK(body_of(api.get("/order/certificate/" + id_text(other["id"])))["status"] == "revoked");
}

TEST_CASE("downloads: every documented format with its content type; GET /certificate/{id}/chain") {
  CertCentralSim sim;
  Api api(sim);
  auto key = qscd::test::make_key();
  json placed = body_of(api.post("/order/certificate/pkio_private_services_server", server_order(qscd::test::make_csr(key.get(), "svc.example.nl"))));
  std::string certificate = "/certificate/" + id_text(placed["certificate_id"]);
  struct Expected {
    const char* format;
    const char* content_type;
    std::size_t certificates;  // PEM certificates, PKCS#7 members or zip files
  };
  for (const Expected& e : {Expected{"pem_all", "application/x-pem-file", 3}, Expected{"pem_noroot", "application/x-pem-file", 2},
                            Expected{"pem_nointermediate", "application/x-pem-file", 1}, Expected{"p7b", "application/x-pkcs7-certificates", 3},
                            Expected{"cer", "application/x-pkcs7-certificates", 3}, Expected{"default", "application/zip", 3},
                            Expected{"default_pem", "application/zip", 3}, Expected{"default_cer", "application/zip", 3},
                            Expected{"apache", "application/zip", 2}}) {
    CAPTURE(e.format);
    auto got = api.get(certificate + "/download/format/" + e.format);
    REQUIRE(got);
    CHECK(got->status == 200);
    CHECK(got->get_header_value("Content-Type") == e.content_type);
    const std::string type = e.content_type;
    if (type == "application/x-pem-file") {
      auto certs = qscd::test::read_pem_certs(got->body);
      CHECK(certs.size() == e.certificates);
      CHECK(qscd::test::same_key(certs.at(0).get(), key.get()));
    } else if (type == "application/zip") {
      CHECK(got->body.rfind("PK\x03\x04", 0) == 0);
      // Stored entries: count the local headers, and every one holds a PEM certificate.
      std::size_t files = 0;
      for (std::size_t at = got->body.find("PK\x03\x04"); at != std::string::npos; at = got->body.find("PK\x03\x04", at + 4)) ++files;
      CHECK(files == e.certificates);
      CHECK(got->body.find("-----BEGIN CERTIFICATE-----") != std::string::npos);
      CHECK(got->body.find("PK\x05\x06") != std::string::npos);
    } else {
      CHECK(qscd::test::read_p7b_certs(got->body).size() == e.certificates);
    }
  }
  auto by_order = api.get("/certificate/download/order/" + id_text(placed["id"]) + "/format/pem_noroot");
  CHECK(qscd::test::read_pem_certs(by_order->body).size() == 2);
  check_refused(api.get(certificate + "/download/format/zip"), 400, "invalid_param|format_type");
  check_refused(api.get("/certificate/1/download/format/pem_all"), 404, "not_found|certificate");

  json chain = body_of(api.get(certificate + "/chain"));
  CHECK_SCHEMA(chain, (json{{"type", "object"}, {"required", {"intermediates"}}, {"additionalProperties", false},
                             {"properties", {{"intermediates", {{"type", "array"}, {"items", chain_item}}}}}}));
  REQUIRE(chain["intermediates"].size() == 2);  // end entity first, then the issuing CA (Keyfactor's reading)
  CHECK(chain["intermediates"][0]["subject_common_name"] == "svc.example.nl");
  CHECK(chain["intermediates"][1]["subject_common_name"] == "certcentral-sim Test Issuing CA");
}

TEST_CASE("strict: each documented refusal, with its code; nothing is stored") {
  CertCentralSim sim;
  Api api(sim);
  auto ec = qscd::test::make_key("EC");
  const std::string ec_csr = qscd::test::make_csr(ec.get(), "svc.example.nl");
  SUBCASE("pkio_private_services_server: RSA 2048/3072/4096 only, no ECC (§0.3)") {
    check_refused(api.post("/order/certificate/pkio_private_services_server", server_order(ec_csr)), 400, "invalid_param|certificate.csr");
    check_refused(api.post("/order/certificate/pkio_private_services_server", server_order(rsa_csr("svc.example.nl", 1024))), 400,
                  "invalid_param|certificate.csr");
  }
  SUBCASE("eu_eseal with a CSR: RSA >= 2048, no ECC (§0.2)") {
    json order = {{"certificate", {{"csr", ec_csr}, {"signature_hash", "sha256"}}}, {"csa_agreed_to", true}, {"provisioning_method", "csr"},
                  {"organization", {{"id", 112233}}}, {"order_validity", {{"years", 1}}}, {"payment_method", "balance"}};
    check_refused(api.post("/order/certificate/eu_eseal", order), 400, "invalid_param|certificate.csr");
    order["provisioning_method"] = "email";
    order["certificate"]["csr"] = rsa_csr("Zegel");
    check_refused(api.post("/order/certificate/eu_eseal", order), 400, "invalid_param|provisioning_method");
  }
  SUBCASE("pkio_qualified_organisation_services: QSCD only, no CSR, nonrepudiation only, shipping required (seed 003)") {
    json with_csr = seal_order();
    with_csr["certificate"]["csr"] = rsa_csr("Zegel");
    check_refused(api.post("/order/certificate/pkio_qualified_organisation_services", with_csr), 400, "invalid_param|certificate.csr");
    json digital = seal_order();
    digital["certificate"]["profile_option"] = "digital_signature";
    check_refused(api.post("/order/certificate/pkio_qualified_organisation_services", digital), 400, "invalid_param|certificate.profile_option");
    json csr_method = seal_order();
    csr_method["provisioning_method"] = "csr";
    check_refused(api.post("/order/certificate/pkio_qualified_organisation_services", csr_method), 400, "invalid_param|provisioning_method");
    json no_ship = seal_order();
    no_ship.erase("ship_info");
    check_refused(api.post("/order/certificate/pkio_qualified_organisation_services", no_ship), 400, "missing_param|ship_info");
    json overnight = seal_order();
    overnight["ship_info"]["method"] = "OVERNIGHT";
    check_refused(api.post("/order/certificate/pkio_qualified_organisation_services", overnight), 400, "invalid_param|ship_info.method");
  }
  SUBCASE("PKIo and EU products: SHA-256 only, the subscriber agreement, a payment method (§3.5, seed 003)") {
    json sha1 = server_order(rsa_csr("svc.example.nl"));
    sha1["certificate"]["signature_hash"] = "sha384";
    check_refused(api.post("/order/certificate/pkio_private_services_server", sha1), 400, "invalid_param|certificate.signature_hash");
    json no_csa = server_order(rsa_csr("svc.example.nl"));
    no_csa["csa_agreed_to"] = false;
    check_refused(api.post("/order/certificate/pkio_private_services_server", no_csa), 400, "invalid_param|csa_agreed_to");
    json no_payment = server_order(rsa_csr("svc.example.nl"));
    no_payment.erase("payment_method");
    check_refused(api.post("/order/certificate/pkio_private_services_server", no_payment), 400, "missing_param|payment_method");
    json bad_oin = server_order(rsa_csr("svc.example.nl"));
    bad_oin["certificate"]["oin"] = "1234";
    check_refused(api.post("/order/certificate/pkio_private_services_server", bad_oin), 400, "invalid_param|certificate.oin");
    json four_years = server_order(rsa_csr("svc.example.nl"));
    four_years["order_validity"]["years"] = 4;
    check_refused(api.post("/order/certificate/pkio_private_services_server", four_years), 400, "invalid_param|order_validity.years");
  }
  SUBCASE("bodies that do not parse or carry the wrong types, unknown products and organizations") {
    check_refused(api.send("POST", "/order/certificate/pkio_private_services_server", "{not json"), 400, "bad_request_format");
    check_refused(api.send("POST", "/order/certificate/pkio_private_services_server", "[1, 2]"), 400, "bad_request_format");
    json nulls = server_order(rsa_csr("svc.example.nl"));
    nulls["certificate"]["dns_names"] = nullptr;
    check_refused(api.post("/order/certificate/pkio_private_services_server", nulls), 400, "bad_request_format");
    json numbers = server_order(rsa_csr("svc.example.nl"));
    numbers["certificate"]["dns_names"] = json::array({1, 2});
    check_refused(api.post("/order/certificate/pkio_private_services_server", numbers), 400, "bad_request_format");
    json garbled = server_order("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n");
    check_refused(api.post("/order/certificate/pkio_private_services_server", garbled), 400, "csr_invalid_cannot_parse");
    check_refused(api.post("/order/certificate/no_such_product", server_order(ec_csr)), 404, "not_found|product");
    json nobody = server_order(rsa_csr("svc.example.nl"));
    nobody["organization"]["id"] = 999;
    check_refused(api.post("/order/certificate/pkio_private_services_server", nobody), 404, "not_found|organization");
  }
  CHECK(sim.orders().empty());
  CHECK(body_of(api.get("/order/certificate"))["page"]["total"] == 0);
}

TEST_CASE("subjects come from the organization record and the order, never from the CSR (§0.4)") {
  CertCentralSim sim;
  Api api(sim);
  auto key = qscd::test::make_key();
  std::string csr = qscd::test::make_csr(key.get(), {{"C", "US"}, {"O", "Evil Corp"}, {"OU", "from the CSR"}, {"CN", "evil.example.com"}});
  json placed = body_of(api.post("/order/certificate/pkio_private_services_server", server_order(csr)));
  auto chain = qscd::test::read_pem_certs(api.get("/certificate/" + id_text(placed["certificate_id"]) + "/download/format/pem_noroot")->body);
  REQUIRE(!chain.empty());
  CHECK(qscd::test::subject_text(chain[0].get()) == "CN=svc.example.nl,serialNumber=00000003123456780000,O=Voorbeeld Organisatie B.V.,C=NL");
  CHECK(qscd::test::same_key(chain[0].get(), key.get()));
}

TEST_CASE("nothing a client sends makes the sim fail later: unknown routes, faults on keep-alive, a restart") {
  CertCentralSim sim({"--fail-429-every", "3"});
  Api api(sim);
  // Requests 1 and 2 pass, 3 is an injected 429: it must not leave its body on the connection.
  check_refused(api.get("/no/such/route"), 404, "not_found|route");
  check_refused(api.send("DELETE", "/order/certificate/1", "{}"), 404, "not_found|route");
  auto limited = api.post("/order/certificate/pkio_private_services_server", server_order(rsa_csr("svc.example.nl")));
  check_refused(limited, 429, "request_limit_exceeded");
  // The next request on the same connection is read as itself, not from the 429's body.
  auto next = api.post("/order/certificate/pkio_private_services_server", server_order(rsa_csr("svc.example.nl")));
  REQUIRE(next);
  CHECK_MESSAGE(next->status == 201, next->body);
  CHECK(api.get("/order/certificate")->status == 200);
  // A stored line another version wrote (or a hand edit) is skipped, not served as a 500.
  {
    std::ofstream poison(sim.dir() / "orders.jsonl", std::ios::app);
    poison << R"({"id": "100002", "order": {"id": 100002, "status": "issued", "certificate": {"dns_names": null}}})" << '\n';
  }
  sim.restart();
  Api again(sim);
  json list = body_of(again.get("/order/certificate"));
  CHECK(list["page"]["total"] == 1);
  CHECK(again.get("/order/certificate/" + id_text(list["orders"][0]["id"]))->status == 200);
  CHECK(again.get("/organization")->status == 429);  // the restarted sim's third request
  check_refused(again.get("/order/certificate/100002"), 404, "not_found|order");
}

TEST_CASE("a path that is not UTF-8 is answered and audited; the sim keeps answering (fuzz finding)") {
  CertCentralSim sim;
  Api api(sim);
  // The audit line holds the path: json::dump threw on it in the logger and ended the process.
  check_refused(api.get("/certificate/download/order/100\xf0\xf0" "001"), 404, "not_found|route");
  auto filtered = api.get("/order/certificate?filters%5Bcommon_name%5D=%F0%F0");
  REQUIRE(filtered);
  CHECK_MESSAGE(filtered->status == 200, filtered->body);
  CHECK(api.get("/organization")->status == 200);
  bool replaced = false;  // the bytes that are not UTF-8 are logged as U+FFFD
  for (const json& line : sim.audit()) {
    replaced = replaced || line["path"].get<std::string>().find("/certificate/download/order/100\xef\xbf\xbd") != std::string::npos;
  }
  CHECK(replaced);
}

TEST_CASE("a wrong or missing key is a JSON 401, on known and unknown routes") {
  CertCentralSim sim;
  httplib::SSLClient client("127.0.0.1", sim.port());
  client.set_ca_cert_path(sim.ca_file().c_str());
  client.enable_server_certificate_verification(true);
  check_refused(client.Get("/services/v2/order/certificate"), 401, "invalid_api_key");
  check_refused(client.Get("/services/v2/nothing/here", {{"X-DC-DEVKEY", "wrong"}}), 401, "invalid_api_key");
}

TEST_CASE("rough edges on demand: the chain in the POST answer, a repeated certificate, ids as strings, unknown fields") {
  CertCentralSim sim({"--chain-in-post", "--repeat-certificate", "--ids-as-strings", "--extra-fields"});
  Api api(sim);
  auto key = qscd::test::make_key();
  json placed = body_of(api.post("/order/certificate/pkio_private_services_server", server_order(qscd::test::make_csr(key.get(), "svc.example.nl"))));
  CHECK(placed["id"].is_string());
  CHECK(placed["certificate_id"].is_string());
  CHECK(placed["requests"][0]["id"].is_string());
  CHECK(placed.contains("x_sim_unknown_field"));
  REQUIRE(placed["certificate_chain"].size() == 3);  // end entity, issuing CA, root
  auto leaf = qscd::test::read_pem_certs(placed["certificate_chain"][0]["pem"].get<std::string>());
  REQUIRE(leaf.size() == 1);
  CHECK(qscd::test::same_key(leaf[0].get(), key.get()));
  CHECK(placed["certificate_chain"][0]["subject_common_name"] == "svc.example.nl");
  json order = body_of(api.get("/order/certificate/" + placed["id"].get<std::string>()));
  CHECK(order["certificate"].contains("x_sim_unknown_field"));
  CHECK(order["organization"]["id"].is_string());
  auto pem = qscd::test::read_pem_certs(api.get("/certificate/" + placed["certificate_id"].get<std::string>() + "/download/format/pem_noroot")->body);
  REQUIRE(pem.size() == 3);  // the end entity twice, then the issuing CA
  CHECK(X509_cmp(pem[0].get(), pem[1].get()) == 0);
  // Errors keep their documented shape apart from the unknown field.
  json error = body_of(api.get("/order/certificate/424242"));
  CHECK(error["errors"][0]["code"] == "not_found|order");
}

TEST_CASE("--certificate-id-on-approval: certificate_id once approved, while the certificate is still pending") {
  CertCentralSim sim({"--certificate-id-on-approval", "--issue-after-polls", "1"});
  Api api(sim);
  json placed = body_of(api.post("/order/certificate/pkio_private_services_server", server_order(rsa_csr("svc.example.nl"))));
  CHECK_SCHEMA(placed, submit_schema);
  REQUIRE(placed.contains("certificate_id"));
  std::string id = id_text(placed["id"]);
  check_refused(api.get("/certificate/" + id_text(placed["certificate_id"]) + "/download/format/pem_noroot"), 404, "not_found|certificate");
  CHECK(body_of(api.get("/order/certificate/" + id))["status"] == "pending");
  json issued = body_of(api.get("/order/certificate/" + id));
  CHECK(issued["status"] == "issued");
  CHECK(issued["certificate"]["id"] == placed["certificate_id"]);
}

TEST_CASE("--lenient takes what strict mode refuses (for experiments), still type-checked") {
  CertCentralSim sim({"--lenient"});
  Api api(sim);
  auto ec = qscd::test::make_key("EC");
  CHECK(api.post("/order/certificate/pkio_private_services_server", server_order(qscd::test::make_csr(ec.get(), "svc.example.nl")))->status == 201);
  json nulls = server_order(rsa_csr("svc.example.nl"));
  nulls["certificate"]["dns_names"] = nullptr;
  check_refused(api.post("/order/certificate/pkio_private_services_server", nulls), 400, "bad_request_format");
}
