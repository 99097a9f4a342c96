// `qscd-agent order ...` and `orgs` against certcentral-sim: exit codes,
// progress on stderr, --json on stdout, and the API key never shown.
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "certcentral_sim.hpp"
#include "run_process.hpp"
#include "test_pki.hpp"

using nlohmann::json;
using qscd::test::CertCentralSim;
using qscd::test::run_process;

namespace {

struct Agent {
  const CertCentralSim& sim;
  std::string key = CertCentralSim::api_key;
  std::filesystem::path dir;

  explicit Agent(const CertCentralSim& s) : sim(s), dir(s.dir() / "agent") {
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "agent.toml") << "";
  }
  qscd::test::ProcessResult run(std::vector<std::string> args) const {
    std::vector<std::string> full = {std::getenv("QSCD_AGENT_BIN"), "--config", (dir / "agent.toml").string(), "--api-url", sim.url(),
                                     "--ca-file", sim.ca_file()};
    full.insert(full.end(), args.begin(), args.end());
    return run_process(full, {{"CERTCENTRAL_API_KEY", key}, {"QSCD_AGENT_STATE_DIR", (dir / "state").string()}});
  }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  }
};

const char* order_body = R"({"organization": {"id": 112233}, "csa_agreed_to": true, "order_validity": {"years": 1},
  "certificate": {"oin": "00000003123456780000"}, "comments": "agent-test"})";

}  // namespace

TEST_CASE("orgs, order submit --dry-run, submit, wait with progress, status") {
  CertCentralSim sim({"--issue-after-polls", "1"});
  Agent agent(sim);
  auto orgs = agent.run({"--json", "orgs"});
  REQUIRE(orgs.exit_code == 0);
  CHECK(json::parse(orgs.out)["organizations"][0]["id"] == "112233");

  auto key = qscd::test::make_key();
  std::string csr = agent.write("svc.csr", qscd::test::make_csr(key.get(), "svc.example.nl"));
  std::string order_file = agent.write("order.json", order_body);
  auto dry = agent.run({"--json", "order", "submit", "--product", "pkio_private_services_server", "--csr", csr, "--order-file", order_file, "--dry-run"});
  REQUIRE(dry.exit_code == 0);
  json body = json::parse(dry.out)["body"];
  CHECK(body["certificate"]["common_name"] == "svc.example.nl");
  CHECK(body["organization"]["id"] == 112233);
  CHECK(sim.audit().size() == 1);  // only the orgs call: the dry run sent nothing

  auto placed = agent.run({"--json", "order", "submit", "--product", "pkio_private_services_server", "--csr", csr, "--order-file", order_file});
  REQUIRE(placed.exit_code == 0);
  std::string id = std::to_string(json::parse(placed.out)["order_id"].get<std::int64_t>());  // a number, as in every document
  CHECK(json::parse(placed.out)["status"] == "needs_approval");

  auto timed_out = agent.run({"order", "wait", id, "--timeout", "1s", "--interval", "1s"});
  CHECK(timed_out.exit_code == 5);
  CHECK(timed_out.err.find("order " + id + ": needs_approval, waited 0s, next look in 1s") != std::string::npos);
  CHECK(timed_out.err.find("run the same command again") != std::string::npos);

  auto waited = agent.run({"--json", "order", "wait", id, "--timeout", "30s", "--interval", "1s", "--approve"});
  REQUIRE(waited.exit_code == 0);
  CHECK(json::parse(waited.out)["status"] == "issued");
  CHECK(waited.err.find("approved request") != std::string::npos);

  auto shown = agent.run({"order", "status", id});
  CHECK(shown.exit_code == 0);
  CHECK(shown.out.find("order " + id + ": issued (pkio_private_services_server)") == 0);

  // attach to an issued order = reissue with the new CSR
  auto new_key = qscd::test::make_key("RSA", 3072);
  std::string new_csr = agent.write("new.csr", qscd::test::make_csr(new_key.get(), "svc.example.nl"));
  auto attached = agent.run({"--json", "order", "attach", id, "--csr", new_csr, "--approve"});
  REQUIRE(attached.exit_code == 0);
  CHECK(json::parse(attached.out)["action"] == "reissue");

  // A reissue left pending (attach without --approve) is approved by `order wait --approve` too.
  auto third_key = qscd::test::make_key("RSA", 3072);
  std::string third_csr = agent.write("third.csr", qscd::test::make_csr(third_key.get(), "svc.example.nl"));
  auto pending = agent.run({"--json", "order", "attach", id, "--csr", third_csr});
  REQUIRE(pending.exit_code == 0);
  CHECK(json::parse(pending.out)["status"] == "reissue_pending");
  auto reissued = agent.run({"--json", "order", "wait", id, "--timeout", "30s", "--interval", "1s", "--approve"});
  REQUIRE_MESSAGE(reissued.exit_code == 0, reissued.err);
  CHECK(json::parse(reissued.out)["status"] == "issued");
  CHECK(reissued.err.find("(reissue) of order " + id) != std::string::npos);
}

