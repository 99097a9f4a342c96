// certcentral-sim on its own, through cpp-httplib's client: the order walk,
// real certificates checked with OpenSSL, and every fault flag.
#include <doctest/doctest.h>
#include <httplib.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "certcentral_sim.hpp"
#include "test_pki.hpp"

using nlohmann::json;
using qscd::test::CertCentralSim;

namespace {

class Api {
 public:
  explicit Api(const CertCentralSim& sim, std::string key = CertCentralSim::api_key) : client_("127.0.0.1", sim.port()), key_(std::move(key)) {
    client_.set_ca_cert_path(sim.ca_file().c_str());
    client_.enable_server_certificate_verification(true);
  }
  httplib::Result get(const std::string& path) { return client_.Get(("/services/v2" + path).c_str(), headers()); }
  httplib::Result post(const std::string& path, const json& body) {
    return client_.Post(("/services/v2" + path).c_str(), headers(), body.dump(), "application/json");
  }
  httplib::Result put(const std::string& path, const json& body) {
    return client_.Put(("/services/v2" + path).c_str(), headers(), body.dump(), "application/json");
  }

 private:
  httplib::Headers headers() const { return {{"X-DC-DEVKEY", key_}}; }
  httplib::SSLClient client_;
  std::string key_;
};

json server_order(const std::string& csr, const std::string& cn = "svc.example.nl") {
  return {{"certificate", {{"common_name", cn}, {"dns_names", {cn}}, {"csr", csr}, {"signature_hash", "sha256"}}},
          {"organization", {{"id", 112233}}}, {"csa_agreed_to", true}, {"order_validity", {{"years", 1}}},
          {"payment_method", "balance"}, {"comments", "job-42"}};
}

json seal_order() {
  return {{"certificate", {{"signature_hash", "sha256"}, {"profile_option", "nonrepudiation"}}},
          {"csa_agreed_to", true}, {"provisioning_method", "qscd"},
          {"ship_info", {{"name", "J. Jansen"}, {"addr1", "Wilhelminakade 1"}, {"addr2", "-"}, {"city", "Rotterdam"},
                         {"state", "ZH"}, {"zip", "3072 AP"}, {"country", "nl"}, {"method", "STANDARD"}}},
          {"organization", {{"id", 112233}}}, {"order_validity", {{"years", 1}}}, {"payment_method", "balance"}};
}

json body(const httplib::Result& result) { return json::parse(result->body); }

std::string status_of(Api& api, const std::string& id) { return body(api.get("/order/certificate/" + id))["status"]; }

}  // namespace

