// What a seal certificate is (issue 17, item 6): the simulator issues QCP-l seals (a qualified
// certificate, no QcSSCD) for CSR orders, QCP-l-qscd seals for QSCD orders, and unqualified ones
// with --seal-level none; the agent says which, and refuses to install one that is less than the
// product, the order or --expect promises (exit 4, nothing written).
#include "e2e_fixture.hpp"

using namespace qscd::e2e;
using qscd::test::CertCentralSim;

namespace {

Provision eseal(const std::string& label) {
  return {"pkio-eseal", "eu_eseal", "rsa:2048", label, {"--subject-file", golden_subject("pkio-eseal")}, eseal_order_body(), {}, {}};
}

const char* qscd_order_body = R"({"certificate": {"signature_hash": "sha256", "profile_option": "nonrepudiation"},
  "csa_agreed_to": true, "provisioning_method": "qscd", "organization": {"id": 112233}, "order_validity": {"years": 1},
  "ship_info": {"name": "J", "addr1": "a", "addr2": "b", "city": "c", "state": "d", "zip": "e", "country": "nl", "method": "STANDARD"}})";

// A QSCD order waiting for its key, and `provision --order` for it (the pickup step).
Provision qscd_pickup(const Workspace& ws, const CertCentralSim& sim, const std::string& label) {
  const std::string order_file = ws.write("qscd-" + label + ".json", qscd_order_body);
  auto placed = ws.agent(sim, {"--json", "order", "submit", "--product", "pkio_qualified_organisation_services", "--order-file", order_file});
  REQUIRE_MESSAGE(placed.exit_code == 0, placed.err);
  const json order = json::parse(placed.out);
  REQUIRE(order["status"] == "waiting_pickup");
  return {"pkio-eseal", "pkio_qualified_organisation_services", "rsa:3072", label, {"--subject-file", golden_subject("pkio-eseal")},
          "{}", {"--order", as_text(order["order_id"])}, {}};
}

}  // namespace

TEST_CASE("eu_eseal from a CSR is an advanced e-seal (QCP-l): installed and said so; --expect qualified refuses it") {
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  auto run = ws.provision(sim, eseal("advanced"));
  REQUIRE_MESSAGE(run.exit_code == 0, run.err);
  CHECK(run.err.find("check: ok: the certificate is advanced e-seal (QCP-l") != std::string::npos);
  json out = json::parse(run.out);
  CHECK(out["checks"]["seal"]["level"] == "advanced_qcp_l");
  CHECK(out["checks"]["seal"]["policy_qcp_l"] == true);
  CHECK(out["checks"]["qc_statements"]["qc_sscd"] == false);

  Provision strict = eseal("strict");
  strict.extra = {"--expect", "qualified"};
  auto refused = ws.provision(sim, strict);
  CHECK_MESSAGE(refused.exit_code == 4, refused.err);
  CHECK(refused.err.find("less than the qualified e-seal on a QSCD (QCP-l-qscd) the order promises") != std::string::npos);
  CHECK(refused.err.find("check: FAILED: the certificate is advanced e-seal") != std::string::npos);
  CHECK(json::parse(refused.out).value("state", "") == "FAILED");
  CHECK(count_objects(ws.objects(), "Certificate Object", "strict") == 0);

  Provision typo = eseal("typo");
  typo.extra = {"--expect", "qscd"};
  auto bad = ws.provision(sim, typo);
  CHECK_MESSAGE(bad.exit_code == 2, bad.err);
  CHECK(bad.err.find("--expect: 'qscd' is not a seal level") != std::string::npos);
  CHECK(count_objects(ws.objects(), private_key, "typo") == 0);
}

TEST_CASE("a seal certificate without policy or qcStatements for eu_eseal: exit 4, nothing written") {
  CertCentralSim sim({"--auto-approve", "--seal-level", "none"});
  Workspace ws;
  auto run = ws.provision(sim, eseal("plain"));
  CHECK_MESSAGE(run.exit_code == 4, run.err);
  CHECK(run.err.find("the certificate is not a qualified seal certificate") != std::string::npos);
  CHECK(run.err.find("lacks certificate policy QCP-l (0.4.0.194112.1.1) or QCP-l-qscd") != std::string::npos);
  CHECK(count_objects(ws.objects(), "Certificate Object") == 0);
}

TEST_CASE("a QSCD order's seal is a qualified e-seal on a QSCD (QCP-l-qscd); one issued as QCP-l for it is refused") {
  {
    CertCentralSim sim({"--auto-approve"});
    Workspace ws;
    auto run = ws.provision(sim, qscd_pickup(ws, sim, "qualified"));
    REQUIRE_MESSAGE(run.exit_code == 0, run.err);
    CHECK(run.err.find("check: ok: the certificate is qualified e-seal on a QSCD (QCP-l-qscd)") != std::string::npos);
    json out = json::parse(run.out);
    CHECK(out["checks"]["seal"]["level"] == "qualified_qscd");
    CHECK(out["checks"]["seal"]["promised"] == "qualified_qscd");
  }
  {
    CertCentralSim sim({"--auto-approve", "--seal-level", "qcp-l"});
    Workspace ws;
    auto run = ws.provision(sim, qscd_pickup(ws, sim, "short"));
    CHECK_MESSAGE(run.exit_code == 4, run.err);
    CHECK(run.err.find("lacks certificate policy QCP-l-qscd (0.4.0.194112.1.3), qcStatement QcSSCD (0.4.0.1862.1.4)") !=
          std::string::npos);
    CHECK(count_objects(ws.objects(), "Certificate Object") == 0);
  }
}
