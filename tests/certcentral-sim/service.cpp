// The simulator's API: every route, the product rules, the state file and the audit log (see
// README.md). main.cpp serves it over HTTPS; tests/fuzz/fuzz_sim_request.cpp over loopback HTTP.
#include "service.hpp"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "pki.hpp"

namespace sim {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;



// ---- the product rules: one row per product, all that strict mode checks ----

struct ProductRule {
  const char* name_id;
  const char* name;
  const char* type;
  const char* validation_type;
  // provisioning_method values taken; empty: the field is not part of this product's order.
  std::vector<std::string> provisioning;
  bool csr_in_order;   // a CSR may (and, without qscd, must) come with the order
  bool rsa;            // RSA keys taken
  std::vector<int> rsa_bits;  // empty: any size >= 2048
  bool ec;             // ECDSA P-256/P-384 keys taken
  std::vector<std::string> profile_options;  // non-empty: profile_option required, one of these
  std::vector<std::string> hashes;           // signature_hash values taken
  bool csa_required;
  bool common_name_required;
  bool takes_oin;
  bool seal;  // a seal certificate (nonRepudiation), else a TLS server certificate
  std::vector<int> validity_years;
};

// Sources: shared/reference/certcentral-api.md §0, §2.2, §3.5 and seed 003 (PKIo Qualified eSeal).
const std::vector<ProductRule> product_rules = {
    {"pkio_private_services_server", "PKIo Private Services Server", "ssl_certificate", "ov", {}, true, true, {2048, 3072, 4096},
     false, {}, {"sha256"}, true, true, true, false, {1, 2, 3}},
    {"pkio_qualified_organisation_services", "PKIo Qualified eSeal", "eseal_certificate", "ov", {"qscd"}, false, true, {}, false,
     {"nonrepudiation"}, {"sha256"}, true, false, true, true, {1, 2, 3}},
    {"eu_eseal", "EU Qualified eSeal", "eseal_certificate", "ov", {"qscd", "csr"}, true, true, {}, false, {}, {"sha256"}, true, false,
     false, true, {1, 2, 3}},
    {"ssl_basic", "Basic OV", "ssl_certificate", "ov", {}, true, true, {}, true, {}, {"sha256", "sha384", "sha512"}, false, true, false,
     false, {1}},
};

const ProductRule* find_product(const std::string& name_id) {
  for (const auto& rule : product_rules) {
    if (name_id == rule.name_id) return &rule;
  }
  return nullptr;
}

// The organizations the simulated account holds. `registration` is the sim's stand-in for what
// DigiCert validated (the organizationIdentifier of seals); it is not part of any answer.
struct Organization {
  std::int64_t id;
  const char* name;
  const char* city;
  const char* state;
  const char* country;  // lowercase, as in the documented examples
  const char* address;
  const char* zip;
  const char* telephone;
  const char* registration;
};
const std::vector<Organization> organizations = {
    {112233, "Voorbeeld Organisatie B.V.", "Rotterdam", "Zuid-Holland", "nl", "Wilhelminakade 1", "3072 AP", "+31 10 000 0000",
     "NTRNL-12345678"},
    {445566, "Exemple SA", "Bruxelles", "Bruxelles-Capitale", "be", "Rue de la Loi 16", "1000", "+32 2 000 00 00",
     "NTRBE-0403019261"},
};

const Organization* find_org(std::int64_t id) {
  for (const auto& org : organizations) {
    if (org.id == id) return &org;
  }
  return nullptr;
}

json org_json(const Organization& org) {
  return {{"id", org.id},
          {"status", "active"},
          {"name", org.name},
          {"assumed_name", ""},
          {"display_name", org.name},
          {"is_active", true},
          {"address", org.address},
          {"address2", ""},
          {"zip", org.zip},
          {"city", org.city},
          {"state", org.state},
          {"country", org.country},
          {"telephone", org.telephone},
          {"container", {{"id", 1}, {"parent_id", 0}, {"name", "certcentral-sim"}, {"is_active", true}}}};
}

// The one user behind the API key: requester of every request, contact of every order.
const json sim_user = {{"id", 7001}, {"first_name", "Sim"}, {"last_name", "Admin"}, {"email", "admin@certcentral-sim.invalid"}};
const json sim_contact = {{"first_name", "Sim"},
                          {"last_name", "Admin"},
                          {"email", "admin@certcentral-sim.invalid"},
                          {"job_title", "Administrator"},
                          {"telephone", "+31 10 000 0000"}};
const json sim_container = {{"id", 1}, {"name", "certcentral-sim"}};

// ---- time, as CertCentral writes it ----

std::string iso_time(std::time_t t) {  // UTC ISO 8601 with offset: 2018-10-16T20:05:28+00:00
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[40];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
  return buffer;
}
std::string now_iso() { return iso_time(std::time(nullptr)); }
std::string day_of(std::time_t t) {  // yyyy-MM-dd (valid_from, valid_till)
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[16];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d", &tm);
  return buffer;
}
std::string today(int offset_days = 0) { return day_of(std::time(nullptr) + static_cast<std::time_t>(offset_days) * 86400); }

std::string now_iso_ms() {  // the audit log's own format
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[40];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buffer, static_cast<int>(ms % 1000));
  return out;
}

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// ---- errors ----