TEST_CASE("an order walks needs_approval -> pending -> issued and the certificate is real") {
  CertCentralSim sim({"--issue-after-polls", "2"});
  Api api(sim);
  auto key = qscd::test::make_key();
  auto created = api.post("/order/certificate/pkio_private_services_server", server_order(qscd::test::make_csr(key.get(), "svc.example.nl")));
  REQUIRE(created);
  CHECK(created->status == 201);
  json answer = body(created);
  std::string id = std::to_string(answer["id"].get<long>());
  std::string request_id = std::to_string(answer["requests"][0]["id"].get<long>());
  CHECK(answer["requests"][0]["status"] == "pending");
  CHECK(status_of(api, id) == "needs_approval");

  auto approved = api.put("/request/" + request_id + "/status", {{"status", "approved"}});
  CHECK(approved->status == 204);
  CHECK(status_of(api, id) == "pending");  // look 1
  CHECK(status_of(api, id) == "pending");  // look 2
  json order = body(api.get("/order/certificate/" + id));
  CHECK(order["status"] == "issued");
  CHECK(order["certificate"]["csr"].get<std::string>().find("BEGIN CERTIFICATE REQUEST") != std::string::npos);

  auto pem = api.get("/certificate/download/order/" + id + "/format/pem_noroot");
  CHECK(pem->get_header_value("Content-Type") == "application/x-pem-file");
  auto chain = qscd::test::read_pem_certs(pem->body);
  REQUIRE(chain.size() == 2);
  CHECK(qscd::test::same_key(chain[0].get(), key.get()));
  CHECK(qscd::test::chain_verifies(chain, sim.ca_pem()));
  CHECK(X509_check_purpose(chain[0].get(), X509_PURPOSE_SSL_SERVER, 0) == 1);
  CHECK((X509_get_key_usage(chain[0].get()) & (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT)) == (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
  CHECK(X509_check_host(chain[0].get(), "svc.example.nl", 0, 0, nullptr) == 1);

  std::string cert_id = std::to_string(order["certificate"]["id"].get<long>());
  CHECK(qscd::test::read_pem_certs(api.get("/certificate/" + cert_id + "/download/format/pem_all")->body).size() == 3);
  CHECK(qscd::test::read_p7b_certs(api.get("/certificate/" + cert_id + "/download/format/p7b")->body).size() == 3);
  CHECK(api.get("/certificate/" + cert_id + "/download/format/zip")->status == 400);
}

TEST_CASE("a QSCD seal order waits for pickup, then issues a nonRepudiation-only qualified certificate") {
  CertCentralSim sim({"--auto-approve"});
  Api api(sim);
  auto created = api.post("/order/certificate/pkio_qualified_organisation_services", seal_order());
  REQUIRE(created->status == 201);
  std::string id = std::to_string(body(created)["id"].get<long>());
  CHECK(status_of(api, id) == "waiting_pickup");
  auto key = qscd::test::make_key("RSA", 3072);
  // CertCentral ignores the CSR's subject: the certificate's comes from the organization record.
  std::string csr = qscd::test::make_csr(key.get(), {{"C", "BE"}, {"O", "Not From The CSR"}, {"CN", "Voorbeeld Zegel"}});
  CHECK(api.post("/order/certificate/" + id + "/pickup", {{"csr", csr}, {"init_code", "1234"}})->status == 204);
  CHECK(status_of(api, id) == "issued");
  auto chain = qscd::test::read_pem_certs(api.get("/certificate/download/order/" + id + "/format/pem_noroot")->body);
  REQUIRE(!chain.empty());
  CHECK(qscd::test::same_key(chain[0].get(), key.get()));
  CHECK(X509_get_key_usage(chain[0].get()) == KU_NON_REPUDIATION);
  CHECK(X509_get_extended_key_usage(chain[0].get()) == UINT32_MAX);  // no EKU
  CHECK(qscd::test::has_extension(chain[0].get(), "1.3.6.1.5.5.7.1.3"));
  CHECK(qscd::test::subject_text(chain[0].get()) ==
        "CN=Voorbeeld Organisatie B.V.,organizationIdentifier=NTRNL-12345678,O=Voorbeeld Organisatie B.V.,C=NL");
  // The init code is never written down.
  CHECK(sim.all_files_text().find("init_code") == std::string::npos);
  // A second pickup is refused.
  CHECK(api.post("/order/certificate/" + id + "/pickup", {{"csr", csr}})->status == 400);
}

TEST_CASE("reissue, cancel, request rejection, list filters and organizations") {
  CertCentralSim sim({"--auto-approve"});
  Api api(sim);
  auto key = qscd::test::make_key();
  std::string first = std::to_string(body(api.post("/order/certificate/ssl_basic", server_order(qscd::test::make_csr(key.get(), "a.example.nl"), "a.example.nl")))["id"].get<long>());
  CHECK(status_of(api, first) == "issued");
  auto key2 = qscd::test::make_key();
  auto reissued = api.post("/order/certificate/" + first + "/reissue", {{"certificate", {{"csr", qscd::test::make_csr(key2.get(), "a.example.nl")}}}});
  CHECK(reissued->status == 201);
  CHECK(status_of(api, first) == "issued");
  auto chain = qscd::test::read_pem_certs(api.get("/certificate/download/order/" + first + "/format/pem_noroot")->body);
  CHECK(qscd::test::same_key(chain[0].get(), key2.get()));

  auto seal = api.post("/order/certificate/pkio_qualified_organisation_services", seal_order());
  std::string second = std::to_string(body(seal)["id"].get<long>());
  CHECK(api.put("/order/certificate/" + second + "/status", {{"status", "canceled"}})->status == 400);  // note required
  CHECK(api.put("/order/certificate/" + second + "/status", {{"status", "canceled"}, {"note", "test"}})->status == 204);
  CHECK(status_of(api, second) == "canceled");
  CHECK(api.put("/order/certificate/" + first + "/status", {{"status", "canceled"}, {"note", "test"}})->status == 400);

  json listed = body(api.get("/order/certificate?filters%5Bstatus%5D=issued"));
  CHECK(listed["page"]["total"] == 1);
  CHECK(body(api.get("/order/certificate?filters%5Bsearch%5D=job-42"))["page"]["total"] == 1);
  CHECK(body(api.get("/order/certificate?filters%5Bproduct_name_id%5D=pkio_qualified_organisation_services"))["orders"][0]["status"] == "canceled");
  CHECK(body(api.get("/order/certificate?limit=1&offset=1"))["orders"].size() == 1);
  CHECK(body(api.get("/organization"))["organizations"].size() == 2);
  CHECK(api.get("/order/certificate/999")->status == 404);
  CHECK(api.post("/order/certificate/no_such_product", server_order("x"))->status == 404);
}

TEST_CASE("a rejected request and a rejected common name end the order") {
  CertCentralSim sim({"--reject-cn", "bad.example.nl"});
  Api api(sim);
  auto key = qscd::test::make_key();
  json created = body(api.post("/order/certificate/ssl_basic", server_order(qscd::test::make_csr(key.get(), "ok.example.nl"), "ok.example.nl")));
  CHECK(api.put("/request/" + std::to_string(created["requests"][0]["id"].get<long>()) + "/status", {{"status", "rejected"}})->status == 204);
  CHECK(status_of(api, std::to_string(created["id"].get<long>())) == "rejected");
  json order = server_order(qscd::test::make_csr(key.get(), "bad.example.nl"), "bad.example.nl");
  order["skip_approval"] = true;
  CHECK(status_of(api, std::to_string(body(api.post("/order/certificate/ssl_basic", order))["id"].get<long>())) == "rejected");
}

TEST_CASE("faults: 429, HTML 503, truncated JSON, wrong key, foreign chain, slow answers") {
  auto key = qscd::test::make_key();
  SUBCASE("429 every 2nd request carries the documented body") {
    CertCentralSim sim({"--fail-429-every", "2"});
    Api api(sim);
    CHECK(api.get("/organization")->status == 200);
    auto limited = api.get("/organization");
    CHECK(limited->status == 429);
    CHECK(body(limited)["errors"][0]["code"] == "request_limit_exceeded");
  }
  SUBCASE("the documented limit: the 101st request within 5 s is refused, unless --no-request-limits") {
    bool lifted = false;
    SUBCASE("enforced") {}
    SUBCASE("lifted") { lifted = true; }
    CertCentralSim sim(lifted ? std::vector<std::string>{"--no-request-limits"} : std::vector<std::string>{});
    Api api(sim);
    int ok = 0;
    for (int i = 0; i < 100; ++i) ok += api.get("/organization")->status == 200 ? 1 : 0;
    CHECK(ok == 100);
    auto over = api.get("/organization");
    CHECK(over->status == (lifted ? 200 : 429));
  }
  SUBCASE("5xx every 2nd request is an HTML page") {
    CertCentralSim sim({"--fail-5xx-every", "2"});
    Api api(sim);
    api.get("/organization");
    auto failed = api.get("/organization");
    CHECK(failed->status == 503);
    CHECK(failed->get_header_value("Content-Type") == "text/html");
  }
  SUBCASE("truncated JSON does not parse") {
    CertCentralSim sim({"--truncate-json-every", "1"});
    Api api(sim);
    CHECK(json::parse(api.get("/organization")->body, nullptr, false).is_discarded());
  }
  SUBCASE("--wrong-key issues for another key") {
    CertCentralSim sim({"--wrong-key", "--auto-approve"});
    Api api(sim);
    std::string id = std::to_string(body(api.post("/order/certificate/ssl_basic", server_order(qscd::test::make_csr(key.get(), "w.example.nl"), "w.example.nl")))["id"].get<long>());
    auto chain = qscd::test::read_pem_certs(api.get("/certificate/download/order/" + id + "/format/pem_noroot")->body);
    REQUIRE(!chain.empty());
    CHECK_FALSE(qscd::test::same_key(chain[0].get(), key.get()));
  }
  SUBCASE("--foreign-chain leads to another root") {
    CertCentralSim sim({"--foreign-chain", "--auto-approve"});
    Api api(sim);
    std::string id = std::to_string(body(api.post("/order/certificate/ssl_basic", server_order(qscd::test::make_csr(key.get(), "f.example.nl"), "f.example.nl")))["id"].get<long>());
    auto all = qscd::test::read_pem_certs(api.get("/certificate/download/order/" + id + "/format/pem_all")->body);
    REQUIRE(all.size() == 3);
    std::string root = sim.ca_pem();
    std::vector<qscd::test::Cert> chain;
    chain.push_back(std::move(all[0]));
    chain.push_back(std::move(all[1]));
    CHECK_FALSE(qscd::test::chain_verifies(chain, root));
  }
  SUBCASE("--slow-ms and --issue-after-ms delay") {
    CertCentralSim sim({"--slow-ms", "300", "--issue-after-ms", "600", "--auto-approve"});
    Api api(sim);
    auto start = std::chrono::steady_clock::now();
    std::string id = std::to_string(body(api.post("/order/certificate/ssl_basic", server_order(qscd::test::make_csr(key.get(), "s.example.nl"), "s.example.nl")))["id"].get<long>());
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(300));
    CHECK(status_of(api, id) == "pending");
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    CHECK(status_of(api, id) == "issued");
  }
}

TEST_CASE("a wrong key gets 401 and no key is ever written; SIGTERM stops it") {
  auto sim = std::make_unique<CertCentralSim>();
  Api wrong(*sim, "not-the-key-abc123");
  auto refused = wrong.get("/organization");
  CHECK(refused->status == 401);
  CHECK(body(refused)["errors"][0]["code"] == "invalid_api_key");
  Api api(*sim);
  auto key = qscd::test::make_key();
  CHECK(api.post("/order/certificate/ssl_basic", server_order(qscd::test::make_csr(key.get(), "r.example.nl"), "r.example.nl"))->status == 201);
  auto audit = sim->audit();
  REQUIRE(audit.size() == 2);
  CHECK(audit[0]["status"] == 401);
  CHECK(audit[1]["order_id"] == "100001");
  CHECK(audit[1]["time"].get<std::string>().size() == 24);  // 2026-11-22T04:07:11.499Z
  std::string written = sim->all_files_text();
  CHECK(written.find(CertCentralSim::api_key) == std::string::npos);
  CHECK(written.find("not-the-key-abc123") == std::string::npos);
  int status = sim->stop();
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("orders and their certificates survive a restart; a request writes only the order it changed") {
  CertCentralSim sim({"--auto-approve"});
  auto saved_lines = [&] {
    std::ifstream in(sim.dir() / "orders.jsonl");
    std::vector<json> lines;
    std::string line;
    while (std::getline(in, line)) lines.push_back(json::parse(line));
    return lines;
  };
  auto key = qscd::test::make_key();
  std::string download;
  std::string first_chain;
  std::string reissue_download;
  std::string reissue_chain;
  {
    Api api(sim);
    REQUIRE(api.post("/order/certificate/ssl_basic", server_order(qscd::test::make_csr(key.get(), "a.example.nl"), "a.example.nl"))->status == 201);
    json first = body(api.get("/order/certificate/100001"));  // auto-approved and issued at the POST
    REQUIRE(first["status"] == "issued");
    download = "/certificate/" + std::to_string(first["certificate"]["id"].get<std::int64_t>()) + "/download/format/pem_noroot";
    first_chain = api.get(download)->body;
    REQUIRE(first_chain.find("BEGIN CERTIFICATE") != std::string::npos);
    REQUIRE(api.post("/order/certificate/ssl_basic", server_order(qscd::test::make_csr(key.get(), "b.example.nl"), "b.example.nl"))->status == 201);
    CHECK(status_of(api, "100002") == "issued");
    const auto lines = saved_lines();
    REQUIRE(lines.size() == 2);  // each order placed and issued at once: one order per line
    CHECK(lines[0]["id"] == "100001");
    CHECK(lines[0]["order"]["status"] == "issued");
    CHECK(lines[0]["certificates"].size() == 1);
    CHECK(lines[1]["id"] == "100002");
    CHECK(status_of(api, "100001") == "issued");  // a look that changes nothing writes nothing
    CHECK(saved_lines().size() == 2);
    // A reissue: the new certificate goes with the order's line, the first one stays downloadable.
    auto key2 = qscd::test::make_key();
    REQUIRE(api.post("/order/certificate/100001/reissue", {{"certificate", {{"csr", qscd::test::make_csr(key2.get(), "a.example.nl")}}}})->status == 201);
    json reissued = body(api.get("/order/certificate/100001"));
    REQUIRE(reissued["status"] == "issued");
    reissue_download = "/certificate/" + std::to_string(reissued["certificate"]["id"].get<std::int64_t>()) + "/download/format/pem_noroot";
    REQUIRE(reissue_download != download);
    reissue_chain = api.get(reissue_download)->body;
    CHECK(saved_lines().back()["certificates"].size() == 1);
  }
  // A line cut short (the sim killed while writing) is skipped, not taken for an order.
  {
    std::ofstream torn(sim.dir() / "orders.jsonl", std::ios::app);
    torn << "{\"id\": \"100003\", \"order\": {\"st";
  }

  sim.restart();
  Api api(sim);
  json first = body(api.get("/order/certificate/100001"));
  CHECK(first["status"] == "issued");
  CHECK(first["certificate"]["common_name"] == "a.example.nl");
  CHECK(api.get(download)->body == first_chain);
  CHECK(api.get(reissue_download)->body == reissue_chain);
  CHECK(status_of(api, "100002") == "issued");
  CHECK(api.get("/order/certificate/100003")->status == 404);
  auto third = api.post("/order/certificate/ssl_basic", server_order(qscd::test::make_csr(key.get(), "c.example.nl"), "c.example.nl"));
  REQUIRE(third->status == 201);
  CHECK(body(third)["id"] == 100003);  // the counters carry on
  CHECK(body(third)["requests"][0]["id"] == 5004);  // 5003 was the reissue's
  sim.restart();  // the order placed after the cut line is kept too
  Api again(sim);
  CHECK(status_of(again, "100003") == "issued");
  CHECK(sim.orders().size() == 3);
}
