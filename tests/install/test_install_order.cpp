// install --order and the never-a-second-order lookup against certcentral-sim,
// with a SoftHSM2 token holding an imported key (so the test can sign CSRs).
#include <doctest/doctest.h>

#include <openssl/pem.h>

#include <fstream>

#include "../unit/scratch_dir.hpp"
#include "certcentral_sim.hpp"
#include "journal/journal.hpp"
#include "ca/order_flow.hpp"
#include "ca/order_lookup.hpp"
#include "provision/provisioner.hpp"
#include "process.hpp"
#include "qscd/api/client.hpp"
#include "softhsm.hpp"
#include "test_pki.hpp"

using namespace qscd;
using qscd::test::CertCentralSim;

namespace {

api::Client client_for(const CertCentralSim& sim) {
  api::ClientOptions options;
  options.base_url = sim.url();
  options.ca_file = sim.ca_file();
  std::string_view key = CertCentralSim::api_key;
  return api::Client(options, api::ApiKey({reinterpret_cast<const unsigned char*>(key.data()), key.size()}));
}

api::OrderRequest server_order(const std::string& csr, const std::string& comments) {
  api::OrderRequest request;
  request.product = "pkio_private_services_server";
  request.certificate.common_name = "svc.example.nl";
  request.certificate.dns_names = {"svc.example.nl"};
  request.certificate.csr = csr;
  request.certificate.oin = "00000003123456780000";
  request.organization.id = 112233;
  request.csa_agreed_to = true;
  request.order_validity = api::OrderValidity{1, std::nullopt, std::nullopt};
  request.skip_approval = true;
  if (!comments.empty()) request.comments = comments;
  return request;
}

std::string issued_order(api::Client& client, const std::string& csr) {
  auto submitted = client.submit_order(server_order(csr, "qscd-agent job tagged"));
  REQUIRE_MESSAGE(submitted.ok(), submitted.describe());
  std::string id = submitted.value().order_id;
  for (int look = 0; look < 10 && !client.poll_order(id).ok(); ++look) {
  }
  REQUIRE(client.poll_order(id).ok());
  return id;
}

// A token "inst" holding an imported RSA 2048 pair (CKA_ID 01, label "svc").
struct ImportedKey {
  qscd::test::SoftHsm hsm;
  ScratchDir dir;
  test::Pkey key = test::make_key();

