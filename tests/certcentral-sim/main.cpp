// certcentral-sim: a local HTTPS stand-in for the CertCentral Services API v2
// (the endpoints qscd-agent uses, with their documented JSON shapes), signing
// real certificates from a test CA, with faults on demand. See README.md.
#include <httplib.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
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
#include <regex>
#include <sstream>
#include <thread>

#include "pki.hpp"

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct Options {
  fs::path state_dir;
  int port = 0;
  std::string api_key;
  int fail_429_every = 0;
  int fail_5xx_every = 0;
  int slow_ms = 0;
  int truncate_json_every = 0;
  std::vector<std::string> reject_cn;
  bool wrong_key = false;
  bool foreign_chain = false;
  int issue_after_polls = 0;
  int issue_after_ms = 0;
  int validity_days = 0;  // 0: from the order (years/days), else this
  bool auto_approve = false;
  bool no_request_limits = false;  // benchmarks: a fast loop outruns 100 requests / 5 s
  int lifetime_s = 3600;
  int retry_after_s = 0;  // >0: 429 answers carry Retry-After (not documented by CertCentral)
  std::string pickup_path = "/order/certificate/{order_id}/pickup";
};

constexpr const char* prefix = "/services/v2";

const std::map<std::string, std::pair<std::string, std::string>> products = {
    // name_id -> {name, type}
    {"pkio_private_services_server", {"PKIo Private Services Server", "ssl_certificate"}},
    {"pkio_qualified_organisation_services", {"PKIo Qualified eSeal", "eseal_certificate"}},
    {"eu_eseal", {"EU Qualified eSeal", "eseal_certificate"}},
    {"ssl_basic", {"Basic OV", "ssl_certificate"}},
};

const json organizations = json::array({
    {{"id", 112233}, {"status", "active"}, {"name", "Voorbeeld Organisatie B.V."}, {"display_name", "Voorbeeld Organisatie B.V."},
     {"is_active", true}, {"address", "Wilhelminakade 1"}, {"city", "Rotterdam"}, {"state", "Zuid-Holland"}, {"zip", "3072 AP"},
     {"country", "nl"}, {"telephone", "+31 10 000 0000"}},
    {{"id", 445566}, {"status", "active"}, {"name", "Exemple SA"}, {"display_name", "Exemple SA"}, {"is_active", true},
     {"address", "Rue de la Loi 16"}, {"city", "Bruxelles"}, {"state", "Bruxelles-Capitale"}, {"zip", "1000"},
     {"country", "be"}, {"telephone", "+32 2 000 00 00"}},
});

