// The documented product rules, checked before anything is sent.
#include <doctest/doctest.h>

#include "api_fixture.hpp"
#include "qscd/api/error.hpp"

using namespace qscd;
using qscd::api::ValidationError;

namespace {
const auto now = std::chrono::system_clock::now();

std::string rsa_csr(std::size_t bits, const std::string& cn = "svc.example.nl") {
  auto key = test::make_key("RSA", bits);
  return test::make_csr(key.get(), cn);
}
}  // namespace

TEST_CASE("a complete server order and a complete QSCD seal order pass") {
  CHECK_NOTHROW(api::validate(test::server_request(rsa_csr(2048), "svc.example.nl"), now));
  CHECK_NOTHROW(api::validate(test::seal_request(), now));
  CHECK(api::is_qscd_order(test::seal_request()));
}

TEST_CASE("PKIo products take sha256 only") {
  auto request = test::server_request(rsa_csr(2048), "svc.example.nl");
  request.certificate.signature_hash = "sha384";
  CHECK_THROWS_WITH_AS(api::validate(request, now),
                       "certificate.signature_hash: must be sha256 for pkio_private_services_server (PKIo and EU qualified products support only SHA-256)",
                       ValidationError);
}

TEST_CASE("the PKIo eSeal: qscd provisioning, nonrepudiation, full ship_info") {
  auto request = test::seal_request();
  request.provisioning_method = "csr";
  CHECK_THROWS_WITH_AS(api::validate(request, now),
                       "provisioning_method: must be qscd for pkio_qualified_organisation_services (the only method DigiCert supports)", ValidationError);
  request = test::seal_request();
  request.certificate.profile_option = "digital_signature";
  CHECK_THROWS_WITH_AS(api::validate(request, now),
                       "certificate.profile_option: must be nonrepudiation for pkio_qualified_organisation_services (the only PKIo profile option)",
                       ValidationError);
  request = test::seal_request();
  request.ship_info->zip = "";
  CHECK_THROWS_WITH_AS(api::validate(request, now), "ship_info.zip: is required and must not be empty", ValidationError);
  request = test::seal_request();
  request.ship_info->method = "OVERNIGHT";
  CHECK_THROWS_WITH_AS(api::validate(request, now), "ship_info.method: must be STANDARD or EXPEDITED, not \"OVERNIGHT\"", ValidationError);
  request = test::seal_request();
  request.ship_info.reset();
  CHECK_THROWS_AS(api::validate(request, now), ValidationError);
  request = test::seal_request();
  request.certificate.csr = rsa_csr(2048);
  CHECK_THROWS_WITH_AS(api::validate(request, now),
                       "certificate.csr: must be left out for provisioning_method qscd: give the CSR to the order's pickup step (order attach)",
                       ValidationError);
}

TEST_CASE("an order checked before its CSR exists: the key rules apply to the planned key") {
  auto request = test::server_request("", "svc.example.nl");
  CHECK_THROWS_WITH_AS(api::validate(request, now), "certificate.csr: is required for pkio_private_services_server",
                       ValidationError);
  api::CsrInfo planned{"EC", 256, "svc.example.nl", true};
  CHECK_THROWS_WITH_AS(api::validate(request, now, planned),
                       "certificate.csr: pkio_private_services_server takes RSA 2048, 3072 or 4096 keys only, not EC 256", ValidationError);
  planned = {"RSA", 3072, "svc.example.nl", true};
  CHECK_NOTHROW(api::validate(request, now, planned));
  // A CSR that is there is what counts, whatever was planned.
  request.certificate.csr = rsa_csr(1024);
  CHECK_THROWS_WITH_AS(api::validate(request, now, planned),
                       "certificate.csr: pkio_private_services_server takes RSA 2048, 3072 or 4096 keys only, not RSA 1024", ValidationError);
  // The other rules are checked as without a plan.
  request = test::server_request("", "svc.example.nl");
  request.certificate.signature_hash = "sha1";
  CHECK_THROWS_AS(api::validate(request, now, planned), ValidationError);
}

TEST_CASE("CSR keys: RSA 2048/3072/4096 for pkio_private_services_server, RSA >= 2048 for eu_eseal") {
  auto ec = test::make_key("EC");
  auto request = test::server_request(test::make_csr(ec.get(), "svc.example.nl"), "svc.example.nl");
  CHECK_THROWS_WITH_AS(api::validate(request, now),
                       "certificate.csr: pkio_private_services_server takes RSA 2048, 3072 or 4096 keys only, not EC 256", ValidationError);
  request = test::server_request(rsa_csr(1024), "svc.example.nl");
  CHECK_THROWS_WITH_AS(api::validate(request, now),
                       "certificate.csr: pkio_private_services_server takes RSA 2048, 3072 or 4096 keys only, not RSA 1024", ValidationError);
  CHECK_NOTHROW(api::validate(test::server_request(rsa_csr(3072), "svc.example.nl"), now));

  auto seal = test::server_request(rsa_csr(1024), "seal");
  seal.product = "eu_eseal";
  seal.certificate.oin.reset();
  seal.provisioning_method = "csr";
  CHECK_THROWS_WITH_AS(api::validate(seal, now), "certificate.csr: eu_eseal with a CSR takes RSA keys of 2048 bits or more only, not RSA 1024",
                       ValidationError);
  seal.certificate.csr = rsa_csr(2048);
  CHECK_NOTHROW(api::validate(seal, now));
  seal.certificate.csr = "not a csr";
  CHECK_THROWS_WITH_AS(api::validate(seal, now),
                       "certificate.csr: must be a PEM PKCS#10 certificate request (-----BEGIN CERTIFICATE REQUEST-----)", ValidationError);
}

