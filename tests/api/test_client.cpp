// The client against certcentral-sim over real HTTPS: every endpoint, every fault.
#include <doctest/doctest.h>

#include "api_fixture.hpp"
#include "qscd/api/error.hpp"

using namespace qscd;
using api::OutcomeKind;
using test::CertCentralSim;
using test::FakeClock;

namespace {

long count_requests(const CertCentralSim& sim, const std::string& method, const std::string& path_part) {
  long n = 0;
  for (const auto& line : sim.audit()) {
    if (line["method"] == method && line["path"].get<std::string>().find(path_part) != std::string::npos) ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("configuration: TLS only, plain http only to loopback, readable CA file, sane key") {
  api::ClientOptions options;
  options.base_url = "http://certcentral.example.eu/services/v2";
  CHECK_THROWS_WITH_AS(api::Client(options, test::key_from("k")),
                       "--api-url: plain http:// is refused except to loopback (127.0.0.0/8, ::1, localhost); use https://", api::ConfigError);
  for (const char* fine : {"http://127.0.0.1:8080/services/v2", "http://127.3.4.5/x", "http://[::1]:9/x", "http://localhost/x",
                           "https://certcentral.digicert.eu/services/v2"}) {
    options.base_url = fine;
    CHECK_NOTHROW(api::Client(options, test::key_from("k")));
  }
  options.base_url = "ftp://127.0.0.1/x";
  CHECK_THROWS_WITH_AS(api::Client(options, test::key_from("k")), "--api-url: must be an https:// URL", api::ConfigError);
  options.base_url = "https://certcentral.digicert.eu/services/v2";
  options.ca_file = "/nonexistent/ca.pem";
  CHECK_THROWS_WITH_AS(api::Client(options, test::key_from("k")), "--ca-file: cannot read /nonexistent/ca.pem", api::ConfigError);
  CHECK_THROWS_WITH_AS(test::key_from("two words"), "API key: must be printable ASCII without spaces or line breaks", api::ConfigError);
  CHECK_THROWS_WITH_AS(test::key_from("key\r\nX-Evil: 1"), "API key: must be printable ASCII without spaces or line breaks", api::ConfigError);
}

TEST_CASE("TLS is verified: the system store does not trust the simulator") {
  CertCentralSim sim;
  auto options = test::options_for(sim, std::make_shared<FakeClock>());
  options.ca_file.clear();
  api::Client client(options, test::key_from(CertCentralSim::api_key));
  auto orgs = client.list_organizations();
  REQUIRE(orgs.kind() == OutcomeKind::unreachable);
  CHECK(orgs.describe().find("CertCentral unreachable: GET") == 0);
}

TEST_CASE("order, approve, poll, download in every format, list, reissue, cancel") {
  CertCentralSim sim({"--issue-after-polls", "1"});
  auto client = test::client_for(sim);
  auto orgs = client.list_organizations();
  REQUIRE(orgs.ok());
  CHECK(orgs.value().at(0).id == "112233");
  CHECK(orgs.value().at(0).country == "nl");

  auto key = test::make_key();
  auto submitted = client.submit_order(test::server_request(test::make_csr(key.get(), "svc.example.nl"), "svc.example.nl"));
  REQUIRE(submitted.ok());
  const std::string order_id = submitted.value().order_id;
  REQUIRE(submitted.value().requests.size() == 1);
  CHECK(submitted.value().requests[0].status == api::RequestStatus::pending);

  auto waiting = client.poll_order(order_id);
  REQUIRE(waiting.kind() == OutcomeKind::pending);
  CHECK(waiting.pending().status == api::OrderStatus::needs_approval);
  CHECK(waiting.pending().order_id == order_id);
  CHECK(waiting.pending().next_look == std::chrono::seconds(60));

  REQUIRE(client.update_request_status(submitted.value().requests[0].id, api::RequestStatus::approved, "ok by test").ok());
  CHECK(client.poll_order(order_id).pending().status == api::OrderStatus::pending);
  auto issued = client.poll_order(order_id);
  REQUIRE(issued.ok());
  CHECK(issued.value().status == api::OrderStatus::issued);
  CHECK(issued.value().product_name_id == "pkio_private_services_server");
  CHECK(issued.value().csr.find("BEGIN CERTIFICATE REQUEST") != std::string::npos);
  REQUIRE(issued.value().certificate_id);

  auto by_order = client.download_order_certificate(order_id, api::CertificateFormat::pem_noroot);
  REQUIRE(by_order.ok());
  auto chain = test::read_pem_certs(by_order.value());
  REQUIRE(chain.size() == 2);
  CHECK(test::same_key(chain[0].get(), key.get()));
  CHECK(test::chain_verifies(chain, sim.ca_pem()));
  CHECK(test::read_pem_certs(client.download_certificate(*issued.value().certificate_id, api::CertificateFormat::pem_all).value()).size() == 3);
  CHECK(test::read_p7b_certs(client.download_certificate(*issued.value().certificate_id, api::CertificateFormat::p7b).value()).size() == 3);

  api::OrderFilter filter;
  filter.search = "job test-1";
  filter.status = api::OrderStatus::issued;
  auto listed = client.list_orders(filter);
  REQUIRE(listed.ok());
  CHECK(listed.value().total == 1);
  CHECK(listed.value().orders.at(0).id == order_id);
  filter.status = api::OrderStatus::pending;
  CHECK(client.list_orders(filter).value().total == 0);
  api::OrderFilter by_cn;
  by_cn.common_name = "svc.example.nl";
  by_cn.product_name_id = "pkio_private_services_server";
  by_cn.limit = 10;
  CHECK(client.list_orders(by_cn).value().orders.size() == 1);

  auto new_key = test::make_key("RSA", 3072);
  api::ReissueRequest reissue;
  reissue.csr = test::make_csr(new_key.get(), "svc.example.nl");
  reissue.skip_approval = true;
  auto reissued = client.reissue(order_id, reissue);
  REQUIRE(reissued.ok());
  CHECK(reissued.value().order_id == order_id);
  CHECK(client.poll_order(order_id).pending().status == api::OrderStatus::reissue_pending);
  REQUIRE(client.poll_order(order_id).ok());
  auto renewed = test::read_pem_certs(client.download_order_certificate(order_id, api::CertificateFormat::pem_noroot).value());
  CHECK(test::same_key(renewed.at(0).get(), new_key.get()));

  auto cancel_issued = client.cancel_order(order_id, "test");
  REQUIRE(cancel_issued.kind() == OutcomeKind::refused);
  CHECK(cancel_issued.refused().http_status == 400);
  CHECK(cancel_issued.refused().errors.at(0).code == "invalid_status_change");
}

TEST_CASE("a QSCD order: submit without CSR, pickup with a CSR, issued; cancel another") {
  CertCentralSim sim({"--auto-approve"});
  auto client = test::client_for(sim);
  auto submitted = client.submit_order(test::seal_request());
  REQUIRE(submitted.ok());
  auto waiting = client.poll_order(submitted.value().order_id);
  REQUIRE(waiting.kind() == OutcomeKind::pending);
  CHECK(waiting.pending().status == api::OrderStatus::waiting_pickup);
  auto key = test::make_key("RSA", 3072);
  const std::string init_code = "INIT-0042";
  auto picked = client.pickup(submitted.value().order_id, test::make_csr(key.get(), "Voorbeeld Zegel"),
                              {reinterpret_cast<const unsigned char*>(init_code.data()), init_code.size()});
  REQUIRE(picked.ok());
  REQUIRE(client.poll_order(submitted.value().order_id).ok());
  auto cert = test::read_pem_certs(client.download_order_certificate(submitted.value().order_id, api::CertificateFormat::pem_noroot).value());
  CHECK(X509_get_key_usage(cert.at(0).get()) == KU_NON_REPUDIATION);
  CHECK(sim.all_files_text().find(init_code) == std::string::npos);

  auto other = client.submit_order(test::seal_request());
  REQUIRE(client.cancel_order(other.value().order_id, "not needed").ok());
  auto canceled = client.poll_order(other.value().order_id);
  REQUIRE(canceled.kind() == OutcomeKind::rejected);
  CHECK(canceled.rejected().code == "canceled");
  CHECK_THROWS_WITH_AS(client.cancel_order(other.value().order_id, ""), "note: is required to cancel an order", api::ValidationError);
}

// What the real API sends besides the documented minimum: ids as strings, unknown fields, the end
// entity twice in a download, the chain in the POST answer. The client reads all of it.
TEST_CASE("string ids, unknown fields, a repeated certificate and the chain in the POST answer are read") {
  CertCentralSim sim({"--auto-approve", "--ids-as-strings", "--extra-fields", "--repeat-certificate", "--chain-in-post"});
  auto client = test::client_for(sim);
  auto orgs = client.list_organizations();
  REQUIRE(orgs.ok());
  CHECK(orgs.value().at(0).id == "112233");
  auto key = test::make_key();
  auto submitted = client.submit_order(test::server_request(test::make_csr(key.get(), "svc.example.nl"), "svc.example.nl"));
  REQUIRE(submitted.ok());
  REQUIRE(submitted.value().certificate_id);
  CHECK(submitted.value().raw["certificate_chain"].size() == 3);
  auto issued = client.poll_order(submitted.value().order_id);
  REQUIRE(issued.ok());
  CHECK(issued.value().certificate_id == submitted.value().certificate_id);
  CHECK(issued.value().requests.at(0).id == submitted.value().requests.at(0).id);
  api::OrderFilter filter;
  filter.search = "job test-1";
  auto listed = client.list_orders(filter);
  REQUIRE(listed.ok());
  CHECK(listed.value().total == 1);
  CHECK(listed.value().orders.at(0).id == submitted.value().order_id);
  auto pem = client.download_certificate(*submitted.value().certificate_id, api::CertificateFormat::pem_noroot);
  REQUIRE(pem.ok());
  auto certs = test::read_pem_certs(pem.value());
  REQUIRE(certs.size() == 3);
  CHECK(test::same_key(certs[0].get(), key.get()));
}

TEST_CASE("rejections and refusals are told apart") {
  CertCentralSim sim({"--reject-cn", "bad.example.nl", "--auto-approve"});
  auto client = test::client_for(sim);
  auto key = test::make_key();
  auto order = client.submit_order(test::server_request(test::make_csr(key.get(), "bad.example.nl"), "bad.example.nl"));
  auto rejected = client.poll_order(order.value().order_id);
  REQUIRE(rejected.kind() == OutcomeKind::rejected);
  CHECK(rejected.describe() == "CertCentral rejected it (rejected): order " + order.value().order_id + " is rejected");

  auto missing = client.order_info("424242");
  REQUIRE(missing.kind() == OutcomeKind::refused);
  CHECK(missing.refused().http_status == 404);
  CHECK(missing.refused().errors.at(0).code == "not_found");
  CHECK(missing.refused().errors.at(0).detail == "order");
  CHECK(missing.describe() == "CertCentral refused the request (HTTP 404): not_found|order (Order not found.)");
  CHECK_THROWS_WITH_AS(missing.value_or_throw(), "CertCentral refused the request (HTTP 404): not_found|order (Order not found.)", api::CallFailed);
  CHECK_THROWS_WITH_AS(client.order_info("1/../2"), "order id: must be a CertCentral id (digits, or a hex thumbprint/serial)", api::ValidationError);
}

TEST_CASE("validation failures send nothing") {
  CertCentralSim sim;
  auto client = test::client_for(sim);
  auto request = test::seal_request();
  request.ship_info->method = "FAST";
  CHECK_THROWS_AS(client.submit_order(request), api::ValidationError);
  CHECK(sim.audit().empty());
}

TEST_CASE("a wrong API key: refused, \"API key rejected\", and the key is nowhere") {
  CertCentralSim sim;
  const std::string wrong = "wrong-key-5f1e2d3c4b5a";
  std::vector<std::string> trace;
  auto options = test::options_for(sim, std::make_shared<FakeClock>());
  options.trace = [&](std::string_view line) { trace.emplace_back(line); };
  api::Client client(options, test::key_from(wrong));
  auto orgs = client.list_organizations();
  REQUIRE(orgs.kind() == OutcomeKind::refused);
  CHECK(orgs.refused().auth_failed());
  CHECK(orgs.describe().find("API key rejected (HTTP 401)") == 0);
  try {
    orgs.value_or_throw();
    FAIL("no exception");
  } catch (const api::CallFailed& e) {
    CHECK(e.auth_failed());
    CHECK(std::string(e.what()).find(wrong) == std::string::npos);
  }
  std::string traced;
  for (const auto& line : trace) traced += line + "\n";
  CHECK(traced.find("> X-DC-DEVKEY: <redacted>") != std::string::npos);
  CHECK(traced.find("User-Agent: qscd-agent/test") != std::string::npos);
  CHECK(traced.find(wrong) == std::string::npos);
  CHECK(sim.all_files_text().find(wrong) == std::string::npos);
  CHECK(sim.all_files_text().find(CertCentralSim::api_key) == std::string::npos);
}

TEST_CASE("429 and 5xx are retried with capped exponential backoff; Retry-After is honoured") {
  SUBCASE("429 every 2nd request: one retry after the base delay") {
    CertCentralSim sim({"--fail-429-every", "2"});
    auto clock = std::make_shared<FakeClock>();
    auto client = test::client_for(sim, clock);
    REQUIRE(client.list_organizations().ok());  // request 1
    REQUIRE(client.list_organizations().ok());  // request 2 is a 429, request 3 answers
    CHECK(count_requests(sim, "GET", "/organization") == 3);
    REQUIRE(clock->sleeps.size() == 1);
    CHECK(clock->sleeps[0] == std::chrono::milliseconds(500));  // base 1 s, jitter pinned to the low half
  }
  SUBCASE("Retry-After wins over the computed delay") {
    CertCentralSim sim({"--fail-429-every", "1", "--retry-after", "7"});
    auto clock = std::make_shared<FakeClock>();
    auto options = test::options_for(sim, clock);
    options.retry.max_attempts = 3;
    api::Client client(options, test::key_from(CertCentralSim::api_key));
    auto orgs = client.list_organizations();
    REQUIRE(orgs.kind() == OutcomeKind::refused);
    CHECK(orgs.refused().http_status == 429);
    CHECK(orgs.refused().errors.at(0).code == "request_limit_exceeded");
    CHECK(clock->sleeps == std::vector<std::chrono::milliseconds>{std::chrono::seconds(7), std::chrono::seconds(7)});
  }
  SUBCASE("an HTML 503 every time: unreachable after the attempts, delays doubling up to the cap") {
    CertCentralSim sim({"--fail-5xx-every", "1"});
    auto clock = std::make_shared<FakeClock>();
    auto options = test::options_for(sim, clock);
    options.retry.max_attempts = 6;
    options.retry.max_delay = std::chrono::milliseconds(8000);
    api::Client client(options, test::key_from(CertCentralSim::api_key));
    auto info = client.order_info("100001");
    REQUIRE(info.kind() == OutcomeKind::unreachable);
    CHECK(info.describe() ==
          "CertCentral unreachable: HTTP 503 for GET /order/certificate/100001 after 6 attempts; the body is not a JSON error (text/html)");
    using ms = std::chrono::milliseconds;
    CHECK(clock->sleeps == std::vector<ms>{ms(500), ms(1000), ms(2000), ms(4000), ms(4000)});
    CHECK(count_requests(sim, "GET", "/order/certificate/100001") == 6);
  }
  SUBCASE("an order POST is never repeated") {
    CertCentralSim sim({"--fail-5xx-every", "1"});
    auto clock = std::make_shared<FakeClock>();
    auto client = test::client_for(sim, clock);
    auto key = test::make_key();
    auto submitted = client.submit_order(test::server_request(test::make_csr(key.get(), "svc.example.nl"), "svc.example.nl"));
    CHECK(submitted.kind() == OutcomeKind::unreachable);
    CHECK(count_requests(sim, "POST", "/order/certificate/") == 1);
    CHECK(clock->sleeps.empty());
  }
}

TEST_CASE("truncated JSON, slow answers and a dead port are outcomes, not crashes") {
  SUBCASE("truncated JSON is malformed") {
    CertCentralSim sim({"--truncate-json-every", "1"});
    auto client = test::client_for(sim, std::make_shared<FakeClock>());
    auto orgs = client.list_organizations();
    REQUIRE(orgs.kind() == OutcomeKind::malformed);
    CHECK(orgs.describe().find("unexpected answer from CertCentral: the answer to GET /organization is not the documented JSON (application/json)") == 0);
    auto key = test::make_key();
    auto submitted = client.submit_order(test::server_request(test::make_csr(key.get(), "svc.example.nl"), "svc.example.nl"));
    CHECK(submitted.kind() == OutcomeKind::malformed);
  }
  SUBCASE("an answer slower than the total timeout is unreachable") {
    CertCentralSim sim({"--slow-ms", "1500"});
    auto options = test::options_for(sim, std::make_shared<FakeClock>());
    options.total_timeout = std::chrono::milliseconds(300);
    options.retry.max_attempts = 2;
    api::Client client(options, test::key_from(CertCentralSim::api_key));
    auto orgs = client.list_organizations();
    REQUIRE(orgs.kind() == OutcomeKind::unreachable);
    CHECK(orgs.describe().find("(after 2 attempts)") != std::string::npos);
  }
  SUBCASE("nothing listening") {
    api::ClientOptions options;
    options.base_url = "http://127.0.0.1:1/services/v2";
    auto clock = std::make_shared<FakeClock>();
    options.clock = clock;
    options.limiter = std::make_shared<api::RateLimiter>(api::RateLimiter::certcentral_windows(), clock);
    api::Client client(options, test::key_from("k"));
    CHECK(client.order_info("1").kind() == OutcomeKind::unreachable);
  }
  SUBCASE("a body over the cap is malformed") {
    CertCentralSim sim;
    auto options = test::options_for(sim, std::make_shared<FakeClock>());
    options.max_body_bytes = 64;
    api::Client client(options, test::key_from(CertCentralSim::api_key));
    auto orgs = client.list_organizations();
    REQUIRE(orgs.kind() == OutcomeKind::malformed);
    CHECK(orgs.describe() == "unexpected answer from CertCentral: the answer to GET /organization is larger than 64 bytes");
  }
}