std::string now_iso_ms() {
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

std::string today(int offset_days = 0) {
  std::time_t t = std::time(nullptr) + static_cast<std::time_t>(offset_days) * 86400;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[16];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d", &tm);
  return buffer;
}

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

json errors(const std::string& code, const std::string& message) {
  return {{"errors", json::array({{{"code", code}, {"message", message}}})}};
}

// Per-request facts the audit logger needs (handlers and logger run on the same thread).
thread_local std::string current_order_id;
thread_local long current_request_number = 0;

class Sim {
 public:
  Sim(Options options, sim::Hierarchy pki) : options_(std::move(options)), pki_(std::move(pki)) { load(); }

  void install(httplib::SSLServer& server) {
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) { return before(req, res); });
    server.set_logger([this](const httplib::Request& req, const httplib::Response& res) { audit(req, res); });
    std::string p = prefix;
    server.Get(p + "/organization", [this](const httplib::Request&, httplib::Response& res) {
      reply(res, 200, {{"organizations", organizations}, {"page", {{"total", organizations.size()}, {"limit", 1000}, {"offset", 0}}}});
    });
    server.Post(p + R"(/order/certificate/([a-z0-9_]+))", [this](const httplib::Request& req, httplib::Response& res) { submit(req, res); });
    server.Get(p + R"(/order/certificate/(\d+))", [this](const httplib::Request& req, httplib::Response& res) { order_info(req, res); });
    server.Get(p + "/order/certificate", [this](const httplib::Request& req, httplib::Response& res) { list_orders(req, res); });
    server.Put(p + R"(/order/certificate/(\d+)/status)", [this](const httplib::Request& req, httplib::Response& res) { cancel(req, res); });
    server.Post(p + R"(/order/certificate/(\d+)/reissue)", [this](const httplib::Request& req, httplib::Response& res) { reissue(req, res); });
    server.Put(p + R"(/request/(\d+)/status)", [this](const httplib::Request& req, httplib::Response& res) { request_status(req, res); });
    server.Get(p + R"(/certificate/(\d+)/download/format/([a-z_0-9]+))",
               [this](const httplib::Request& req, httplib::Response& res) { download(req, res, false); });
    server.Get(p + R"(/certificate/download/order/(\d+)/format/([a-z_0-9]+))",
               [this](const httplib::Request& req, httplib::Response& res) { download(req, res, true); });
    // The assumed QSCD pickup step (see docs/api.md): its path is configurable.
    std::string pickup_route = std::regex_replace(options_.pickup_path, std::regex(R"(\{order_id\})"), R"((\d+))");
    server.Post(p + pickup_route, [this](const httplib::Request& req, httplib::Response& res) { pickup(req, res); });
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

  httplib::Server::HandlerResponse before(const httplib::Request& req, httplib::Response& res) {
    current_order_id.clear();
    long n = ++requests_;
    current_request_number = n;
    if (options_.slow_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(options_.slow_ms));
    if (req.get_header_value("X-DC-DEVKEY") != options_.api_key) {
      reply(res, 401, errors("invalid_api_key", "The API key is missing, invalid or revoked."));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!options_.no_request_limits && !within_limits()) {
      reply(res, 429, errors("request_limit_exceeded", "Service unavailable, please limit request volume"));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (options_.fail_429_every > 0 && n % options_.fail_429_every == 0) {
      if (options_.retry_after_s > 0) res.set_header("Retry-After", std::to_string(options_.retry_after_s));
      reply(res, 429, errors("request_limit_exceeded", "Service unavailable, please limit request volume"));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (options_.fail_5xx_every > 0 && n % options_.fail_5xx_every == 0) {
      res.status = 503;
      res.set_content("<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1></body></html>",
                      "text/html");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
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

  void reply(httplib::Response& res, int status, const json& body) {
    res.status = status;
    std::string text = body.dump();
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
    out << line.dump() << '\n';
  }

  static std::optional<json> body_of(const httplib::Request& req, httplib::Response& res, Sim& self) {
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      self.reply(res, 400, errors("bad_request_format", "The request body is not a JSON object."));
      return std::nullopt;
    }
    return body;
  }

  // DIR/orders.jsonl: one line per change, the changed order with its certificates and the id
  // counters; the last line for an order is the order. Appending costs the same at the 1000th
  // order as at the first and, unlike replacing a file, does not make ext4 write the data back at
  // once (its auto_da_alloc: 170 us per replaced file here, 8 us per appended line). The whole
  // state in one replaced file took 1 ms per POST at 40 orders and 3.7 ms at 200, a cost the CA
  // does not have and that bench/provision's short agent runs paid most.
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
      if (saved.is_discarded() || !saved.contains("id")) continue;  // a line cut short by a kill
      state_["orders"][saved["id"].get<std::string>()] = saved["order"];
      for (auto& [id, certificate] : saved["certificates"].items()) state_["certificates"][id] = certificate;
      for (auto& [name, value] : saved["counters"].items()) state_[name] = value;
    }
    if (!ends_in_newline) std::ofstream(file, std::ios::app) << '\n';  // the next line starts clean
  }

  // The order `id` as it is now, its current certificate and the counters, as one line. A
  // certificate never changes once issued, and load() takes the certificates of every line, so a
  // reissued order's earlier ones stay in the lines that first carried them.
  void save(const std::string& id) {
    const json& order = state_["orders"][id];
    json certificates = json::object();
    if (order["certificate"].contains("id")) {
      const std::string certificate_id = std::to_string(order["certificate"]["id"].get<std::int64_t>());
      certificates[certificate_id] = state_["certificates"][certificate_id];
    }
    json line = {{"id", id},
                 {"order", order},
                 {"certificates", certificates},
                 {"counters",
                  {{"next_order", state_["next_order"]},
                   {"next_request", state_["next_request"]},
                   {"next_certificate", state_["next_certificate"]}}}};
    std::ofstream out(options_.state_dir / "orders.jsonl", std::ios::app);
    out << line.dump() << '\n';
  }

  std::string next_id(const char* counter) {
    std::int64_t id = state_[counter].get<std::int64_t>();
    state_[counter] = id + 1;
    return std::to_string(id);
  }

  json* find_order(const std::string& id) {
    auto& orders = state_["orders"];
    auto it = orders.find(id);
    return it == orders.end() ? nullptr : &*it;
  }

  static const json* find_org(std::int64_t id) {
    for (const auto& org : organizations) {
      if (org["id"].get<std::int64_t>() == id) return &org;
    }
    return nullptr;
  }

  static std::string csr_common_name(const std::string& pem) {
    auto req = sim::parse_csr(pem);
    if (!req) return {};
    X509_NAME* name = X509_REQ_get_subject_name(req.get());
    int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (index < 0) return {};
    unsigned char* utf8 = nullptr;
    int length = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index)));
    if (length < 0) return {};
    std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(length));
    OPENSSL_free(utf8);
    return out;
  }

  // ---- the order walk ----

  // After approval: a QSCD order without a key waits for pickup; others go to
  // DigiCert's validation ("pending", or "reissue_pending" for a reissue).
  void start_processing(json& order) {
    order["approved"] = true;
    if (order["certificate"].value("csr", "").empty()) {
      order["status"] = "waiting_pickup";
      return;
    }
    order["status"] = order.value("reissuing", false) ? "reissue_pending" : "pending";
    order["pending_since_ms"] = steady_ms();
    order["polls"] = 0;
  }

  // Called on every look at an order: issues or rejects when its time has come. Whether it changed
  // the order (then it is saved).
  bool advance(json& order, bool is_poll) {
    std::string status = order["status"];
    if ((status != "pending" && status != "reissue_pending") || !order.value("approved", false)) return false;
    if (is_poll) order["polls"] = order.value("polls", 0) + 1;
    std::string cn = order["certificate"].value("common_name", "");
    if (cn.empty()) cn = csr_common_name(order["certificate"]["csr"]);
    for (const auto& rejected : options_.reject_cn) {
      if (cn == rejected) {
        order["status"] = status == "reissue_pending" ? "issued" : "rejected";
        order["requests"].back()["status"] = "rejected";
        order["reissuing"] = false;
        if (status == "pending") order["certificate"].erase("id");
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

  void issue_certificate(json& order) {
    const std::string product = order["product"]["name_id"];
    json& certificate = order["certificate"];
    auto csr = sim::parse_csr(certificate["csr"]);
    if (!csr) {
      order["status"] = "rejected";
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
    const json* org = find_org(order["organization"]["id"].get<std::int64_t>());
    if (org != nullptr) {
      std::string country = (*org)["country"];
      for (auto& c : country) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      spec.country = country;
      spec.organization = (*org)["name"];
    }
    spec.common_name = certificate.value("common_name", "");
    spec.serial_number = certificate.value("oin", "");
    if (certificate.contains("dns_names")) spec.dns_names = certificate["dns_names"].get<std::vector<std::string>>();
    if (spec.dns_names.empty() && !spec.common_name.empty()) spec.dns_names.push_back(spec.common_name);
    if (product == "pkio_qualified_organisation_services") spec.usage = sim::Usage::qualified_seal;
    else if (product == "eu_eseal") spec.usage = order.value("provisioning_method", "") == "qscd" ? sim::Usage::qualified_seal : sim::Usage::seal;
    else spec.usage = sim::Usage::server;
    spec.validity_days = validity_days(order);
    spec.rsassa_pss = certificate.value("is_rsassa_pss", false);
    const sim::Authority& issuer = options_.foreign_chain ? pki_.foreign_issuing : pki_.issuing;
    const sim::Authority& root = options_.foreign_chain ? pki_.foreign_root : pki_.root;
    sim::X509Ptr cert = sim::issue(spec, issuer);

    std::string id = next_id("next_certificate");
    state_["certificates"][id] = {{"order_id", order["id"]},
                                  {"end_entity", sim::to_pem(cert.get())},
                                  {"intermediates", json::array({sim::to_pem(issuer.cert.get())})},
                                  {"root", sim::to_pem(root.cert.get())}};
    ASN1_INTEGER* serial = X509_get_serialNumber(cert.get());
    BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr);
    char* hex = BN_bn2hex(bn);
    certificate["serial_number"] = hex;
    OPENSSL_free(hex);
    BN_free(bn);
    certificate["id"] = std::stoll(id);
    if (certificate.value("common_name", "").empty()) certificate["common_name"] = csr_common_name(certificate["csr"]);
    certificate["date_issued"] = today();
    certificate["valid_from"] = today();
    certificate["valid_till"] = today(spec.validity_days);
    certificate["days_remaining"] = spec.validity_days;
    order["status"] = "issued";
    order["reissuing"] = false;
    order["requests"].back()["status"] = "approved";
  }

  int validity_days(const json& order) const {
    if (options_.validity_days > 0) return options_.validity_days;
    const json& v = order.value("order_validity", json::object());
    if (v.contains("days")) return v["days"].get<int>();
    if (v.contains("years")) return std::min(397, v["years"].get<int>() * 365);
    return 365;
  }

  json order_view(const json& order) const {
    json view = order;
    for (const char* internal : {"approved", "pending_since_ms", "polls", "reissuing", "provisioning_method"}) view.erase(internal);
    return view;
  }

  // ---- endpoints ----

  void submit(const httplib::Request& req, httplib::Response& res) {
    std::string product = req.matches[1];
    auto known = products.find(product);
    if (known == products.end()) return reply(res, 404, errors("not_found|product", "Product not found."));
    auto body = body_of(req, res, *this);
    if (!body) return;
    std::lock_guard lock(mutex_);
    json certificate = body->value("certificate", json::object());
    json organization = body->value("organization", json::object());
    if (!organization.contains("id")) return reply(res, 400, errors("missing_param|organization.id", "Organization id is required (the simulator creates no organizations)."));
    std::int64_t org_id = organization["id"].is_string() ? std::stoll(organization["id"].get<std::string>()) : organization["id"].get<std::int64_t>();
    if (find_org(org_id) == nullptr) return reply(res, 404, errors("not_found|organization", "Organization not found."));
    std::string provisioning = body->value("provisioning_method", "");
    std::string csr = certificate.value("csr", "");
    if (provisioning == "qscd") {
      if (!body->contains("ship_info")) return reply(res, 400, errors("missing_param|ship_info", "Shipping details are required for QSCD provisioning."));
      if (!csr.empty()) return reply(res, 400, errors("invalid_param|csr", "A CSR is not accepted with QSCD provisioning."));
    } else {
      if (csr.empty()) return reply(res, 400, errors("missing_param|csr", "CSR is required."));
      if (!sim::parse_csr(csr)) return reply(res, 400, errors("csr_invalid_cannot_parse", "The CSR cannot be parsed."));
    }
    if ((product.rfind("pkio_", 0) == 0 || product.rfind("eu_", 0) == 0) && certificate.value("signature_hash", "sha256") != "sha256") {
      return reply(res, 400, errors("invalid_signature_hash", "Only sha256 is supported for this product."));
    }

    std::string id = next_id("next_order");
    std::string request_id = next_id("next_request");
    current_order_id = id;
    json order = {{"id", std::stoll(id)},
                  {"status", "needs_approval"},
                  {"date_created", today() + " 00:00:00"},
                  {"certificate", certificate},
                  {"organization", {{"id", org_id}, {"name", (*find_org(org_id))["name"]}}},
                  {"product", {{"name_id", product}, {"name", known->second.first}, {"type", known->second.second}}},
                  {"product_name_id", product},
                  {"requests", json::array({{{"id", std::stoll(request_id)}, {"date", today()}, {"type", "new_request"}, {"status", "pending"}}})},
                  {"provisioning_method", provisioning},
                  {"is_renewal", body->contains("renewal_of_order_id")},
                  {"approved", false}};
    if (body->contains("renewal_of_order_id")) order["renewed_order_id"] = (*body)["renewal_of_order_id"];
    if (body->contains("comments")) order["comments"] = (*body)["comments"];
    if (body->contains("order_validity")) order["order_validity"] = (*body)["order_validity"];
    if (body->value("skip_approval", false) || options_.auto_approve) {
      order["requests"][0]["status"] = "approved";
      start_processing(order);
    }
    state_["orders"][id] = order;
    save(id);
    reply(res, 201, {{"id", std::stoll(id)}, {"requests", json::array({{{"id", std::stoll(request_id)}, {"status", order["requests"][0]["status"]}}})}});
  }

  void order_info(const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mutex_);
    std::string id = req.matches[1];
    json* order = find_order(id);
    if (order == nullptr) return reply(res, 404, errors("not_found|order", "Order not found."));
    current_order_id = id;
    if (advance(*order, true)) save(id);
    reply(res, 200, order_view(*order));
  }

  void list_orders(const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mutex_);
    auto filter = [&](const char* name) { return req.has_param(name) ? req.get_param_value(name) : std::string(); };
    std::string status = filter("filters[status]"), cn = filter("filters[common_name]"),
                product = filter("filters[product_name_id]"), created = filter("filters[date_created]"),
                search = filter("filters[search]");
    int offset = req.has_param("offset") ? std::stoi(req.get_param_value("offset")) : 0;
    int limit = req.has_param("limit") ? std::stoi(req.get_param_value("limit")) : 1000;
    json matching = json::array();
    for (auto& [id, order] : state_["orders"].items()) {
      if (advance(order, false)) save(id);
      if (!status.empty() && order["status"] != status) continue;
      if (!cn.empty() && order["certificate"].value("common_name", "") != cn) continue;
      if (!product.empty() && order["product_name_id"] != product) continue;
      if (!created.empty()) {
        std::string day = order["date_created"].get<std::string>().substr(0, 10);
        auto dots = created.find("...");
        bool inside = dots == std::string::npos ? day == created.substr(0, 10)
                                                : day >= created.substr(0, dots).substr(0, 10) && day <= created.substr(dots + 3).substr(0, 10);
        if (!inside) continue;
      }
      if (!search.empty()) {
        std::string haystack = order.value("comments", "") + " " + order["certificate"].value("common_name", "") + " " + id;
        if (haystack.find(search) == std::string::npos) continue;
      }
      json entry = order_view(order);
      entry["certificate"].erase("csr");
      matching.push_back(entry);
    }
    json page = json::array();
    for (int i = offset; i < static_cast<int>(matching.size()) && i < offset + limit; ++i) page.push_back(matching[static_cast<std::size_t>(i)]);
    reply(res, 200, {{"orders", page}, {"page", {{"total", matching.size()}, {"limit", limit}, {"offset", offset}}}});
  }

  void request_status(const httplib::Request& req, httplib::Response& res) {
    auto body = body_of(req, res, *this);
    if (!body) return;
    std::lock_guard lock(mutex_);
    std::int64_t request_id = std::stoll(req.matches[1]);
    for (auto& [id, order] : state_["orders"].items()) {
      for (auto& request : order["requests"]) {
        if (request["id"].get<std::int64_t>() != request_id) continue;
        current_order_id = id;
        if (request["status"] != "pending" && request["status"] != "submitted") {
          return reply(res, 400, errors("invalid_request_status", "The request is not pending."));
        }
        std::string status = body->value("status", "");
        if (status == "approved") {
          request["status"] = "approved";
          start_processing(order);
        } else if (status == "rejected") {
          request["status"] = "rejected";
          order["status"] = order.value("reissuing", false) ? "issued" : "rejected";
          order["reissuing"] = false;
        } else if (status == "submitted" || status == "pending") {
          request["status"] = status;
        } else {
          return reply(res, 400, errors("invalid_status", "Unknown request status."));
        }
        save(id);
        return no_content(res);
      }
    }
    reply(res, 404, errors("not_found|request", "Request not found."));
  }

  void cancel(const httplib::Request& req, httplib::Response& res) {
    auto body = body_of(req, res, *this);
    if (!body) return;
    std::lock_guard lock(mutex_);
    std::string id = req.matches[1];
    json* order = find_order(id);
    if (order == nullptr) return reply(res, 404, errors("not_found|order", "Order not found."));
    current_order_id = id;
    if (body->value("status", "") != "canceled") return reply(res, 400, errors("invalid_status", "Only canceled is supported."));
    if (body->value("note", "").empty()) return reply(res, 400, errors("missing_param|note", "A note is required to cancel."));
    std::string status = (*order)["status"];
    if (status == "reissue_pending") {
      (*order)["status"] = "issued";
      (*order)["reissuing"] = false;
      (*order)["requests"].back()["status"] = "rejected";
    } else if (status == "needs_approval" || status == "pending" || status == "waiting_pickup") {
      (*order)["status"] = "canceled";
    } else {
      return reply(res, 400, errors("invalid_status_change", "The order cannot be canceled in status " + status + "."));
    }
    save(id);
    no_content(res);
  }

  void reissue(const httplib::Request& req, httplib::Response& res) {
    auto body = body_of(req, res, *this);
    if (!body) return;
    std::lock_guard lock(mutex_);
    std::string id = req.matches[1];
    json* order = find_order(id);
    if (order == nullptr) return reply(res, 404, errors("not_found|order", "Order not found."));
    current_order_id = id;
    if ((*order)["status"] != "issued") return reply(res, 400, errors("invalid_order_status", "Only issued orders can be reissued."));
    json certificate = body->value("certificate", json::object());
    std::string csr = certificate.value("csr", "");
    if (csr.empty()) return reply(res, 400, errors("missing_param|csr", "CSR is required."));
    if (!sim::parse_csr(csr)) return reply(res, 400, errors("csr_invalid_cannot_parse", "The CSR cannot be parsed."));
    json& held = (*order)["certificate"];
    held["csr"] = csr;
    for (const char* key : {"common_name", "dns_names", "signature_hash"}) {
      if (certificate.contains(key)) held[key] = certificate[key];
    }
    std::string request_id = next_id("next_request");
    (*order)["requests"].push_back({{"id", std::stoll(request_id)}, {"date", today()}, {"type", "reissue"}, {"status", "pending"}});
    (*order)["reissuing"] = true;
    (*order)["approved"] = false;
    (*order)["status"] = "reissue_pending";
    if (body->value("skip_approval", false) || options_.auto_approve) {
      (*order)["requests"].back()["status"] = "approved";
      start_processing(*order);
    }
    save(id);
    reply(res, 201, {{"id", std::stoll(id)}, {"requests", json::array({{{"id", std::stoll(request_id)}, {"status", (*order)["requests"].back()["status"]}}})}});
  }

  void pickup(const httplib::Request& req, httplib::Response& res) {
    auto body = body_of(req, res, *this);
    if (!body) return;
    std::lock_guard lock(mutex_);
    std::string id = req.matches[1];
    json* order = find_order(id);
    if (order == nullptr) return reply(res, 404, errors("not_found|order", "Order not found."));
    current_order_id = id;
    if ((*order)["status"] != "waiting_pickup") return reply(res, 400, errors("invalid_order_status", "The order is not waiting for pickup."));
    std::string csr = body->value("csr", "");
    if (csr.empty()) return reply(res, 400, errors("missing_param|csr", "CSR is required."));
    if (!sim::parse_csr(csr)) return reply(res, 400, errors("csr_invalid_cannot_parse", "The CSR cannot be parsed."));
    (*order)["certificate"]["csr"] = csr;  // the init code, if any, is neither kept nor logged
    start_processing(*order);
    save(id);
    no_content(res);
  }

  void download(const httplib::Request& req, httplib::Response& res, bool by_order) {
    std::lock_guard lock(mutex_);
    std::string id = req.matches[1];
    std::string format = req.matches[2];
    std::string certificate_id = id;
    if (by_order) {
      json* order = find_order(id);
      if (order == nullptr) return reply(res, 404, errors("not_found|order", "Order not found."));
      current_order_id = id;
      if (advance(*order, false)) save(id);
      if (!(*order)["certificate"].contains("id")) return reply(res, 404, errors("not_found|certificate", "The order has no issued certificate."));
      certificate_id = std::to_string((*order)["certificate"]["id"].get<std::int64_t>());
    }
    auto& certificates = state_["certificates"];
    if (!certificates.contains(certificate_id)) return reply(res, 404, errors("not_found|certificate", "Certificate not found."));
    const json& held = certificates[certificate_id];
    current_order_id = std::to_string(held["order_id"].get<std::int64_t>());
    std::string pem = held["end_entity"];
    for (const auto& intermediate : held["intermediates"]) pem += intermediate.get<std::string>();
    if (format == "pem_noroot") {
      res.set_content(pem, "application/x-pem-file");
    } else if (format == "pem_all") {
      res.set_content(pem + held["root"].get<std::string>(), "application/x-pem-file");
    } else if (format == "p7b") {
      std::vector<sim::X509Ptr> owned;
      std::vector<X509*> certs;
      owned.push_back(sim::parse_cert(held["end_entity"]));
      for (const auto& intermediate : held["intermediates"]) owned.push_back(sim::parse_cert(intermediate));
      owned.push_back(sim::parse_cert(held["root"]));
      for (auto& cert : owned) certs.push_back(cert.get());
      res.set_content(sim::p7b_pem(certs), "application/x-pkcs7-certificates");
    } else {
      return reply(res, 400, errors("invalid_format", "Unknown or unsupported format " + format + "."));
    }
    res.status = 200;
  }
};