// JSON text of anything the sim writes (answers, audit lines, the state file). A request can
// carry bytes that are not UTF-8 into it (a path, a query value, a CSR's subject), which
// json::dump refuses by throwing, in the audit logger outside every route: they become U+FFFD.
std::string dump_text(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

json errors(const std::string& code, const std::string& message) {
  return {{"errors", json::array({{{"code", code}, {"message", message}}})}};
}

// A refusal thrown from deep inside a handler; the route wrapper answers it as a JSON error.
// The codes the sim makes up where CertCentral documents none (docs/api.md, "Assumptions"):
// missing_param|<field>, invalid_param|<field>, invalid_status_change, not_found|<thing>.
struct Refusal {
  int status;
  std::string code;
  std::string message;
};
[[noreturn]] void refuse(int status, std::string code, std::string message) { throw Refusal{status, std::move(code), std::move(message)}; }
[[noreturn]] void bad_type(const std::string& field, const char* what) {
  refuse(400, "bad_request_format", field + " must be " + what + ".");
}
[[noreturn]] void missing(const std::string& field) { refuse(400, "missing_param|" + field, field + " is required."); }
[[noreturn]] void invalid(const std::string& field, const std::string& why) { refuse(400, "invalid_param|" + field, why); }

// ---- reading request bodies: every field type-checked, nothing stored unchecked ----

const json* member(const json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}
std::optional<std::string> opt_string(const json& object, const char* key, const std::string& path) {
  const json* value = member(object, key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_string()) bad_type(path, "a string");
  return value->get<std::string>();
}
std::optional<bool> opt_bool(const json& object, const char* key, const std::string& path) {
  const json* value = member(object, key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_boolean()) bad_type(path, "true or false");
  return value->get<bool>();
}
std::optional<std::int64_t> opt_int(const json& object, const char* key, const std::string& path) {
  const json* value = member(object, key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_number_integer()) bad_type(path, "a whole number");
  return value->get<std::int64_t>();
}
bool all_digits(const std::string& text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}
// Ids: documented as integers; the documented examples also send them as strings ("2042709").
std::optional<std::int64_t> opt_id(const json& object, const char* key, const std::string& path) {
  const json* value = member(object, key);
  if (value == nullptr) return std::nullopt;
  if (value->is_number_integer()) return value->get<std::int64_t>();
  if (value->is_string() && all_digits(value->get<std::string>()) && value->get<std::string>().size() < 19) {
    return std::stoll(value->get<std::string>());
  }
  bad_type(path, "an id (a whole number)");
}
std::optional<std::vector<std::string>> opt_strings(const json& object, const char* key, const std::string& path) {
  const json* value = member(object, key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_array()) bad_type(path, "an array of strings");
  std::vector<std::string> out;
  for (const auto& item : *value) {
    if (!item.is_string()) bad_type(path, "an array of strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}
const json* opt_object(const json& object, const char* key, const std::string& path) {
  const json* value = member(object, key);
  if (value != nullptr && !value->is_object()) bad_type(path, "a JSON object");
  return value;
}
const json* opt_array(const json& object, const char* key, const std::string& path) {
  const json* value = member(object, key);
  if (value != nullptr && !value->is_array()) bad_type(path, "an array");
  return value;
}

json parse_body(const httplib::Request& req) {
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) refuse(400, "bad_request_format", "The request body is not a JSON object.");
  return body;
}

bool contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}
std::string joined(const std::vector<std::string>& list) {
  std::string out;
  for (const auto& item : list) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// "dd MMM YYYY", the documented custom_expiration_date format.
bool expiration_date_ok(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%d %b %Y", &tm);
  return end != nullptr && *end == '\0' && text.size() == 11;
}

// Query parameters that must be whole numbers (offset, limit, ids in filters).
std::optional<std::int64_t> query_number(const httplib::Request& req, const char* name, std::int64_t min, std::int64_t max) {
  if (!req.has_param(name)) return std::nullopt;
  std::string text = req.get_param_value(name);
  if (!all_digits(text) || text.size() > 12) invalid(name, std::string(name) + " must be a whole number.");
  std::int64_t value = std::stoll(text);
  if (value < min || value > max) invalid(name, std::string(name) + " must be from " + std::to_string(min) + " to " + std::to_string(max) + ".");
  return value;
}

// Per-request facts the audit logger needs (handlers and logger run on the same thread).
thread_local std::string current_order_id;
thread_local long current_request_number = 0;

// ---- stored state: only what the sim wrote itself, checked again when loaded ----

bool is_string_at(const json& o, const char* key) { return o.contains(key) && o[key].is_string(); }
bool is_int_at(const json& o, const char* key) { return o.contains(key) && o[key].is_number_integer(); }

// A line from orders.jsonl is taken only when every field the answers read has its type: a line
// from another version of the sim, or one edited by hand, is skipped instead of failing later.
bool stored_order_ok(const json& order) {
  if (!order.is_object() || !is_int_at(order, "id") || !is_string_at(order, "status") || !is_string_at(order, "date_created") ||
      !is_string_at(order, "status_updated") || !is_string_at(order, "order_valid_till") || !is_string_at(order, "product") || find_product(order["product"]) == nullptr ||
      !is_int_at(order, "org_id") || find_org(order["org_id"].get<std::int64_t>()) == nullptr || !is_string_at(order, "provisioning_method") ||
      !is_string_at(order, "comments") || !order.contains("order_validity") || !order["order_validity"].is_object() ||
      !order.contains("requests") || !order["requests"].is_array() || !order.contains("certificate") || !order["certificate"].is_object() ||
      !order.contains("certificate_ids") || !order["certificate_ids"].is_array()) {
    return false;
  }
  for (const char* flag : {"approved", "reissuing", "is_renewal", "disable_renewal_notifications"}) {
    if (!order.contains(flag) || !order[flag].is_boolean()) return false;
  }
  for (const auto& request : order["requests"]) {
    if (!request.is_object() || !is_int_at(request, "id") || !is_string_at(request, "date") || !is_string_at(request, "type") ||
        !is_string_at(request, "status") || !is_string_at(request, "comments")) {
      return false;
    }
  }
  for (const auto& id : order["certificate_ids"]) {
    if (!id.is_number_integer()) return false;
  }
  const json& c = order["certificate"];
  if (!is_string_at(c, "common_name") || !is_string_at(c, "csr") || !is_string_at(c, "signature_hash") || !c.contains("dns_names") ||
      !c["dns_names"].is_array() || !c.contains("organization_units") || !c["organization_units"].is_array() ||
      !is_int_at(c, "server_platform_id")) {
    return false;
  }
  for (const char* list : {"dns_names", "organization_units"}) {
    for (const auto& item : c[list]) {
      if (!item.is_string()) return false;
    }
  }
  for (const char* key : {"id", "reserved_id", "key_size"}) {
    if (c.contains(key) && !c[key].is_number_integer()) return false;
  }
  for (const char* key : {"profile_option", "oin"}) {
    if (c.contains(key) && !c[key].is_string()) return false;
  }
  return true;
}

bool stored_certificate_ok(const json& cert) {
  if (!cert.is_object() || !is_int_at(cert, "order_id") || !cert.contains("intermediates") || !cert["intermediates"].is_array()) return false;
  for (const char* key : {"end_entity", "root", "serial_number", "thumbprint", "common_name", "date_issued", "valid_from", "valid_till", "status",
                          "signature_hash", "issuer_name"}) {
    if (!is_string_at(cert, key)) return false;
  }
  for (const auto& pem : cert["intermediates"]) {
    if (!pem.is_string()) return false;
  }
  return is_int_at(cert, "key_size") && is_int_at(cert, "validity_days");
}

class Sim {
 public:
  Sim(Options options, sim::Hierarchy pki) : options_(std::move(options)), pki_(std::move(pki)) { load(); }

  void install(httplib::Server& server) {
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) { return before(req, res); });
    server.set_logger([this](const httplib::Request& req, const httplib::Response& res) { audit(req, res); });
    // Anything no route took (unknown path or method, a request httplib could not read): the
    // documented JSON error, never an empty body. Called for every answer >= 400; ours have bodies.
    server.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      if (res.status == 404) {
        if (req.get_header_value("X-DC-DEVKEY") != options_.api_key) {
          reply(res, 401, errors("invalid_api_key", "The API key is missing, invalid or revoked."));
        } else {
          reply(res, 404, errors("not_found|route", "The endpoint does not exist."));
        }
      } else if (res.status == 413) {
        reply(res, 413, errors("bad_request_format", "The request body is too large."));
      } else if (res.status >= 500) {
        reply(res, res.status, errors("internal_error", "The simulator could not answer this request."));
      } else {
        reply(res, res.status, errors("bad_request_format", "The request could not be read."));
      }
      return httplib::Server::HandlerResponse::Handled;
    }));
    // No exception text goes out: a JSON 500 (route() already catches; this is the last net).
    server.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
      reply(res, 500, errors("internal_error", "The simulator could not answer this request."));
    });
    std::string p = prefix;
    server.Get(p + "/organization", route([this](auto& req, auto& res) { list_organizations(req, res); }));
    server.Get(p + R"(/organization/(\d+))", route([this](auto& req, auto& res) { organization_info(req, res); }));
    server.Get(p + "/product", route([this](auto& req, auto& res) { list_products(req, res); }));
    server.Get(p + R"(/product/([a-z0-9_]+))", route([this](auto& req, auto& res) { product_info(req, res); }));
    server.Get(p + "/order/certificate/status-changes", route([this](auto& req, auto& res) { status_changes(req, res); }));
    server.Post(p + R"(/order/certificate/([a-z0-9_]+))", route([this](auto& req, auto& res) { submit(req, res); }));
    server.Get(p + R"(/order/certificate/([0-9A-Fa-f]+))", route([this](auto& req, auto& res) { order_info(req, res); }));
    server.Get(p + "/order/certificate", route([this](auto& req, auto& res) { list_orders(req, res); }));
    server.Put(p + R"(/order/certificate/(\d+)/status)", route([this](auto& req, auto& res) { cancel(req, res); }));
    server.Post(p + R"(/order/certificate/(\d+)/reissue)", route([this](auto& req, auto& res) { reissue(req, res); }));
    server.Put(p + R"(/order/certificate/(\d+)/revoke)", route([this](auto& req, auto& res) { revoke(req, res, true); }));
    server.Put(p + R"(/certificate/(\d+)/revoke)", route([this](auto& req, auto& res) { revoke(req, res, false); }));
    server.Get(p + "/request", route([this](auto& req, auto& res) { list_requests(req, res); }));
    server.Get(p + R"(/request/(\d+))", route([this](auto& req, auto& res) { request_info(req, res); }));
    server.Put(p + R"(/request/(\d+)/status)", route([this](auto& req, auto& res) { request_status(req, res); }));
    server.Get(p + R"(/certificate/(\d+)/chain)", route([this](auto& req, auto& res) { chain(req, res); }));
    server.Get(p + R"(/certificate/(\d+)/download/format/([a-z_0-9]+))",
               route([this](auto& req, auto& res) { download(req, res, false, req.matches[2]); }));
    server.Get(p + R"(/certificate/download/order/(\d+)/format/([a-z_0-9]+))",
               route([this](auto& req, auto& res) { download(req, res, true, req.matches[2]); }));
    server.Get(p + R"(/certificate/download/order/(\d+))", route([this](auto& req, auto& res) { download(req, res, true, "default"); }));
    // The assumed QSCD pickup step (see docs/api.md): its path is configurable.
    std::string pickup_route = std::regex_replace(options_.pickup_path, std::regex(R"(\{order_id\})"), R"((\d+))");
    server.Post(p + pickup_route, route([this](auto& req, auto& res) { pickup(req, res); }));
  }

 private:
  Options options_;
  sim::Hierarchy pki_;
  std::mutex mutex_;  // guards state_ and the windows
  json state_;
  std::atomic<long> requests_{0};
  std::deque<std::int64_t> window_;  // request starts (steady ms) of the accepted key
  std::mutex audit_mutex_;

  // ---- plumbing ----

  httplib::Server::HandlerResponse before(const httplib::Request&, httplib::Response&) {
    current_order_id.clear();
    current_request_number = ++requests_;
    if (options_.slow_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(options_.slow_ms));
    return httplib::Server::HandlerResponse::Unhandled;
  }

  // Key, limits and injected faults, checked inside the route, after httplib has read the body:
  // an answer given before that would leave the body on a keep-alive connection, to be parsed
  // as the next request.
  bool guard(const httplib::Request& req, httplib::Response& res) {
    long n = current_request_number;
    if (req.get_header_value("X-DC-DEVKEY") != options_.api_key) {
      reply(res, 401, errors("invalid_api_key", "The API key is missing, invalid or revoked."));
      return false;
    }
    if (!options_.no_request_limits && !within_limits()) {
      reply(res, 429, errors("request_limit_exceeded", "Service unavailable, please limit request volume"));
      return false;
    }
    if (options_.fail_429_every > 0 && n % options_.fail_429_every == 0) {
      if (options_.retry_after_s > 0) res.set_header("Retry-After", std::to_string(options_.retry_after_s));
      reply(res, 429, errors("request_limit_exceeded", "Service unavailable, please limit request volume"));
      return false;
    }
    if (options_.fail_5xx_every > 0 && n % options_.fail_5xx_every == 0) {
      res.status = 503;
      res.set_content("<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1></body></html>",
                      "text/html");
      return false;
    }
    return true;
  }

  template <class Handler>
  httplib::Server::Handler route(Handler handler) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      if (!guard(req, res)) return;
      try {
        handler(req, res);
      } catch (const Refusal& refusal) {
        reply(res, refusal.status, errors(refusal.code, refusal.message));
      } catch (const std::exception&) {
        reply(res, 500, errors("internal_error", "The simulator could not answer this request."));
      }
    };
  }

  // CertCentral's documented limits: 100 requests / 5 s and 1000 / 3 min, rolling.
  bool within_limits() {
    std::lock_guard lock(mutex_);
    std::int64_t now = steady_ms();
    while (!window_.empty() && now - window_.front() >= 180000) window_.pop_front();
    long last_5s = std::count_if(window_.begin(), window_.end(), [&](std::int64_t t) { return now - t < 5000; });
    if (last_5s >= 100 || window_.size() >= 1000) return false;
    window_.push_back(now);
    return true;
  }

  // --ids-as-strings: the ids some clients see as strings; --extra-fields: a field no client knows.
  void rough_edges(json& value, bool success) const {
    if (!options_.ids_as_strings && !options_.extra_fields) return;
    if (value.is_array()) {
      for (auto& item : value) rough_edges(item, success);
      return;
    }
    if (!value.is_object()) return;
    for (auto& [key, item] : value.items()) {
      static const std::set<std::string> id_keys = {"id", "order_id", "certificate_id", "renewed_order_id", "user_id", "parent_id"};
      if (options_.ids_as_strings && success && id_keys.contains(key) && item.is_number_integer()) {
        item = std::to_string(item.get<std::int64_t>());
      } else {
        rough_edges(item, success);
      }
    }
    if (options_.extra_fields) value["x_sim_unknown_field"] = {{"note", "clients must ignore fields they do not know"}, {"since", 2026}};
  }

  void reply(httplib::Response& res, int status, json body) {
    res.status = status;
    rough_edges(body, status >= 200 && status < 300);
    std::string text = dump_text(body);
    if (options_.truncate_json_every > 0 && current_request_number % options_.truncate_json_every == 0) {
      text = text.substr(0, text.size() / 2);
    }
    res.set_content(text, "application/json");
  }

  void no_content(httplib::Response& res) { res.status = 204; }

  void audit(const httplib::Request& req, const httplib::Response& res) {
    json line = {{"time", now_iso_ms()}, {"method", req.method}, {"path", req.path}, {"status", res.status}};
    if (!current_order_id.empty()) line["order_id"] = current_order_id;
    std::lock_guard lock(audit_mutex_);
    std::ofstream out(options_.state_dir / "audit.jsonl", std::ios::app);
    out << dump_text(line) << '\n';
  }

  // DIR/orders.jsonl: one line per change, the changed order with the certificates it changed and
  // the id counters; the last line for an order is the order. Appending costs the same at the
  // 1000th order as at the first and, unlike replacing a file, does not make ext4 write the data
  // back at once (its auto_da_alloc).
  void load() {
    state_ = {{"next_order", 100001}, {"next_request", 5001}, {"next_certificate", 9001}, {"orders", json::object()},
              {"certificates", json::object()}};
    const fs::path file = options_.state_dir / "orders.jsonl";
    std::ifstream in(file, std::ios::binary);
    std::string line;
    bool ends_in_newline = true;
    while (std::getline(in, line)) {
      ends_in_newline = !in.eof();
      json saved = json::parse(line, nullptr, false);
      // A line cut short by a kill, or one this version cannot read, is skipped.
      if (saved.is_discarded() || !saved.is_object() || !is_string_at(saved, "id") || !saved.contains("order") ||
          !stored_order_ok(saved["order"])) {
        continue;
      }
      state_["orders"][saved["id"].get<std::string>()] = saved["order"];
      if (saved.contains("certificates") && saved["certificates"].is_object()) {
        for (auto& [id, certificate] : saved["certificates"].items()) {
          if (all_digits(id) && stored_certificate_ok(certificate)) state_["certificates"][id] = certificate;
        }
      }
      if (saved.contains("counters") && saved["counters"].is_object()) {
        for (const char* name : {"next_order", "next_request", "next_certificate"}) {
          const json& counters = saved["counters"];
          if (is_int_at(counters, name) && counters[name].get<std::int64_t>() > state_[name].get<std::int64_t>()) state_[name] = counters[name];
        }
      }
    }
    if (!ends_in_newline) std::ofstream(file, std::ios::app) << '\n';  // the next line starts clean
  }

  // The order `id` as it is now, the certificates the change touched (by default its current one)
  // and the counters, as one line. load() takes the certificates of every line, so a reissued
  // order's earlier certificates stay in the lines that first carried them.
  void save(const std::string& id, std::vector<std::int64_t> certificate_ids = {}) {
    const json& order = state_["orders"][id];
    if (certificate_ids.empty() && order["certificate"].contains("id")) certificate_ids.push_back(order["certificate"]["id"].get<std::int64_t>());
    json certificates = json::object();
    for (std::int64_t certificate_id : certificate_ids) {
      const std::string key = std::to_string(certificate_id);
      if (state_["certificates"].contains(key)) certificates[key] = state_["certificates"][key];
    }
    json line = {{"id", id},
                 {"order", order},
                 {"certificates", certificates},
                 {"counters",
                  {{"next_order", state_["next_order"]},
                   {"next_request", state_["next_request"]},
                   {"next_certificate", state_["next_certificate"]}}}};
    std::ofstream out(options_.state_dir / "orders.jsonl", std::ios::app);
    out << dump_text(line) << '\n';
  }

  std::int64_t next_id(const char* counter) {
    std::int64_t id = state_[counter].get<std::int64_t>();
    state_[counter] = id + 1;
    return id;
  }

  json* find_order(const std::string& id) {
    auto& orders = state_["orders"];
    auto it = orders.find(id);
    return it == orders.end() ? nullptr : &*it;
  }
  json& order_or_404(const std::string& id) {
    json* order = find_order(id);
    if (order == nullptr) refuse(404, "not_found|order", "Order not found.");
    current_order_id = id;
    return *order;
  }
  json* find_certificate(const std::string& id) {
    auto& certificates = state_["certificates"];
    auto it = certificates.find(id);
    return it == certificates.end() ? nullptr : &*it;
  }

  // A stored order names a known product and organization (stored_order_ok); anything else is a
  // failure inside the sim, answered as JSON 500 by route().
  static const ProductRule& rule_of(const json& order) {
    const ProductRule* rule = find_product(order["product"].get<std::string>());
    if (rule == nullptr) throw std::runtime_error("a stored order with an unknown product");
    return *rule;
  }
  static const Organization& org_of(const json& order) {
    const Organization* org = find_org(order["org_id"].get<std::int64_t>());
    if (org == nullptr) throw std::runtime_error("a stored order with an unknown organization");
    return *org;
  }

  void set_status(json& order, const std::string& status) {
    order["status"] = status;
    order["status_updated"] = now_iso();
  }

  // The request a new order or reissue is waiting on (revoke requests do not move the order).
  static json* issuing_request(json& order) {
    for (auto it = order["requests"].rbegin(); it != order["requests"].rend(); ++it) {
      std::string type = (*it)["type"];
      if (type == "new_request" || type == "reissue") return &*it;
    }
    return nullptr;
  }

  // ---- checks a CSR passes before it is kept ----

  // Parses and checks a CSR against the product's key rules; returns the key size to report.
  std::int64_t checked_csr(const ProductRule& rule, const std::string& csr, const std::string& field, bool rsassa_pss) const {
    auto req = sim::parse_csr(csr);
    if (!req) refuse(400, "csr_invalid_cannot_parse", "The CSR could not be parsed.");
    if (!sim::csr_self_signed(req.get())) invalid(field, "The CSR's signature does not verify with its own key.");
    sim::KeyInfo key = sim::key_info(X509_REQ_get0_pubkey(req.get()));
    if (!options_.lenient) {
      if (key.type == "RSA") {
        if (!rule.rsa) invalid(field, std::string(rule.name_id) + " does not take RSA keys.");
        bool size_ok = rule.rsa_bits.empty() ? key.bits >= 2048
                                             : std::find(rule.rsa_bits.begin(), rule.rsa_bits.end(), key.bits) != rule.rsa_bits.end();
        if (!size_ok) invalid(field, std::string(rule.name_id) + " does not take RSA " + std::to_string(key.bits) + " keys.");
      } else if (key.type == "EC") {
        if (!rule.ec) invalid(field, std::string(rule.name_id) + " takes RSA keys only; ECC is not supported.");
        if (key.curve != "prime256v1" && key.curve != "secp384r1") invalid(field, "Only ECC P-256 and P-384 keys are supported.");
      } else {
        invalid(field, "The CSR's key type " + key.type + " is not supported.");
      }
      if (rsassa_pss && key.type != "RSA") invalid("certificate.is_rsassa_pss", "is_rsassa_pss is for RSA keys only.");
    }
    return key.bits;
  }

  // ---- the order body: every documented field read with its type; what is kept is normalized ----

  json read_order_body(const ProductRule& rule, const json& body) const {
    const bool strict = !options_.lenient;
    const json* certificate = opt_object(body, "certificate", "certificate");
    if (certificate == nullptr) missing("certificate");
    const json& c = *certificate;
    auto common_name = opt_string(c, "common_name", "certificate.common_name");
    auto dns_names = opt_strings(c, "dns_names", "certificate.dns_names");
    auto csr = opt_string(c, "csr", "certificate.csr");
    auto signature_hash = opt_string(c, "signature_hash", "certificate.signature_hash");
    auto profile_option = opt_string(c, "profile_option", "certificate.profile_option");
    auto rsassa_pss = opt_bool(c, "is_rsassa_pss", "certificate.is_rsassa_pss");
    auto exclude_oin = opt_bool(c, "exclude_oin", "certificate.exclude_oin");
    auto units = opt_strings(c, "organization_units", "certificate.organization_units");
    opt_string(c, "ca_cert_id", "certificate.ca_cert_id");
    opt_bool(c, "use_qvtl_domain", "certificate.use_qvtl_domain");
    opt_object(c, "cert_validity", "certificate.cert_validity");
    std::optional<std::string> oin;
    if (const json* value = member(c, "oin")) {
      if (value->is_number_integer()) oin = std::to_string(value->get<std::int64_t>());
      else if (value->is_string()) oin = value->get<std::string>();
      else bad_type("certificate.oin", "a string or a whole number");
    }
    std::int64_t server_platform = -1;
    if (const json* platform = opt_object(c, "server_platform", "certificate.server_platform")) {
      auto id = opt_int(*platform, "id", "certificate.server_platform.id");
      if (!id) missing("certificate.server_platform.id");
      server_platform = *id;
    }

    const json* organization = opt_object(body, "organization", "organization");
    if (organization == nullptr) missing("organization");
    auto org_id = opt_id(*organization, "id", "organization.id");
    if (const json* contacts = opt_array(*organization, "contacts", "organization.contacts")) {
      for (const auto& contact : *contacts) {
        if (!contact.is_object()) bad_type("organization.contacts[]", "a JSON object");
        opt_id(contact, "user_id", "organization.contacts[].user_id");
        for (const char* key : {"first_name", "last_name", "job_title", "telephone", "email", "contact_type"}) {
          opt_string(contact, key, std::string("organization.contacts[].") + key);
        }
      }
    }
    if (!org_id) missing("organization.id");  // the sim creates no organizations (docs/api.md)
    if (find_org(*org_id) == nullptr) refuse(404, "not_found|organization", "Organization not found.");

    auto csa = opt_bool(body, "csa_agreed_to", "csa_agreed_to");
    auto provisioning = opt_string(body, "provisioning_method", "provisioning_method");
    const json* ship_info = opt_object(body, "ship_info", "ship_info");
    const json* validity = opt_object(body, "order_validity", "order_validity");
    auto validity_years = opt_int(body, "validity_years", "validity_years");
    auto payment = opt_string(body, "payment_method", "payment_method");
    auto skip_approval = opt_bool(body, "skip_approval", "skip_approval");
    auto comments = opt_string(body, "comments", "comments");
    auto renewal_of = opt_id(body, "renewal_of_order_id", "renewal_of_order_id");
    auto no_renewal_notices = opt_bool(body, "disable_renewal_notifications", "disable_renewal_notifications");
    auto dcv_method = opt_string(body, "dcv_method", "dcv_method");
    opt_string(body, "certificate_dcv_scope", "certificate_dcv_scope");
    opt_string(body, "custom_expiration_date", "custom_expiration_date");
    opt_object(body, "container", "container");
    opt_array(body, "custom_fields", "custom_fields");
    const json* credit_card = opt_object(body, "credit_card", "credit_card");
    const json* billing_address = opt_object(body, "billing_address", "billing_address");

    // payment_method is required by the documented order pages (seed 003).
    if (!payment) missing("payment_method");
    if (*payment != "balance" && *payment != "profile" && *payment != "card") invalid("payment_method", "payment_method must be balance, profile or card.");
    if (*payment == "card" && (credit_card == nullptr || billing_address == nullptr)) missing(credit_card == nullptr ? "credit_card" : "billing_address");

    // order_validity: one of years, days, custom_expiration_date (validity_years is the older form).
    json order_validity = json::object();
    if (validity != nullptr) {
      auto years = opt_int(*validity, "years", "order_validity.years");
      auto days = opt_int(*validity, "days", "order_validity.days");
      auto custom = opt_string(*validity, "custom_expiration_date", "order_validity.custom_expiration_date");
      if ((years ? 1 : 0) + (days ? 1 : 0) + (custom ? 1 : 0) != 1) invalid("order_validity", "Give one of years, days or custom_expiration_date.");
      if (years) {
        if (std::find(rule.validity_years.begin(), rule.validity_years.end(), *years) == rule.validity_years.end()) {
          invalid("order_validity.years", std::string(rule.name_id) + " cannot be ordered for " + std::to_string(*years) + " years.");
        }
        order_validity["years"] = *years;
      }
      if (days) {
        if (*days < 1 || *days > 397) invalid("order_validity.days", "days must be from 1 to 397.");
        order_validity["days"] = *days;
      }
      if (custom) {
        if (!expiration_date_ok(*custom)) invalid("order_validity.custom_expiration_date", "The format is dd MMM YYYY, e.g. 09 JUN 2027.");
        order_validity["custom_expiration_date"] = *custom;
      }
    } else if (validity_years) {
      if (*validity_years < 1 || *validity_years > 3) invalid("validity_years", "validity_years must be 1, 2 or 3.");
      order_validity["years"] = *validity_years;
    } else {
      order_validity["years"] = 1;
    }

    if (csa == false && rule.csa_required) invalid("csa_agreed_to", std::string(rule.name_id) + " needs the Certificate Subscriber Agreement (csa_agreed_to: true).");
    std::string method = provisioning.value_or("");
    if (strict) {
      if (rule.provisioning.empty() && provisioning) invalid("provisioning_method", std::string(rule.name_id) + " takes no provisioning_method.");
      if (!rule.provisioning.empty() && !provisioning) missing("provisioning_method");
      if (!rule.provisioning.empty() && !contains(rule.provisioning, method)) {
        invalid("provisioning_method", std::string(rule.name_id) + " takes provisioning_method " + joined(rule.provisioning) + ".");
      }
    }
    if (!signature_hash) missing("certificate.signature_hash");
    if (strict && !contains(rule.hashes, *signature_hash)) {
      invalid("certificate.signature_hash", std::string(rule.name_id) + " supports only " + joined(rule.hashes) + ".");
    }
    if (strict && !rule.profile_options.empty()) {
      if (!profile_option) missing("certificate.profile_option");
      if (!contains(rule.profile_options, *profile_option)) {
        invalid("certificate.profile_option", std::string(rule.name_id) + " supports only profile_option " + joined(rule.profile_options) + ".");
      }
    }
    const bool qscd = method == "qscd";
    if (qscd) {
      if (ship_info == nullptr) missing("ship_info");
      for (const char* key : {"name", "addr1", "addr2", "city", "state", "zip", "country", "method"}) {
        auto value = opt_string(*ship_info, key, std::string("ship_info.") + key);
        if (!value || value->empty()) missing(std::string("ship_info.") + key);
      }
      std::string ship_method = (*ship_info)["method"];
      if (ship_method != "STANDARD" && ship_method != "EXPEDITED") invalid("ship_info.method", "method must be STANDARD or EXPEDITED.");
      if (csr) invalid("certificate.csr", "A CSR is not taken with provisioning_method qscd: DigiCert generates the key on the QSCD it ships.");
    } else if (strict && !rule.csr_in_order && csr) {
      invalid("certificate.csr", std::string(rule.name_id) + " is provisioned on a QSCD only; it takes no CSR.");
    }
    std::int64_t key_size = 0;
    if (!qscd && rule.csr_in_order) {
      if (!csr || csr->empty()) missing("certificate.csr");
      key_size = checked_csr(rule, *csr, "certificate.csr", rsassa_pss.value_or(false));
    } else if (!qscd && csr) {
      key_size = checked_csr(rule, *csr, "certificate.csr", rsassa_pss.value_or(false));
    }
    if (strict && rule.common_name_required && !qscd && (!common_name || common_name->empty())) missing("certificate.common_name");
    if (oin) {
      if (strict && !rule.takes_oin) invalid("certificate.oin", std::string(rule.name_id) + " takes no oin.");
      if (oin->size() != 20 || !all_digits(*oin)) invalid("certificate.oin", "oin must be 20 digits.");
      if (exclude_oin.value_or(false)) invalid("certificate.oin", "Give either oin or exclude_oin: true, not both.");
    }

    json kept = {{"common_name", common_name.value_or("")},
                 {"dns_names", dns_names.value_or(std::vector<std::string>{})},
                 {"csr", csr.value_or("")},
                 {"signature_hash", *signature_hash},
                 {"organization_units", units.value_or(std::vector<std::string>{})},
                 {"server_platform_id", server_platform},
                 {"is_rsassa_pss", rsassa_pss.value_or(false)}};
    if (!rule.seal && kept["dns_names"].empty() && !kept["common_name"].get<std::string>().empty()) kept["dns_names"].push_back(kept["common_name"]);
    if (profile_option) kept["profile_option"] = *profile_option;
    if (oin) kept["oin"] = *oin;
    if (key_size > 0) kept["key_size"] = key_size;
    json order = {{"status", "needs_approval"},
                  {"product", rule.name_id},
                  {"org_id", *org_id},
                  {"certificate", kept},
                  {"provisioning_method", method},
                  {"comments", comments.value_or("")},
                  {"order_validity", order_validity},
                  {"is_renewal", renewal_of.has_value()},
                  {"disable_renewal_notifications", no_renewal_notices.value_or(false)},
                  {"approved", false},
                  {"reissuing", false},
                  {"certificate_ids", json::array()},
                  {"skip_approval", skip_approval.value_or(false)}};
    if (renewal_of) order["renewed_order_id"] = *renewal_of;
    if (dcv_method) order["dcv_method"] = *dcv_method;
    return order;
  }

  // ---- the order walk ----

  // After approval: a QSCD order without a key waits for pickup; others go to DigiCert's
  // validation ("pending", or "reissue_pending" for a reissue).
  void start_processing(json& order) {
    order["approved"] = true;
    if (options_.certificate_id_on_approval && !order["certificate"].contains("reserved_id")) {
      order["certificate"]["reserved_id"] = next_id("next_certificate");
    }
    if (order["certificate"]["csr"].get<std::string>().empty()) {
      set_status(order, "waiting_pickup");
      return;
    }
    set_status(order, order["reissuing"].get<bool>() ? "reissue_pending" : "pending");
    order["pending_since_ms"] = steady_ms();
    order["polls"] = 0;
  }

  void approve(json& order, json& request) {
    request["status"] = "approved";
    request["date_processed"] = now_iso();
    start_processing(order);
    advance(order, false);  // issued at once when nothing holds it back
  }

  // Called on every look at an order: issues or rejects when its time has come. Whether it changed
  // the order (then it is saved).
  bool advance(json& order, bool is_poll) {
    std::string status = order["status"];
    if ((status != "pending" && status != "reissue_pending") || !order["approved"].get<bool>()) return false;
    if (is_poll) order["polls"] = order.value("polls", 0) + 1;
    json& certificate = order["certificate"];
    std::string cn = certificate["common_name"];
    if (cn.empty()) {
      auto req = sim::parse_csr(certificate["csr"]);
      if (req) cn = sim::common_name(X509_REQ_get_subject_name(req.get()));
    }
    for (const auto& rejected : options_.reject_cn) {
      if (cn == rejected) {
        set_status(order, status == "reissue_pending" ? "issued" : "rejected");
        if (json* request = issuing_request(order)) (*request)["status"] = "rejected";
        order["reissuing"] = false;
        return true;
      }
    }
    // Pending for issue_after_polls looks; other reads (downloads, lists) do not count as looks.
    int polls = order.value("polls", 0);
    if (is_poll ? polls <= options_.issue_after_polls : polls < options_.issue_after_polls) return is_poll;
    if (steady_ms() - order.value("pending_since_ms", std::int64_t{0}) < options_.issue_after_ms) return is_poll;
    issue_certificate(order);
    return true;
  }

  // The subject as CertCentral builds it: from the organization record and the order, never the
  // CSR (reference §0.4). Seals carry the organizationIdentifier DigiCert validated.
  static std::vector<std::pair<std::string, std::string>> subject_for(const json& order) {
    const ProductRule& rule = rule_of(order);
    const Organization& org = org_of(order);
    const json& c = order["certificate"];
    std::string country = org.country;
    for (auto& ch : country) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    std::string cn = c["common_name"];
    std::vector<std::pair<std::string, std::string>> subject = {{"C", country}};
    if (rule.seal) {
      subject.emplace_back("O", org.name);
      subject.emplace_back("organizationIdentifier", org.registration);
      if (c.contains("oin")) subject.emplace_back("serialNumber", c["oin"].get<std::string>());
      subject.emplace_back("CN", cn.empty() ? std::string(org.name) : cn);
      return subject;
    }
    if (!rule.takes_oin) {
      subject.emplace_back("ST", org.state);
      subject.emplace_back("L", org.city);
    }
    subject.emplace_back("O", org.name);
    for (const auto& unit : c["organization_units"]) subject.emplace_back("OU", unit.get<std::string>());
    if (c.contains("oin")) subject.emplace_back("serialNumber", c["oin"].get<std::string>());
    subject.emplace_back("CN", cn);
    return subject;
  }

  void issue_certificate(json& order) {
    const ProductRule& rule = rule_of(order);
    json& certificate = order["certificate"];
    auto csr = sim::parse_csr(certificate["csr"]);
    if (!csr) {
      set_status(order, "rejected");
      return;
    }
    sim::KeyPtr csr_key(X509_REQ_get_pubkey(csr.get()));
    sim::KeyPtr other;
    EVP_PKEY* key = csr_key.get();
    if (options_.wrong_key) {
      other = sim::other_key_like(csr_key.get());
      key = other.get();
    }
    sim::IssueSpec spec;
    spec.csr = csr.get();
    spec.public_key = key;
    spec.subject = subject_for(order);
    if (!rule.seal) {
      for (const auto& name : certificate["dns_names"]) spec.dns_names.push_back(name.get<std::string>());
      spec.usage = sim::Usage::server;
    } else {
      spec.usage = rule.provisioning.size() == 1 || order["provisioning_method"] == "qscd" ? sim::Usage::qualified_seal : sim::Usage::seal;
      if (options_.seal_level == "qcp-l") spec.usage = sim::Usage::seal;
      if (options_.seal_level == "none") spec.usage = sim::Usage::unqualified_seal;
    }
    spec.validity_days = validity_days(order);
    // Only a new order's certificate: the one a renewal test starts from. A reissue starts now.
    spec.backdate_days = order.value("reissuing", false) ? 0 : options_.backdate_days;
    spec.rsassa_pss = certificate["is_rsassa_pss"].get<bool>();
    const sim::Authority& issuer = options_.foreign_chain ? pki_.foreign_issuing : pki_.issuing;
    const sim::Authority& root = options_.foreign_chain ? pki_.foreign_root : pki_.root;
    sim::X509Ptr cert = sim::issue(spec, issuer);

    std::int64_t id = certificate.contains("reserved_id") ? certificate["reserved_id"].get<std::int64_t>() : next_id("next_certificate");
    certificate.erase("reserved_id");
    std::string now = now_iso();
    state_["certificates"][std::to_string(id)] = {
        {"order_id", order["id"]},
        {"end_entity", sim::to_pem(cert.get())},
        {"intermediates", json::array({sim::to_pem(issuer.cert.get())})},
        {"root", sim::to_pem(root.cert.get())},
        {"serial_number", sim::serial_hex(cert.get())},
        {"thumbprint", sim::thumbprint_hex(cert.get())},
        {"common_name", sim::common_name(X509_get_subject_name(cert.get()))},
        {"issuer_name", sim::common_name(X509_get_subject_name(issuer.cert.get()))},
        {"date_issued", now},
        {"valid_from", today(-spec.backdate_days)},
        {"valid_till", today(spec.validity_days - spec.backdate_days)},
        {"validity_days", spec.validity_days},
        {"status", "issued"},
        {"signature_hash", certificate["signature_hash"]},
        {"key_size", sim::key_info(key).bits}};
    certificate["id"] = id;
    certificate["serial_number"] = sim::serial_hex(cert.get());  // for harnesses that read orders.jsonl
    order["certificate_ids"].push_back(id);
    set_status(order, "issued");
    order["reissuing"] = false;
    if (json* request = issuing_request(order)) (*request)["status"] = "approved";
  }

  int validity_days(const json& order) const {
    if (options_.validity_days > 0) return options_.validity_days;
    const json& v = order["order_validity"];
    if (v.contains("days")) return v["days"].get<int>();
    if (v.contains("years")) return std::min(397, v["years"].get<int>() * 365);
    return 365;
  }

  // ---- the answers' shapes (docs/api.md, per endpoint) ----

  json product_brief(const ProductRule& rule) const { return {{"name_id", rule.name_id}, {"name", rule.name}, {"type", rule.type}}; }

  json certificate_view(const json& order) const {
    const json& c = order["certificate"];
    const Organization& org = org_of(order);
    json view = {{"common_name", c["common_name"]},
                 {"dns_names", c["dns_names"]},
                 {"date_created", order["date_created"]},
                 {"csr", c["csr"]},
                 {"organization", {{"id", org.id}}},
                 {"organization_units", c["organization_units"]},
                 {"server_platform", {{"id", c["server_platform_id"]}, {"name", "OTHER"}, {"install_url", ""}, {"csr_url", ""}}},
                 {"signature_hash", c["signature_hash"]},
                 {"ca_cert", {{"id", "SIMISSUINGCA1"}, {"name", "certcentral-sim Test Issuing CA"}}},
                 {"cert_validity", order["order_validity"]}};
    if (c.contains("key_size")) view["key_size"] = c["key_size"];
    if (c.contains("profile_option")) view["profile_option"] = c["profile_option"];
    if (c.contains("reserved_id")) view["id"] = c["reserved_id"];
    if (c.contains("id")) {
      view["id"] = c["id"];
      if (const json* held = certificate_of(c["id"].get<std::int64_t>())) {
        view["thumbprint"] = (*held)["thumbprint"];
        view["serial_number"] = (*held)["serial_number"];
        view["date_issued"] = (*held)["date_issued"];
        view["valid_from"] = (*held)["valid_from"];
        view["valid_till"] = (*held)["valid_till"];
        view["days_remaining"] = (*held)["validity_days"];
        view["key_size"] = (*held)["key_size"];
      }
    }
    return view;
  }

  const json* certificate_of(std::int64_t id) const {
    const auto& certificates = state_["certificates"];
    auto it = certificates.find(std::to_string(id));
    return it == certificates.end() ? nullptr : &*it;
  }

  json request_brief(const json& request) const {
    json out = {{"id", request["id"]}, {"date", request["date"]}, {"type", request["type"]}, {"status", request["status"]},
                {"comments", request["comments"]}};
    return out;
  }

  json order_view(const json& order) const {
    const ProductRule& rule = rule_of(order);
    const Organization& org = org_of(order);
    json requests = json::array();
    for (const auto& request : order["requests"]) requests.push_back(request_brief(request));
    json view = {{"id", order["id"]},
                 {"certificate", certificate_view(order)},
                 {"status", order["status"]},
                 {"is_renewal", order["is_renewal"]},
                 {"date_created", order["date_created"]},
                 {"order_valid_till", order["order_valid_till"]},
                 {"organization",
                  {{"id", org.id}, {"name", org.name}, {"display_name", org.name}, {"city", org.city}, {"state", org.state}, {"country", org.country}}},
                 {"disable_renewal_notifications", order["disable_renewal_notifications"]},
                 {"container", sim_container},
                 {"product",
                  {{"name_id", rule.name_id}, {"name", rule.name}, {"type", rule.type}, {"validation_type", rule.validation_type},
                   {"validation_name", "OV"}, {"validation_description", "Normal Organization Validation"}}},
                 {"organization_contact", sim_contact},
                 {"technical_contact", sim_contact},
                 {"requests", requests}};
    if (order.contains("renewed_order_id")) view["renewed_order_id"] = order["renewed_order_id"];
    if (order.contains("dcv_method")) view["dcv_method"] = order["dcv_method"];
    return view;
  }

  // A List orders entry: exactly the documented fields (reference §2.6).
  json list_entry(const json& order) const {
    const ProductRule& rule = rule_of(order);
    const Organization& org = org_of(order);
    const json& c = order["certificate"];
    json certificate = {{"common_name", c["common_name"]}, {"dns_names", c["dns_names"]}, {"signature_hash", c["signature_hash"]}};
    if (c.contains("id")) {
      certificate["id"] = c["id"];
      if (const json* held = certificate_of(c["id"].get<std::int64_t>())) {
        certificate["valid_till"] = (*held)["valid_till"];
        certificate["days_remaining"] = (*held)["validity_days"];
      }
    }
    return {{"id", order["id"]},
            {"certificate", certificate},
            {"status", order["status"]},
            {"is_renewed", false},
            {"date_created", order["date_created"]},
            {"organization", {{"id", org.id}, {"name", org.name}}},
            {"validity_years", order["order_validity"].value("years", 1)},
            {"disable_renewal_notifications", order["disable_renewal_notifications"]},
            {"container", sim_container},
            {"product", product_brief(rule)},
            {"has_duplicates", false},
            {"product_name_id", rule.name_id}};
  }

  json request_view(const json& order, const json& request) const {
    const ProductRule& rule = rule_of(order);
    const Organization& org = org_of(order);
    const json& c = order["certificate"];
    json view = {{"id", request["id"]},
                 {"date", request["date"]},
                 {"type", request["type"]},
                 {"status", request["status"]},
                 {"requester", sim_user},
                 {"order",
                  {{"id", order["id"]},
                   {"certificate", {{"common_name", c["common_name"]}, {"dns_names", c["dns_names"]}, {"signature_hash", c["signature_hash"]}}},
                   {"organization", {{"id", org.id}, {"name", org.name}}},
                   {"product", product_brief(rule)}}},
                 {"comments", request["comments"]}};
    if (request.contains("date_processed")) {
      view["date_processed"] = request["date_processed"];
      view["processor"] = sim_user;
    }
    return view;
  }

  // certificate_chain / chain intermediates: [{subject_common_name, pem}], end entity first.
  json chain_json(const json& held, bool with_root) const {
    json out = json::array({{{"subject_common_name", held["common_name"]}, {"pem", held["end_entity"]}}});
    for (const auto& pem : held["intermediates"]) out.push_back({{"subject_common_name", held["issuer_name"]}, {"pem", pem}});
    if (with_root) {
      auto root = sim::parse_cert(held["root"]);
      out.push_back({{"subject_common_name", root ? sim::common_name(X509_get_subject_name(root.get())) : ""}, {"pem", held["root"]}});
    }
    return out;
  }

  // The answer to an order or reissue POST.
  json submit_answer(const json& order, const json& request) const {
    json answer = {{"id", order["id"]}, {"requests", json::array({{{"id", request["id"]}, {"status", request["status"]}}})}};
    const json& c = order["certificate"];
    bool issued_now = order["status"] == "issued" && request["status"] == "approved" && c.contains("id");
    if (issued_now) {
      answer["certificate_id"] = c["id"];
      const json* held = certificate_of(c["id"].get<std::int64_t>());
      if (options_.chain_in_post && held != nullptr) answer["certificate_chain"] = chain_json(*held, true);
    } else if (options_.certificate_id_on_approval && c.contains("reserved_id")) {
      answer["certificate_id"] = c["reserved_id"];
    }
    return answer;
  }

  // ---- endpoints ----

  void list_organizations(const httplib::Request&, httplib::Response& res) {
    json list = json::array();
    for (const auto& org : organizations) list.push_back(org_json(org));
    reply(res, 200, {{"organizations", list}, {"page", {{"total", list.size()}, {"limit", 0}, {"offset", 0}}}});
  }

  void organization_info(const httplib::Request& req, httplib::Response& res) {
    std::string id = req.matches[1];
    const Organization* org = id.size() < 19 ? find_org(std::stoll(id)) : nullptr;
    if (org == nullptr) refuse(404, "not_found|organization", "Organization not found.");
    json view = org_json(*org);
    view["organization_contact"] = sim_contact;
    view["technical_contact"] = sim_contact;
    reply(res, 200, view);
  }

  json product_view(const ProductRule& rule, bool details) const {
    json hashes = json::array();
    for (const auto& hash : rule.hashes) hashes.push_back({{"id", hash}, {"name", hash == "sha256" ? "SHA-256" : hash == "sha384" ? "SHA-384" : "SHA-512"}});
    json view = {{"group_name", rule.type},
                 {"name_id", rule.name_id},
                 {"name", rule.name},
                 {"type", rule.type},
                 {"allowed_validity_years", rule.validity_years},
                 {"signature_hash_types", {{"allowed_hash_types", hashes}, {"default_hash_type_id", "sha256"}}},
                 {"allowed_ca_certs", json::array({{{"id", "SIMISSUINGCA1"}, {"name", "certcentral-sim Test Issuing CA"}}})},
                 {"default_ca_cert_id", "SIMISSUINGCA1"}};
    if (details) {
      view["validation_type"] = rule.validation_type;
      view["validation_name"] = "OV";
      view["validation_description"] = "Normal Organization Validation";
      view["csr_required"] = rule.csr_in_order && rule.provisioning.empty();
      view["server_platforms"] = json::array({{{"id", -1}, {"name", "OTHER"}, {"install_url", ""}, {"csr_url", ""}}});
      view["duplicates_allowed"] = false;
      view["allowed_container_ids"] = json::array({sim_container["id"]});
    }
    return view;
  }

  void list_products(const httplib::Request&, httplib::Response& res) {
    json list = json::array();
    for (const auto& rule : product_rules) list.push_back(product_view(rule, false));
    reply(res, 200, {{"products", list}});
  }

  void product_info(const httplib::Request& req, httplib::Response& res) {
    const ProductRule* rule = find_product(req.matches[1]);
    if (rule == nullptr) refuse(404, "not_found|product", "Product not found.");
    reply(res, 200, product_view(*rule, true));
  }

  void submit(const httplib::Request& req, httplib::Response& res) {
    const ProductRule* rule = find_product(req.matches[1]);
    if (rule == nullptr) refuse(404, "not_found|product", "Product not found.");
    json order = read_order_body(*rule, parse_body(req));
    std::lock_guard lock(mutex_);
    std::int64_t id = next_id("next_order");
    std::int64_t request_id = next_id("next_request");
    current_order_id = std::to_string(id);
    std::string now = now_iso();
    order["id"] = id;
    order["date_created"] = now;
    order["status_updated"] = now;
    std::time_t till = std::time(nullptr) + (options_.order_valid_days > 0
                                                 ? static_cast<std::time_t>(options_.order_valid_days) * 86400
                                                 : static_cast<std::time_t>(order["order_validity"].value("years", 1)) * 365 * 86400);
    order["order_valid_till"] = day_of(till);
    order["requests"] = json::array({{{"id", request_id}, {"date", now}, {"type", "new_request"}, {"status", "pending"}, {"comments", order["comments"]}}});
    bool skip = order["skip_approval"].get<bool>();
    order.erase("skip_approval");
    if (skip || options_.auto_approve) approve(order, order["requests"][0]);
    state_["orders"][current_order_id] = order;
    json& held = state_["orders"][current_order_id];
    save(current_order_id);
    reply(res, 201, submit_answer(held, held["requests"][0]));
  }

  // The order by id, or by the thumbprint or serial number of its current certificate (§2.4).
  json& order_by_key(const std::string& key) {
    if (all_digits(key) && find_order(key) != nullptr) return order_or_404(key);
    for (auto& [id, held] : state_["certificates"].items()) {
      if (held["thumbprint"] == key || held["serial_number"] == key) {
        std::string order_id = std::to_string(held["order_id"].get<std::int64_t>());
        json& order = order_or_404(order_id);
        if (order["certificate"].value("id", std::int64_t{0}) == std::stoll(id)) return order;
      }
    }
    refuse(404, "not_found|order", "Order not found.");
  }

  void order_info(const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mutex_);
    json& order = order_by_key(req.matches[1]);
    if (advance(order, true)) save(current_order_id);
    reply(res, 200, order_view(order));
  }

  void list_orders(const httplib::Request& req, httplib::Response& res) {
    auto filter = [&](const char* name) { return req.has_param(name) ? req.get_param_value(name) : std::string(); };
    std::string status = filter("filters[status]"), cn = filter("filters[common_name]"), product = filter("filters[product_name_id]"),
                created = filter("filters[date_created]"), search = filter("filters[search]"), serial = filter("filters[serial_number]");
    auto org_id = query_number(req, "filters[organization_id]", 0, 999999999999);
    auto order_id = query_number(req, "filters[id]", 0, 999999999999);
    std::int64_t offset = query_number(req, "offset", 0, 1000000).value_or(0);
    auto limit = query_number(req, "limit", 1, 1000);
    std::lock_guard lock(mutex_);
    std::vector<const json*> matching;
    for (auto& [id, order] : state_["orders"].items()) {
      if (advance(order, false)) save(id);
      if (!status.empty() && order["status"] != status && !(status == "issued" && order["status"] == "expired")) continue;
      if (!cn.empty() && order["certificate"]["common_name"] != cn) continue;
      if (!product.empty() && order["product"] != product) continue;
      if (org_id && order["org_id"].get<std::int64_t>() != *org_id) continue;
      if (order_id && order["id"].get<std::int64_t>() != *order_id) continue;
      if (!serial.empty()) {
        const json* held = order["certificate"].contains("id") ? certificate_of(order["certificate"]["id"].get<std::int64_t>()) : nullptr;
        if (held == nullptr || (*held)["serial_number"] != serial) continue;
      }
      if (!created.empty()) {
        std::string day = order["date_created"].get<std::string>().substr(0, 10);
        auto dots = created.find("...");
        bool inside = dots == std::string::npos ? day == created.substr(0, 10)
                                                : day >= created.substr(0, dots).substr(0, 10) && day <= created.substr(dots + 3).substr(0, 10);
        if (!inside) continue;
      }
      if (!search.empty()) {
        std::string haystack = order["comments"].get<std::string>() + " " + order["certificate"]["common_name"].get<std::string>() + " " + id;
        if (haystack.find(search) == std::string::npos) continue;
      }
      matching.push_back(&order);
    }
    json page = json::array();
    std::size_t end = limit ? static_cast<std::size_t>(offset + *limit) : matching.size();
    for (std::size_t i = static_cast<std::size_t>(offset); i < matching.size() && i < end; ++i) page.push_back(list_entry(*matching[i]));
    reply(res, 200, {{"orders", page}, {"page", {{"total", matching.size()}, {"limit", limit.value_or(0)}, {"offset", offset}}}});
  }

  // GET /order/certificate/status-changes?filters[status_last_updated]=FROM...TO (Keyfactor's use).
  void status_changes(const httplib::Request& req, httplib::Response& res) {
    if (!req.has_param("filters[status_last_updated]")) missing("filters[status_last_updated]");
    std::string range = req.get_param_value("filters[status_last_updated]");
    auto dots = range.find("...");
    if (dots == std::string::npos) invalid("filters[status_last_updated]", "Give the range as FROM...TO (ISO 8601).");
    std::string from = range.substr(0, dots), to = range.substr(dots + 3);
    std::lock_guard lock(mutex_);
    json list = json::array();
    for (auto& [id, order] : state_["orders"].items()) {
      // ISO 8601 times compare as text; a shorter bound (a day) compares on its length.
      std::string when = order["status_updated"].get<std::string>().substr(0, 19);
      if (when.substr(0, std::min(when.size(), from.size())) < from.substr(0, 19)) continue;
      if (!to.empty() && when.substr(0, std::min(when.size(), to.size())) > to.substr(0, 19)) continue;
      json entry = {{"order_id", order["id"]}, {"status", order["status"]}};
      if (order["certificate"].contains("id")) entry["certificate_id"] = order["certificate"]["id"];
      list.push_back(entry);
    }
    reply(res, 200, {{"orders", list}});
  }

  // The request with this id and its order, or a 404.
  std::pair<json*, json*> request_or_404(const std::string& text) {
    std::int64_t request_id = text.size() < 19 ? std::stoll(text) : -1;
    for (auto& [id, order] : state_["orders"].items()) {
      for (auto& request : order["requests"]) {
        if (request["id"].get<std::int64_t>() != request_id) continue;
        current_order_id = id;
        return {&order, &request};
      }
    }
    refuse(404, "not_found|request", "Request not found.");
  }

  void list_requests(const httplib::Request& req, httplib::Response& res) {
    std::string status = req.has_param("filters[status]") ? req.get_param_value("filters[status]") : "";
    std::int64_t offset = query_number(req, "offset", 0, 1000000).value_or(0);
    auto limit = query_number(req, "limit", 1, 1000);
    std::lock_guard lock(mutex_);
    json all = json::array();
    for (auto& [id, order] : state_["orders"].items()) {
      for (const auto& request : order["requests"]) {
        if (status.empty() || request["status"] == status) all.push_back(request_view(order, request));
      }
    }
    json page = json::array();
    std::size_t end = limit ? static_cast<std::size_t>(offset + *limit) : all.size();
    for (std::size_t i = static_cast<std::size_t>(offset); i < all.size() && i < end; ++i) page.push_back(all[i]);
    reply(res, 200, {{"requests", page}, {"page", {{"total", all.size()}, {"limit", limit.value_or(0)}, {"offset", offset}}}});
  }

  void request_info(const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mutex_);
    auto [order, request] = request_or_404(req.matches[1]);
    reply(res, 200, request_view(*order, *request));
  }

  void request_status(const httplib::Request& req, httplib::Response& res) {
    json body = parse_body(req);
    auto status = opt_string(body, "status", "status");
    opt_string(body, "processor_comment", "processor_comment");
    if (!status) missing("status");
    if (*status != "approved" && *status != "rejected" && *status != "submitted" && *status != "pending") {
      invalid("status", "status must be approved, rejected, submitted or pending.");
    }
    std::lock_guard lock(mutex_);
    auto [order, request] = request_or_404(req.matches[1]);
    if ((*request)["status"] != "pending" && (*request)["status"] != "submitted") {
      refuse(400, "invalid_status_change", "The request is " + (*request)["status"].get<std::string>() + ", not pending.");
    }
    std::vector<std::int64_t> changed;
    std::string type = (*request)["type"];
    if (type == "revoke") {
      (*request)["status"] = *status;
      if (*status == "approved") {
        (*request)["date_processed"] = now_iso();
        changed = revoke_now(*order, (*request)["certificate_ids"]);
      }
    } else if (*status == "approved") {
      approve(*order, *request);
    } else if (*status == "rejected") {
      (*request)["status"] = "rejected";
      (*request)["date_processed"] = now_iso();
      set_status(*order, (*order)["reissuing"].get<bool>() ? "issued" : "rejected");
      (*order)["reissuing"] = false;
    } else {
      (*request)["status"] = *status;
    }
    save(current_order_id, changed);
    no_content(res);
  }

  void cancel(const httplib::Request& req, httplib::Response& res) {
    json body = parse_body(req);
    auto status = opt_string(body, "status", "status");
    auto note = opt_string(body, "note", "note");
    if (!status) missing("status");
    if (*status != "canceled") invalid("status", "The simulator changes an order's status to canceled only.");
    if (!note || note->empty()) missing("note");
    std::lock_guard lock(mutex_);
    json& order = order_or_404(req.matches[1]);
    std::string now_status = order["status"];
    json* request = issuing_request(order);
    if (now_status == "reissue_pending") {
      set_status(order, "issued");
      order["reissuing"] = false;
      if (request != nullptr) (*request)["status"] = "rejected";
    } else if (now_status == "pending" || now_status == "waiting_pickup" || (options_.lenient && now_status == "needs_approval")) {
      set_status(order, "canceled");
      if (request != nullptr && (*request)["status"] != "approved") (*request)["status"] = "rejected";
    } else if (now_status == "needs_approval") {
      refuse(400, "invalid_status_change", "An order that needs approval is ended by rejecting its request (PUT /request/{id}/status).");
    } else {
      refuse(400, "invalid_status_change", "The order cannot be canceled in status " + now_status + ".");
    }
    save(current_order_id);
    no_content(res);
  }

  void reissue(const httplib::Request& req, httplib::Response& res) {
    json body = parse_body(req);
    const json* certificate = opt_object(body, "certificate", "certificate");
    if (certificate == nullptr) missing("certificate");
    auto csr = opt_string(*certificate, "csr", "certificate.csr");
    auto common_name = opt_string(*certificate, "common_name", "certificate.common_name");
    auto dns_names = opt_strings(*certificate, "dns_names", "certificate.dns_names");
    auto signature_hash = opt_string(*certificate, "signature_hash", "certificate.signature_hash");
    if (const json* platform = opt_object(*certificate, "server_platform", "certificate.server_platform")) {
      opt_int(*platform, "id", "certificate.server_platform.id");
    }
    opt_string(*certificate, "ca_cert_id", "certificate.ca_cert_id");
    auto skip_approval = opt_bool(body, "skip_approval", "skip_approval");
    auto comments = opt_string(body, "comments", "comments");
    std::lock_guard lock(mutex_);
    json& order = order_or_404(req.matches[1]);
    const ProductRule& rule = rule_of(order);
    if (order["status"] != "issued") refuse(400, "invalid_status_change", "Only an issued order can be reissued.");
    if (!csr || csr->empty()) missing("certificate.csr");
    std::int64_t key_size = checked_csr(rule, *csr, "certificate.csr", order["certificate"]["is_rsassa_pss"].get<bool>());
    if (signature_hash && !options_.lenient && !contains(rule.hashes, *signature_hash)) {
      invalid("certificate.signature_hash", std::string(rule.name_id) + " supports only " + joined(rule.hashes) + ".");
    }
    json& held = order["certificate"];
    held["csr"] = *csr;
    held["key_size"] = key_size;
    if (common_name) held["common_name"] = *common_name;
    if (dns_names) held["dns_names"] = *dns_names;
    if (signature_hash) held["signature_hash"] = *signature_hash;
    std::int64_t request_id = next_id("next_request");
    order["requests"].push_back({{"id", request_id}, {"date", now_iso()}, {"type", "reissue"}, {"status", "pending"}, {"comments", comments.value_or("")}});
    order["reissuing"] = true;
    order["approved"] = false;
    set_status(order, "reissue_pending");
    if (skip_approval.value_or(false) || options_.auto_approve) approve(order, order["requests"].back());
    save(current_order_id);
    reply(res, 201, submit_answer(order, order["requests"].back()));
  }

  // Revokes the certificates now; the order is revoked with its current certificate.
  std::vector<std::int64_t> revoke_now(json& order, const json& certificate_ids) {
    std::vector<std::int64_t> changed;
    for (const auto& id : certificate_ids) {
      json* held = find_certificate(std::to_string(id.get<std::int64_t>()));
      if (held == nullptr || (*held)["status"] == "revoked") continue;
      (*held)["status"] = "revoked";
      changed.push_back(id.get<std::int64_t>());
      if (order["certificate"].value("id", std::int64_t{-1}) == id.get<std::int64_t>()) set_status(order, "revoked");
    }
    return changed;
  }

  // PUT /order/certificate/{id}/revoke (every certificate of the order) or
  // PUT /certificate/{id}/revoke: a revoke request to approve, or at once with skip_approval.
  void revoke(const httplib::Request& req, httplib::Response& res, bool whole_order) {
    json body = parse_body(req);
    auto comments = opt_string(body, "comments", "comments");
    auto skip_approval = opt_bool(body, "skip_approval", "skip_approval");
    auto reason = opt_string(body, "revocation_reason", "revocation_reason");
    static const std::vector<std::string> reasons = {"unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation"};
    if (reason && !contains(reasons, *reason)) invalid("revocation_reason", "revocation_reason must be one of " + joined(reasons) + ".");
    std::lock_guard lock(mutex_);
    json* order = nullptr;
    json targets = json::array();
    if (whole_order) {
      order = &order_or_404(req.matches[1]);
      for (const auto& id : (*order)["certificate_ids"]) {
        const json* held = certificate_of(id.get<std::int64_t>());
        if (held != nullptr && (*held)["status"] == "issued") targets.push_back(id);
      }
    } else {
      json* held = find_certificate(req.matches[1]);
      if (held == nullptr) refuse(404, "not_found|certificate", "Certificate not found.");
      order = &order_or_404(std::to_string((*held)["order_id"].get<std::int64_t>()));
      if ((*held)["status"] == "issued") targets.push_back(std::stoll(std::string(req.matches[1])));
    }
    if (targets.empty()) refuse(400, "invalid_status_change", "There is no issued certificate to revoke.");
    if ((*order)["status"] == "reissue_pending") refuse(400, "invalid_status_change", "A certificate with a pending reissue cannot be revoked.");
    std::int64_t request_id = next_id("next_request");
    json request = {{"id", request_id}, {"date", now_iso()}, {"type", "revoke"}, {"status", "pending"}, {"comments", comments.value_or("")},
                    {"certificate_ids", targets}};
    if (skip_approval.value_or(false) || options_.auto_approve) {
      request["status"] = "approved";
      request["date_processed"] = now_iso();
      (*order)["requests"].push_back(request);
      auto changed = revoke_now(*order, targets);
      save(current_order_id, changed);
      return no_content(res);
    }
    (*order)["requests"].push_back(request);
    save(current_order_id);
    reply(res, 201, {{"id", request_id}, {"date", request["date"]}, {"type", "revoke"}, {"status", "pending"}, {"requester", sim_user},
                     {"comments", request["comments"]}});
  }

  void pickup(const httplib::Request& req, httplib::Response& res) {
    json body = parse_body(req);
    auto csr = opt_string(body, "csr", "csr");
    opt_string(body, "init_code", "init_code");  // neither kept nor logged
    std::lock_guard lock(mutex_);
    json& order = order_or_404(req.matches[1]);
    if (order["status"] != "waiting_pickup") refuse(400, "invalid_status_change", "The order is not waiting for pickup.");
    if (!csr || csr->empty()) missing("csr");
    order["certificate"]["key_size"] = checked_csr(rule_of(order), *csr, "csr", order["certificate"]["is_rsassa_pss"].get<bool>());
    order["certificate"]["csr"] = *csr;
    start_processing(order);
    advance(order, false);
    save(current_order_id);
    no_content(res);
  }

  const json& issued_certificate(const httplib::Request& req, bool by_order) {
    std::string certificate_id = req.matches[1];
    if (by_order) {
      json& order = order_or_404(req.matches[1]);
      if (advance(order, false)) save(current_order_id);
      if (!order["certificate"].contains("id")) refuse(404, "not_found|certificate", "The order has no issued certificate.");
      certificate_id = std::to_string(order["certificate"]["id"].get<std::int64_t>());
    }
    json* held = find_certificate(certificate_id);
    if (held == nullptr) refuse(404, "not_found|certificate", "Certificate not found.");
    current_order_id = std::to_string((*held)["order_id"].get<std::int64_t>());
    return *held;
  }

  void chain(const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mutex_);
    reply(res, 200, {{"intermediates", chain_json(issued_certificate(req, false), false)}});
  }

  void download(const httplib::Request& req, httplib::Response& res, bool by_order, const std::string& format) {
    std::lock_guard lock(mutex_);
    const json& held = issued_certificate(req, by_order);
    const std::string end_entity = held["end_entity"];
    // --repeat-certificate: the end entity twice, as CertCentral sometimes sends for orders with
    // several certificates (clients de-duplicate by serial).
    const std::string leaf = options_.repeat_certificate ? end_entity + end_entity : end_entity;
    std::string intermediates;
    for (const auto& pem : held["intermediates"]) intermediates += pem.get<std::string>();
    const std::string root = held["root"];
    std::string base = held["common_name"];
    for (auto& ch : base) {
      if (std::isalnum(static_cast<unsigned char>(ch)) == 0) ch = '_';
    }
    if (base.empty()) base = "certificate";
    if (format == "pem_all" || format == "pem_noroot" || format == "pem_nointermediate") {
      std::string pem = leaf;
      if (format != "pem_nointermediate") pem += intermediates;
      if (format == "pem_all") pem += root;
      res.set_content(pem, "application/x-pem-file");
    } else if (format == "p7b" || format == "cer") {
      std::vector<sim::X509Ptr> owned;
      owned.push_back(sim::parse_cert(end_entity));
      for (const auto& pem : held["intermediates"]) owned.push_back(sim::parse_cert(pem));
      owned.push_back(sim::parse_cert(root));
      std::vector<X509*> certs;
      for (auto& cert : owned) {
        if (!cert) refuse(500, "internal_error", "A stored certificate cannot be read.");
        certs.push_back(cert.get());
      }
      res.set_content(sim::p7b_pem(certs), "application/x-pkcs7-certificates");
    } else if (format == "default" || format == "default_pem" || format == "default_cer" || format == "apache") {
      const std::string ext = format == "default_cer" ? ".cer" : ".crt";
      std::vector<std::pair<std::string, std::string>> files = {{base + ext, end_entity}, {"DigiCertCA" + ext, intermediates}};
      if (format != "apache") files.emplace_back("TrustedRoot" + ext, root);
      res.set_content(sim::zip_store(files), "application/zip");
    } else {
      invalid("format_type", "Unknown certificate format " + format + ".");
    }
    res.status = 200;
  }
};
}  // namespace

struct Service::Impl {
  Impl(Options options, Hierarchy pki) : sim(std::move(options), std::move(pki)) {}
  Sim sim;
};

Service::Service(Options options, Hierarchy pki) : impl_(std::make_unique<Impl>(std::move(options), std::move(pki))) {}
Service::~Service() = default;
void Service::install(httplib::Server& server) { impl_->sim.install(server); }

}  // namespace sim