TEST_CASE("validity: 1-3 years, <= 397 days, or a custom date within 397 days; one of them") {
  auto request = test::server_request(rsa_csr(2048), "svc.example.nl");
  request.order_validity = api::OrderValidity{4, std::nullopt, std::nullopt};
  CHECK_THROWS_WITH_AS(api::validate(request, now), "order_validity.years: must be 1, 2 or 3", ValidationError);
  request.order_validity = api::OrderValidity{std::nullopt, 398, std::nullopt};
  CHECK_THROWS_WITH_AS(api::validate(request, now), "order_validity.days: must be from 1 to 397", ValidationError);
  request.order_validity = api::OrderValidity{1, 30, std::nullopt};
  CHECK_THROWS_WITH_AS(api::validate(request, now), "order_validity: give only one of years, days or custom_expiration_date", ValidationError);

  auto fixed = std::chrono::system_clock::from_time_t(1780000000);  // 2026-05-28
  request.order_validity = api::OrderValidity{std::nullopt, std::nullopt, "09 AUG 2027"};
  CHECK_THROWS_WITH_AS(api::validate(request, fixed), "order_validity.custom_expiration_date: must be within 397 days of today", ValidationError);
  request.order_validity = api::OrderValidity{std::nullopt, std::nullopt, "09 JUN 2026"};
  CHECK_NOTHROW(api::validate(request, fixed));
  request.order_validity = api::OrderValidity{std::nullopt, std::nullopt, "2026-06-09"};
  CHECK_THROWS_WITH_AS(api::validate(request, fixed), "order_validity.custom_expiration_date: must be a date like \"09 JUN 2027\" (dd MMM YYYY)",
                       ValidationError);
}

TEST_CASE("csa_agreed_to must be true; oin is 20 digits; order files refuse unknown fields") {
  auto request = test::server_request(rsa_csr(2048), "svc.example.nl");
  request.csa_agreed_to = false;
  CHECK_THROWS_WITH_AS(api::validate(request, now),
                       "csa_agreed_to: must be true for pkio_private_services_server (the Certificate Subscriber Agreement)", ValidationError);
  request = test::server_request(rsa_csr(2048), "svc.example.nl");
  request.certificate.oin = "1234";
  CHECK_THROWS_WITH_AS(api::validate(request, now), "certificate.oin: must be 20 digits (an OIN or HRN)", ValidationError);

  auto parsed = api::order_request_from_json("pkio_qualified_organisation_services", nlohmann::json::parse(R"({
    "certificate": {"signature_hash": "sha256", "profile_option": "nonrepudiation"},
    "csa_agreed_to": true, "provisioning_method": "qscd",
    "ship_info": {"name": "John Doe", "addr1": "534 Jefferson Street", "addr2": "Floor 94", "city": "New Orleans",
                  "state": "la", "zip": "58061", "country": "us", "method": "STANDARD"},
    "organization": {"id": "2042709", "contacts": [{"user_id": "2812497", "first_name": "John", "last_name": "Doe",
      "job_title": "Engineer", "telephone": "1801-903-4284", "email": "john.doe@johndoe.com", "contact_type": "verified_contact"}]},
    "order_validity": {"years": 1}, "payment_method": "balance"})"));
  CHECK_NOTHROW(api::validate(parsed, now));
  CHECK(api::to_json(parsed)["organization"]["id"] == 2042709);
  CHECK_THROWS_WITH_AS(api::order_request_from_json("ssl_basic", nlohmann::json::parse(R"({"certificat": {}})")),
                       "certificat: is not a field of the order body", ValidationError);
  CHECK_THROWS_WITH_AS(api::order_request_from_json("ssl_basic", nlohmann::json::parse(R"({"order_validity": {"years": "1"}})")),
                       "order_validity.years: must be a whole number", ValidationError);
}

TEST_CASE("card details are sent but never shown") {
  auto request = test::server_request(rsa_csr(2048), "svc.example.nl");
  request.payment_method = "card";
  request.credit_card = nlohmann::json{{"number", "4111111111111111"}, {"cvv", "123"}};
  request.billing_address = nlohmann::json{{"address", "x"}, {"city", "y"}, {"country", "nl"}};
  CHECK_NOTHROW(api::validate(request, now));
  CHECK(api::to_json(request)["credit_card"]["number"] == "4111111111111111");
  std::string shown = api::redacted(request).dump();
  CHECK(shown.find("4111") == std::string::npos);
  CHECK(shown.find("<redacted>") != std::string::npos);
}