void write_atomically(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
  }
  fs::rename(tmp, path);
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{"certcentral-sim: a local HTTPS CertCentral Services API v2 for tests", "certcentral-sim"};
  app.add_option("--state-dir", options.state_dir, "folder for the test CA, port, audit log and orders")->required();
  app.add_option("--port", options.port, "TCP port on 127.0.0.1; 0 picks a free one (written to STATE_DIR/port)");
  app.add_option("--api-key", options.api_key, "the accepted X-DC-DEVKEY (test keys only)")->required();
  app.add_option("--fail-429-every", options.fail_429_every, "answer every Nth request with 429 request_limit_exceeded");
  app.add_option("--fail-5xx-every", options.fail_5xx_every, "answer every Nth request with a 503 HTML page");
  app.add_option("--slow-ms", options.slow_ms, "delay every answer by this many milliseconds");
  app.add_option("--truncate-json-every", options.truncate_json_every, "cut every Nth JSON answer in half");
  app.add_option("--reject-cn", options.reject_cn, "reject orders for this common name (repeatable)");
  app.add_flag("--wrong-key", options.wrong_key, "issue certificates for a different key than the CSR's");
  app.add_flag("--foreign-chain", options.foreign_chain, "issue from a CA under a root nobody trusts");
  app.add_option("--issue-after-polls", options.issue_after_polls, "stay pending for N looks at the order");
  app.add_option("--issue-after-ms", options.issue_after_ms, "stay pending for at least this long");
  app.add_option("--validity-days", options.validity_days, "certificate validity in days (short for renewal tests)");
  app.add_flag("--auto-approve", options.auto_approve, "approve every request at once");
  app.add_flag("--no-request-limits", options.no_request_limits,
               "do not answer 429 past CertCentral's 100 requests / 5 s and 1000 / 3 min (benchmarks)");
  app.add_option("--lifetime", options.lifetime_s, "stop by itself after this many seconds (default 3600)");
  app.add_option("--retry-after", options.retry_after_s, "send Retry-After: N with injected 429 answers");
  app.add_option("--pickup-path", options.pickup_path, "path of the assumed QSCD pickup step");
  CLI11_PARSE(app, argc, argv);

  // SIGTERM/SIGINT are taken by one thread with sigwait; no handler runs inside the server.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  try {
    fs::create_directories(options.state_dir);
    sim::Hierarchy pki = sim::load_or_create(options.state_dir);
    httplib::SSLServer server(pki.tls.cert.get(), pki.tls.key.get());
    if (!server.is_valid()) {
      std::cerr << "certcentral-sim: TLS setup failed\n";
      return 1;
    }
    Sim simulator(options, std::move(pki));
    simulator.install(server);
    server.set_read_timeout(10, 0);
    server.set_write_timeout(10, 0);
    // httplib writes the headers and the body apart; without TCP_NODELAY the body waits for the
    // client's delayed ACK (40 ms on Linux) on every answer, which no real API adds.
    server.set_tcp_nodelay(true);
    int port = options.port;
    if (port == 0) {
      port = server.bind_to_any_port("127.0.0.1");
    } else if (!server.bind_to_port("127.0.0.1", port)) {
      port = -1;
    }
    if (port <= 0) {
      std::cerr << "certcentral-sim: cannot listen on 127.0.0.1:" << options.port << '\n';
      return 1;
    }
    write_atomically(options.state_dir / "pid", std::to_string(getpid()) + "\n");
    write_atomically(options.state_dir / "url", "https://127.0.0.1:" + std::to_string(port) + prefix + "\n");
    write_atomically(options.state_dir / "port", std::to_string(port) + "\n");  // last: tells waiters we are up

    std::thread stopper([&server, &stop_signals, lifetime = options.lifetime_s] {
      timespec timeout{lifetime, 0};
      sigtimedwait(&stop_signals, nullptr, &timeout);
      server.stop();
    });
    server.listen_after_bind();
    pthread_kill(stopper.native_handle(), SIGTERM);  // listen ended on its own: release the stopper
    stopper.join();
  } catch (const std::exception& e) {
    std::cerr << e.what() << '\n';
    return 1;
  }
  return 0;
}