TEST_CASE("order attach does the pickup step of a QSCD order, the init code from a secret source") {
  CertCentralSim sim({"--auto-approve"});
  Agent agent(sim);
  std::string order_file = agent.write("seal.json", R"({"certificate": {"signature_hash": "sha256", "profile_option": "nonrepudiation"},
    "csa_agreed_to": true, "provisioning_method": "qscd", "organization": {"id": 112233}, "order_validity": {"years": 1},
    "ship_info": {"name": "J", "addr1": "a", "addr2": "b", "city": "c", "state": "d", "zip": "e", "country": "nl", "method": "STANDARD"}})");
  auto placed = agent.run({"--json", "order", "submit", "--product", "pkio_qualified_organisation_services", "--order-file", order_file});
  REQUIRE(placed.exit_code == 0);
  std::string id = std::to_string(json::parse(placed.out)["order_id"].get<std::int64_t>());  // a number, as in every document
  CHECK(json::parse(placed.out)["status"] == "waiting_pickup");
  auto key = qscd::test::make_key("RSA", 3072);
  std::string csr = agent.write("seal.csr", qscd::test::make_csr(key.get(), "Voorbeeld Zegel"));
  auto attached = qscd::test::run_process(
      {std::getenv("QSCD_AGENT_BIN"), "--config", (agent.dir / "agent.toml").string(), "--api-url", sim.url(), "--ca-file", sim.ca_file(),
       "--json", "order", "attach", id, "--csr", csr, "--init-code-source", "env:QSCD_TEST_INIT_CODE"},
      {{"CERTCENTRAL_API_KEY", CertCentralSim::api_key}, {"QSCD_TEST_INIT_CODE", "INIT-777"}});
  REQUIRE(attached.exit_code == 0);
  CHECK(json::parse(attached.out)["action"] == "pickup");
  CHECK(agent.run({"order", "wait", id, "--timeout", "10s", "--interval", "1s"}).exit_code == 0);
  auto again = agent.run({"order", "attach", "999999", "--csr", csr});
  CHECK(again.exit_code == 4);
}

TEST_CASE("exit codes: bad input 2, a wrong key 4 with \"API key rejected\" and the key nowhere, rejection 4") {
  CertCentralSim sim({"--reject-cn", "bad.example.nl", "--auto-approve"});
  Agent agent(sim);
  auto key = qscd::test::make_key("EC");
  std::string ec_csr = agent.write("ec.csr", qscd::test::make_csr(key.get(), "svc.example.nl"));
  std::string order_file = agent.write("order.json", order_body);
  auto ec = agent.run({"order", "submit", "--product", "pkio_private_services_server", "--csr", ec_csr, "--order-file", order_file});
  CHECK(ec.exit_code == 2);
  CHECK(ec.err.find("certificate.csr: pkio_private_services_server takes RSA 2048, 3072 or 4096 keys only, not EC 256") != std::string::npos);
  CHECK(agent.run({"order", "wait", "1", "--timeout", "soon"}).exit_code == 2);
  CHECK(sim.audit().empty());

  auto plain = run_process({std::getenv("QSCD_AGENT_BIN"), "--config", (agent.dir / "agent.toml").string(), "--api-url",
                            "http://certcentral.example.eu/services/v2", "orgs"},
                           {{"CERTCENTRAL_API_KEY", "x"}});
  CHECK(plain.exit_code == 2);

  Agent wrong(sim);
  wrong.key = "definitely-wrong-9c8b7a";
  auto refused = wrong.run({"--json", "-vv", "orgs"});
  CHECK(refused.exit_code == 4);
  CHECK(refused.err.find("API key rejected") != std::string::npos);
  CHECK(refused.err.find("X-DC-DEVKEY: <redacted>") != std::string::npos);  // -vv traces, redacted
  CHECK(json::parse(refused.out)["error"]["exit_code"] == 4);
  for (const std::string& text : {refused.out, refused.err, sim.all_files_text()}) {
    CHECK(text.find(wrong.key) == std::string::npos);
    CHECK(text.find(CertCentralSim::api_key) == std::string::npos);
  }

  auto rsa = qscd::test::make_key();
  std::string bad = agent.write("bad.csr", qscd::test::make_csr(rsa.get(), "bad.example.nl"));
  auto placed = agent.run({"--json", "order", "submit", "--product", "pkio_private_services_server", "--csr", bad, "--order-file", order_file});
  REQUIRE(placed.exit_code == 0);
  auto rejected = agent.run({"order", "wait", std::to_string(json::parse(placed.out)["order_id"].get<std::int64_t>()), "--timeout", "5s", "--interval", "1s"});
  CHECK(rejected.exit_code == 4);
  CHECK(rejected.err.find("CertCentral rejected it (rejected)") != std::string::npos);
}