  ImportedKey() {
    hsm.add_token("inst");
    auto pem_file = dir.path() / "key.pem";
    std::FILE* out = std::fopen(pem_file.c_str(), "w");
    REQUIRE(out != nullptr);
    PEM_write_PKCS8PrivateKey(out, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(out);
    REQUIRE(qscd::test::run_quietly({"softhsm2-util", "--import", pem_file.string(), "--token", "inst", "--label", "svc",
                                     "--id", "01", "--pin", "123456"}) == 0);
  }

  qscd::test::Outcome install_order(const CertCentralSim& sim, const std::string& order_id) const {
    ::setenv("QSCD_TEST_API_KEY", CertCentralSim::api_key, 1);
    return qscd::test::run_agent({"install", "--key", "pkcs11:token=inst;id=%01", "--order", order_id, "--trust",
                                  sim.ca_file(), "--api-url", sim.url(), "--ca-file", sim.ca_file(),
                                  "--api-key-source", "env:QSCD_TEST_API_KEY", "--module", qscd::test::softhsm_module,
                                  "--state-dir", (dir.path() / "state").string(), "--json"});
  }
};

}  // namespace

TEST_CASE("install --order downloads pem_noroot, verifies it and installs it once") {
  CertCentralSim sim;
  ImportedKey token;
  auto client = client_for(sim);
  std::string order_id = issued_order(client, test::make_csr(token.key.get(), "svc.example.nl"));

  auto first = token.install_order(sim, order_id);
  REQUIRE_MESSAGE(first.exit == 0, first.err);
  auto doc = nlohmann::json::parse(first.out);
  CHECK(doc["end_entity"]["created"] == true);
  CHECK(doc["chain_verified"] == true);
  REQUIRE(doc["intermediates"].size() == 1);
  auto again = token.install_order(sim, order_id);
  REQUIRE_MESSAGE(again.exit == 0, again.err);
  CHECK(nlohmann::json::parse(again.out)["end_entity"]["created"] == false);
}

TEST_CASE("install --order: not issued yet exits 5, a certificate for another key exits 4, a foreign chain exits 4") {
  ImportedKey token;
  {
    CertCentralSim slow({"--issue-after-polls", "100"});
    auto client = client_for(slow);
    auto submitted = client.submit_order(server_order(test::make_csr(token.key.get(), "svc.example.nl"), ""));
    REQUIRE(submitted.ok());
    auto waiting = token.install_order(slow, submitted.value().order_id);
    CHECK(waiting.exit == 5);
  }
  {
    CertCentralSim wrong({"--wrong-key"});
    auto client = client_for(wrong);
    auto outcome = token.install_order(wrong, issued_order(client, test::make_csr(token.key.get(), "svc.example.nl")));
    CHECK(outcome.exit == 4);
    CHECK(outcome.err.find("the certificate is not for this key") != std::string::npos);
  }
  {
    CertCentralSim foreign({"--foreign-chain"});
    auto client = client_for(foreign);
    auto outcome = token.install_order(foreign, issued_order(client, test::make_csr(token.key.get(), "svc.example.nl")));
    CHECK(outcome.exit == 4);
    CHECK(outcome.err.find("does not lead to the trust anchors") != std::string::npos);
  }
  auto listed = qscd::test::run_quietly({"pkcs11-tool", "--module", qscd::test::softhsm_module, "--token-label", "inst",
                                         "--type", "cert", "-O"});
  CHECK(listed == 0);
}

TEST_CASE("the order lookup adopts the order carrying the job's CSR, with or without the tag, and only that one") {
  CertCentralSim sim;
  auto client = client_for(sim);
  ScratchDir dir;
  auto journal = agent::Journal::open(dir.path());
  agent::NewJob new_job;
  new_job.key = {"serial", "svc", "pkio-server", "pkio_private_services_server"};
  auto job = journal.create(new_job);
  journal.claim(job.id);
  auto key = test::make_key();
  std::string csr = test::make_csr(key.get(), "svc.example.nl");
  agent::JobUpdate with_csr;
  with_csr.csr_pem = csr;
  job = journal.transition(job.id, agent::JobState::need_key_pair, agent::JobState::generating_key_pair);
  job = journal.transition(job.id, agent::JobState::generating_key_pair, agent::JobState::have_key_pair);
  job = journal.transition(job.id, agent::JobState::have_key_pair, agent::JobState::need_csr);
  job = journal.transition(job.id, agent::JobState::need_csr, agent::JobState::have_csr, "", with_csr);
  job = journal.transition(job.id, agent::JobState::have_csr, agent::JobState::need_to_submit);
  job = journal.transition(job.id, agent::JobState::need_to_submit, agent::JobState::submitting);

  // Nothing placed yet: nothing adopted, so the job may submit.
  auto none = agent::find_order(client, agent::order_search(job, "svc.example.nl"));
  CHECK_FALSE(none.adopted.has_value());

  // Another job's order for the same name is not adopted.
  auto other_key = test::make_key();
  REQUIRE(client.submit_order(server_order(test::make_csr(other_key.get(), "svc.example.nl"), "other")).ok());
  CHECK_FALSE(agent::find_order(client, agent::order_search(job, "svc.example.nl")).adopted.has_value());

  // The POST went through but its answer was lost: found by the tag.
  auto placed = client.submit_order(server_order(csr, "qscd-agent " + job.job_tag));
  REQUIRE(placed.ok());
  auto found = agent::find_order(client, agent::order_search(job, "svc.example.nl"));
  REQUIRE(found.adopted.has_value());
  CHECK(found.adopted->id == placed.value().order_id);
  CHECK(found.candidates == 1);

  // Without the tag in the comments (or a CA whose search ignores comments), still found by the CSR.
  agent::Job untagged = job;
  untagged.job_tag = "qscd-not-in-any-comment";
  auto by_csr = agent::find_order(client, agent::order_search(untagged, "svc.example.nl"));
  REQUIRE(by_csr.adopted.has_value());
  CHECK(by_csr.adopted->id == placed.value().order_id);

  // The lookup never POSTs.
  int posts = 0;
  for (const auto& line : sim.audit()) {
    if (line.value("method", "") == "POST") ++posts;
  }
  CHECK(posts == 2);
}

TEST_CASE("CSRs compare by their base64, whatever the line breaks") {
  auto key = test::make_key();
  std::string csr = test::make_csr(key.get(), "svc.example.nl");
  std::string flat;
  for (char c : csr) {
    if (c != '\n') flat.push_back(c);
  }
  CHECK(agent::same_csr(csr, flat));
  CHECK_FALSE(agent::same_csr(csr, test::make_csr(key.get(), "other.example.nl")));
  CHECK_FALSE(agent::same_csr("", ""));
}
