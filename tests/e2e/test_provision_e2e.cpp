// `qscd-agent provision` end to end, per profile and product, against
// certcentral-sim on SoftHSM2; the result read back independently with
// pkcs11-tool and openssl. Refusals (wrong key, foreign chain), --no-wait and
// a rerun of a finished job.
#include <functional>
#include <set>

#include "e2e_fixture.hpp"

using namespace qscd::e2e;
using qscd::test::CertCentralSim;

namespace {

// The token holds the key pair and certificate under `label` with one CKA_ID, and the
// sim's issuing CA once; `export --key uri` gives a chain that openssl verifies to the sim's
// root and whose end entity holds the token's key. Returns the CKA_ID and the leaf's SHA-256.
std::pair<std::string, std::string> check_token_and_chain(const Workspace& ws, const CertCentralSim& sim, const std::string& label,
                                                          const std::string& uri, const std::string& certificate_serial) {
  // The token: one private key, one public key and one certificate under the label, one CKA_ID.
  auto objects = ws.objects();
  CHECK(count_objects(objects, private_key) == 1);
  CHECK(count_objects(objects, private_key, label) == 1);
  CHECK(count_objects(objects, public_key, label) == 1);
  CHECK(count_objects(objects, certificate, label) == 1);
  const TokenObject* priv = find_object(objects, private_key, label);
  const TokenObject* pub = find_object(objects, public_key, label);
  const TokenObject* cert = find_object(objects, certificate, label);
  REQUIRE(priv != nullptr);
  REQUIRE(pub != nullptr);
  REQUIRE(cert != nullptr);
  std::string id = lower(priv->field("ID"));
  CHECK(!id.empty());
  CHECK(lower(pub->field("ID")) == id);
  CHECK(lower(cert->field("ID")) == id);
  if (!id_of_uri(uri).empty()) CHECK(id_of_uri(uri) == id);

  // The chain on the token: the end entity and the sim's issuing CA, each once; no root.
  CHECK(count_objects(objects, certificate) == 2);
  std::size_t issuing = 0, root = 0;
  for (const auto& o : objects) {
    if (o.kind != certificate) continue;
    if (o.field("subject").find("certcentral-sim Test Issuing CA") != std::string::npos) ++issuing;
    if (o.field("subject").find("Root CA") != std::string::npos) ++root;
  }
  CHECK(issuing == 1);
  CHECK(root == 0);

  // export: the stored chain verifies to the sim's root, the end entity holds the token's key.
  auto exported = ws.agent(sim, {"export", "--key", uri});
  REQUIRE_MESSAGE(exported.exit_code == 0, exported.err);
  auto chain = read_pem_certs(exported.out);
  REQUIRE(chain.size() == 2);
  auto token_key = ws.public_key(id);
  CHECK(EVP_PKEY_eq(X509_get0_pubkey(chain[0].get()), token_key.get()) == 1);
  CHECK(serial_hex(chain[0].get()) == normal_hex(certificate_serial));
  std::string leaf = ws.write("leaf.pem", pem_of(chain[0].get()));
  std::string untrusted = ws.write("untrusted.pem", pem_of(chain[1].get()));
  auto verified = qscd::test::run_command({"openssl", "verify", "-CAfile", sim.ca_file(), "-untrusted", untrusted, leaf});
  CHECK_MESSAGE(verified.exit == 0, verified.out << verified.err);
  CHECK(verified.out.find(": OK") != std::string::npos);

  return {id, sha256_hex_of_der(chain[0].get())};
}

// Everything a finished provision must have left, checked from outside the agent.
// Returns the provision JSON for further checks.
json check_installed(const Workspace& ws, const CertCentralSim& sim, const Provision& p, const qscd::test::ProcessResult& run) {
  REQUIRE_MESSAGE(run.exit_code == 0, "exit " << run.exit_code << "\nstdout: " << run.out << "\nstderr: " << run.err);
  json out = json::parse(run.out, nullptr, false);
  REQUIRE_MESSAGE(!out.is_discarded(), "--json output is not JSON: " << run.out);
  for (const char* field : {"job_id", "state", "order_id", "certificate_serial", "key_uri", "token_serial"}) {
    CHECK_MESSAGE(out.contains(field), "--json lacks " << field << ": " << run.out);
  }
  CHECK(out.value("state", "") == "MONITORING");
  CHECK(as_text(out["token_serial"]) == ws.token_serial());

  // The CA: exactly one order placed, and it is the job's.
  auto posts = order_posts(sim, p.product);
  REQUIRE(posts.size() == 1);
  CHECK(as_text(posts[0]["order_id"]) == as_text(out["order_id"]));

  std::string uri = as_text(out["key_uri"]);
  auto [id, leaf_sha256] = check_token_and_chain(ws, sim, p.label, uri, as_text(out["certificate_serial"]));

  // The evidence record agrees with what is on the token and at the CA.
  json evidence = ws.job_evidence(sim, as_text(out["job_id"]));
  CHECK(evidence["state"] == "MONITORING");
  CHECK(as_text(evidence["order_id"]) == as_text(out["order_id"]));
  CHECK(lower(evidence["key"]["id"].get<std::string>()) == id);
  CHECK(evidence["key"]["label"] == p.label);
  CHECK(evidence["token"]["serial"] == ws.token_serial());
  CHECK(lower(evidence["sha256"]["certificate"].get<std::string>()) == leaf_sha256);
  CHECK(!evidence["sha256"]["spki"].get<std::string>().empty());
  CHECK(!evidence["sha256"]["csr"].get<std::string>().empty());
  CHECK(read_pem_certs(evidence["chain_pem"].get<std::string>()).size() >= 1);
  return out;
}

}  // namespace

TEST_CASE("provision pkio-server / pkio_private_services_server, RSA 3072, approving with --approve; a rerun changes nothing") {
  CertCentralSim sim;  // no --auto-approve: the order needs approval, which --approve gives
  Workspace ws;
  Provision p{"pkio-server", "pkio_private_services_server", "rsa:3072", "server",
              {"--subject-file", golden_subject("pkio-server")},
              server_order_body("gemeente-voorbeeld.qvtl.nl", "00000003123456780000"), {"--approve"}, {}};
  json first = check_installed(ws, sim, p, ws.provision(sim, p));

  std::string listing_before = ws.listing();
  std::size_t changes_before = changing_requests(sim);
  auto again = ws.provision(sim, p);
  REQUIRE_MESSAGE(again.exit_code == 0, again.err);
  json second = json::parse(again.out, nullptr, false);
  REQUIRE_MESSAGE(!second.is_discarded(), again.out);
  CHECK(as_text(second["job_id"]) == as_text(first["job_id"]));
  CHECK(second.value("state", "") == "MONITORING");
  CHECK(as_text(second["order_id"]) == as_text(first["order_id"]));
  CHECK(as_text(second["certificate_serial"]) == as_text(first["certificate_serial"]));
  CHECK(changing_requests(sim) == changes_before);
  CHECK(order_posts(sim, p.product).size() == 1);
  CHECK(ws.listing() == listing_before);
}

TEST_CASE("provision pkio-eseal / eu_eseal (CSR), RSA 2048: the seal certificate has nonRepudiation") {
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  Provision p{"pkio-eseal", "eu_eseal", "rsa:2048", "seal", {"--subject-file", golden_subject("pkio-eseal")}, eseal_order_body(), {}, {}};
  json out = check_installed(ws, sim, p, ws.provision(sim, p));
  auto exported = ws.agent(sim, {"export", "--key", as_text(out["key_uri"])});
  auto chain = read_pem_certs(exported.out);
  REQUIRE(!chain.empty());
  CHECK((X509_get_key_usage(chain[0].get()) & KU_NON_REPUDIATION) != 0);
}

TEST_CASE("provision generic / ssl_basic, EC P-256, subject from --set") {
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  Provision p = quick_job("web");
  json out = check_installed(ws, sim, p, ws.provision(sim, p));
  auto evidence = ws.job_evidence(sim, as_text(out["job_id"]));
  auto csr_pem = evidence["csr_pem"].get<std::string>();
  CHECK(csr_pem.find("CERTIFICATE REQUEST") != std::string::npos);
}

TEST_CASE("the simulator issues for another key: exit 4, no certificate written on the token") {
  CertCentralSim sim({"--auto-approve", "--wrong-key"});
  Workspace ws;
  Provision p = quick_job("wrong");
  auto run = ws.provision(sim, p);
  CHECK_MESSAGE(run.exit_code == 4, "exit " << run.exit_code << "\n" << run.err);
  CHECK(run.err.find("not for this key") != std::string::npos);
  CHECK(order_posts(sim, p.product).size() == 1);
  auto objects = ws.objects();
  CHECK(count_objects(objects, certificate) == 0);
  CHECK(count_objects(objects, private_key, p.label) == 1);

  // The job is FAILED; the same command again places no second order and makes no second key.
  auto again = ws.provision(sim, p);
  CHECK_MESSAGE(again.exit_code == 2, "exit " << again.exit_code << "\n" << again.err);
  CHECK(order_posts(sim, p.product).size() == 1);
  CHECK(count_objects(ws.objects(), private_key) == 1);
}

TEST_CASE("a rejected API key: exit 4 before any order; the same command with the right key finishes, one key, one order") {
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  Provision p = quick_job("badkey");
  const std::string wrong_key = "not-the-simulators-key";
  auto run = ws.provision(sim, p, {}, wrong_key);
  CHECK_MESSAGE(run.exit_code == 4, "exit " << run.exit_code << "\n" << run.err);
  CHECK(run.err.find("API key rejected") != std::string::npos);
  CHECK(run.err.find(wrong_key) == std::string::npos);
  CHECK(order_posts(sim, p.product).empty());

  auto again = ws.provision(sim, p);
  CHECK_MESSAGE(again.exit_code == 0, "exit " << again.exit_code << "\n" << again.err);
  CHECK(order_posts(sim, p.product).size() == 1);
  auto objects = ws.objects();
  CHECK(count_objects(objects, private_key, p.label) == 1);
  CHECK(count_objects(objects, certificate) >= 1);
}

TEST_CASE("a chain that does not lead to --trust is refused: exit 4, no certificate written on the token") {
  CertCentralSim sim({"--auto-approve", "--foreign-chain"});
  Workspace ws;
  Provision p = quick_job("foreign");
  p.extra = {"--trust", sim.ca_file()};
  auto run = ws.provision(sim, p);
  CHECK_MESSAGE(run.exit_code == 4, "exit " << run.exit_code << "\n" << run.err);
  CHECK(run.err.find("does not lead to the trust anchors") != std::string::npos);
  CHECK(order_posts(sim, p.product).size() == 1);
  CHECK(count_objects(ws.objects(), certificate) == 0);
}

TEST_CASE("--no-wait exits 5 while the CA works; the same command without it resumes and installs, one order") {
  CertCentralSim sim({"--auto-approve", "--issue-after-polls", "3"});
  Workspace ws;
  Provision p = quick_job("later");
  p.extra = {"--no-wait"};
  auto waiting = ws.provision(sim, p);
  REQUIRE_MESSAGE(waiting.exit_code == 5, "exit " << waiting.exit_code << "\n" << waiting.err);
  CHECK(order_posts(sim, p.product).size() == 1);
  CHECK(count_objects(ws.objects(), certificate) == 0);
  json waiting_out = json::parse(waiting.out, nullptr, false);
  if (!waiting.out.empty()) {
    REQUIRE_MESSAGE(!waiting_out.is_discarded(), waiting.out);
    CHECK(waiting_out.value("state", "") == "CA_WORKING");
  }

  p.extra = {"--poll-interval", "1s"};  // the default minute between looks would make this test slow
  auto done = ws.provision(sim, p);
  json out = check_installed(ws, sim, p, done);
  if (waiting_out.is_object() && waiting_out.contains("job_id")) CHECK(as_text(out["job_id"]) == as_text(waiting_out["job_id"]));
}

TEST_CASE("--job ID alone continues a waiting job: profile, product, label and token come from the journal") {
  CertCentralSim sim({"--auto-approve", "--issue-after-polls", "3"});
  Workspace ws;
  Provision p = quick_job("by-id");
  p.extra = {"--no-wait"};
  auto waiting = ws.provision(sim, p);
  REQUIRE_MESSAGE(waiting.exit_code == 5, "exit " << waiting.exit_code << "\n" << waiting.err);
  const std::string job_id = as_text(json::parse(waiting.out)["job_id"]);

  auto done = ws.agent(sim, {"--json", "provision", "--job", job_id, "--pin-source", "file:" + ws.path("pin"),
                             "--poll-interval", "1s", "--timeout", "60s"});
  REQUIRE_MESSAGE(done.exit_code == 0, "exit " << done.exit_code << "\n" << done.err);
  json out = json::parse(done.out);
  CHECK(as_text(out["job_id"]) == job_id);
  CHECK(out["state"] == "MONITORING");
  CHECK(out["key_label"] == "by-id");
  CHECK(order_posts(sim, p.product).size() == 1);
  CHECK(count_objects(ws.objects(), certificate, "by-id") == 1);
}

TEST_CASE("--all provisions every token at once, one job and one order per token") {
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  ws.add_token("e2e-second");
  const std::string order_file = ws.write("order-all.json", ssl_order_body("e2e.example.nl"));
  auto ran = ws.agent(sim, {"--json", "provision", "--all", "--pin-source", "file:" + ws.path("pin"), "--profile", "generic",
                            "--product", "ssl_basic", "--key-type", "ec:p256", "--label", "fleet", "--set", "C=NL", "--set",
                            "O=Voorbeeld BV", "--set", "CN=e2e.example.nl", "--order-file", order_file, "--timeout", "60s"});
  REQUIRE_MESSAGE(ran.exit_code == 0, "exit " << ran.exit_code << "\n" << ran.err);
  json out = json::parse(ran.out);
  REQUIRE(out["jobs"].size() == 2);
  std::set<std::string> tokens;
  std::set<std::string> orders;
  for (const auto& job : out["jobs"]) {
    CHECK(job["state"] == "MONITORING");
    tokens.insert(as_text(job["token_label"]));
    orders.insert(as_text(job["order_id"]));
  }
  CHECK(tokens == std::set<std::string>{"e2e", "e2e-second"});
  CHECK(orders.size() == 2);
  CHECK(order_posts(sim, "ssl_basic").size() == 2);
  CHECK(count_objects(ws.objects(), certificate, "fleet") == 1);  // the first token, read back by pkcs11-tool
}

// The readers above, on a token set up by the single-step commands (keygen, csr, order submit,
// install --order): what provision must reproduce in one command, and proof that the checks
// accept a correct result.
TEST_CASE("the same result by hand, step by step, passes the same checks") {
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  std::string pin_source = "file:" + ws.path("pin");
  auto made = ws.agent(sim, {"--json", "keygen", "--token", "pkcs11:token=e2e", "--pin-source", pin_source, "--key-type",
                             "ec:p256", "--label", "hand"});
  REQUIRE_MESSAGE(made.exit_code == 0, made.err);
  std::string uri = json::parse(made.out)["uri"];
  auto csr = ws.agent(sim, {"csr", "--key", uri, "--pin-source", pin_source, "--profile", "generic", "--set", "C=NL", "--set",
                            "O=Voorbeeld BV", "--set", "CN=e2e.example.nl", "--out", ws.path("hand.csr")});
  REQUIRE_MESSAGE(csr.exit_code == 0, csr.err);
  auto placed = ws.agent(sim, {"--json", "order", "submit", "--product", "ssl_basic", "--csr", ws.path("hand.csr"),
                               "--order-file", ws.write("hand.json", ssl_order_body("e2e.example.nl"))});
  REQUIRE_MESSAGE(placed.exit_code == 0, placed.err);
  std::string order_id = as_text(json::parse(placed.out)["order_id"]);
  auto installed = ws.agent(sim, {"install", "--key", uri, "--order", order_id, "--trust", sim.ca_file()});
  REQUIRE_MESSAGE(installed.exit_code == 0, installed.err);

  CHECK(order_posts(sim, "ssl_basic").size() == 1);
  std::string serial = sim.orders()[order_id]["certificate"]["serial_number"];
  auto [id, leaf_sha256] = check_token_and_chain(ws, sim, "hand", uri, serial);
  CHECK(id == id_of_uri(uri));
  CHECK(leaf_sha256.size() == 64);
}

TEST_CASE("bad input is refused before anything changes: exit 2 (or 3 for a wrong PIN), token, CA and journal untouched") {
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  Provision server{"pkio-server", "pkio_private_services_server", "ec:p256", "server",
                   {"--subject-file", golden_subject("pkio-server")},
                   server_order_body("gemeente-voorbeeld.qvtl.nl", "00000003123456780000"), {}, {}};

  SUBCASE("an EC key for pkio-server") {
    auto run = ws.provision(sim, server);
    CHECK_MESSAGE(run.exit_code == 2, run.err);
    CHECK(run.err.find("PKIO-SERVER-KEY-RSA") != std::string::npos);
  }
  SUBCASE("an order file with a field CertCentral does not have") {
    server.key_type = "rsa:2048";
    server.order_body = R"({"certificat": {}})";
    auto run = ws.provision(sim, server);
    CHECK_MESSAGE(run.exit_code == 2, run.err);
    CHECK(run.err.find(".json:1: certificat: is not a field of the order body; did you mean certificate?") != std::string::npos);
  }
  SUBCASE("a misspelt certificate field, on its own line") {
    server.key_type = "rsa:2048";
    server.order_body = "{\"organization\": {\"id\": 112233},\n \"certificate\": {\n  \"signature_hash\": \"sha256\",\n  \"commmon_name\": \"x\"}}";
    auto run = ws.provision(sim, server);
    CHECK_MESSAGE(run.exit_code == 2, run.err);
    CHECK(run.err.find(".json:4: certificate.commmon_name: is not a field of the certificate; did you mean common_name?") !=
          std::string::npos);
  }
  SUBCASE("a PIN file others may read") {
    server.key_type = "rsa:2048";
    std::string open_pin = ws.write("open-pin", user_pin);
    std::filesystem::permissions(open_pin, std::filesystem::perms::group_read | std::filesystem::perms::others_read,
                                 std::filesystem::perm_options::add);
    server.pin_source = "file:" + open_pin;
    auto run = ws.provision(sim, server);
    CHECK_MESSAGE(run.exit_code == 2, run.err);
    CHECK(run.err.find("chmod 600") != std::string::npos);
  }
  SUBCASE("a wrong PIN") {
    server.key_type = "rsa:2048";
    server.pin_source = "file:" + ws.write("wrong-pin", "654321");
    auto run = ws.provision(sim, server);
    CHECK_MESSAGE(run.exit_code == 3, run.err);
    CHECK(run.err.find("CKR_PIN_INCORRECT") != std::string::npos);
  }
  SUBCASE("a QSCD product, whose key DigiCert makes on a token it ships") {
    server.profile = "pkio-eseal";
    server.product = "pkio_qualified_organisation_services";
    server.key_type = "rsa:3072";
    server.subject = {"--subject-file", golden_subject("pkio-eseal")};
    server.order_body = R"({"certificate": {"signature_hash": "sha256", "profile_option": "nonrepudiation"},
      "csa_agreed_to": true, "provisioning_method": "qscd", "organization": {"id": 112233}, "order_validity": {"years": 1},
      "ship_info": {"name": "J", "addr1": "a", "addr2": "b", "city": "c", "state": "d", "zip": "e", "country": "nl", "method": "STANDARD"}})";
    auto run = ws.provision(sim, server);
    CHECK_MESSAGE(run.exit_code == 2, run.err);
    CHECK(run.err.find("provisioning_method qscd") != std::string::npos);
  }
  check_untouched(ws, sim);
}

TEST_CASE("--timeout reached while the CA works: exit 5, the order placed once, nothing installed yet") {
  CertCentralSim sim({"--auto-approve", "--issue-after-polls", "1000"});
  Workspace ws;
  Provision p = quick_job("slow");
  p.extra = {"--timeout", "2s", "--poll-interval", "1s"};
  auto run = ws.provision(sim, p);
  CHECK_MESSAGE(run.exit_code == 5, "exit " << run.exit_code << "\n" << run.err);
  json out = json::parse(run.out, nullptr, false);
  REQUIRE_MESSAGE(out.is_object(), run.out);
  CHECK(out.value("state", "") == "CA_WORKING");
  auto posts = order_posts(sim, p.product);
  REQUIRE(posts.size() == 1);
  CHECK(as_text(out["order_id"]) == as_text(posts[0]["order_id"]));
  CHECK(count_objects(ws.objects(), certificate) == 0);
}

TEST_CASE("a public key already labelled as the new job's key, without its private key: exit 2, nothing changed") {
  // A resume removes a lone public key under its job's label as the one its killed run left, so a
  // new job must not start on a label some other public key already has.
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  const std::string key_file = ws.path("lone.pem");
  const std::string public_file = ws.path("lone.der");
  auto made = qscd::test::run_command({"openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                                       "-out", key_file});
  REQUIRE_MESSAGE(made.exit == 0, made.err);
  auto exported = qscd::test::run_command({"openssl", "pkey", "-in", key_file, "-pubout", "-outform", "DER", "-out", public_file});
  REQUIRE_MESSAGE(exported.exit == 0, exported.err);
  auto written = qscd::test::run_command({"pkcs11-tool", "--module", qscd::test::softhsm_module, "--token-label", token_label,
                                          "--login", "--pin", user_pin, "--write-object", public_file, "--type",
                                          "pubkey", "--label", "lone", "--id", "07"});
  REQUIRE_MESSAGE(written.exit == 0, written.err);

  Provision p = quick_job("lone");
  auto refused = ws.provision(sim, p);
  CHECK(refused.exit_code == 2);
  CHECK(refused.err.find("--label") != std::string::npos);
  CHECK(refused.err.find("already holds a public key labelled 'lone' without its private key") != std::string::npos);
  auto objects = ws.objects();
  CHECK(objects.size() == 1);
  CHECK(count_objects(objects, public_key, "lone") == 1);
  // Nothing at the CA either: at most the read-only check of the API key, made after the login.
  for (const auto& line : settled_audit(sim)) CHECK(line.value("method", "") == "GET");
  auto jobs = ws.agent(sim, {"--json", "jobs"});
  REQUIRE_MESSAGE(jobs.exit_code == 0, jobs.err);
  CHECK(json::parse(jobs.out)["jobs"].empty());
}

TEST_CASE("provision --key uses a key made beforehand: no second key, the certificate on that key") {
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  auto made = ws.agent(sim, {"--json", "keygen", "--token", "pkcs11:token=e2e", "--pin-source", "file:" + ws.path("pin"),
                             "--key-type", "ec:p256", "--label", "pre"});
  REQUIRE_MESSAGE(made.exit_code == 0, made.err);
  Provision p = quick_job("pre");
  p.key_type.clear();
  p.extra = {"--key", json::parse(made.out)["uri"].get<std::string>()};
  check_installed(ws, sim, p, ws.provision(sim, p));
}

// The real API's rough edges at once (tests/certcentral-sim/README.md): the chain in the POST
// answer, the end entity twice in the download, ids as strings, fields nobody knows. The agent
// must install the same result as against the plain sim.
TEST_CASE("provision against the real API's rough edges: chain in the POST answer, a repeated certificate, string ids, unknown fields") {
  CertCentralSim sim({"--auto-approve", "--chain-in-post", "--repeat-certificate", "--ids-as-strings", "--extra-fields"});
  Workspace ws;
  Provision p = quick_job("rough");
  check_installed(ws, sim, p, ws.provision(sim, p));
  // Installed from the POST answer's certificate_chain: no download round trip.
  for (const auto& line : settled_audit(sim)) CHECK(line.value("path", "").find("/download/") == std::string::npos);
}

TEST_CASE("a certificate id in the POST answer of an order not issued yet is not taken for issuance: the agent waits, then installs") {
  CertCentralSim sim({"--auto-approve", "--certificate-id-on-approval", "--issue-after-polls", "2"});
  Workspace ws;
  Provision p = quick_job("early-id");
  p.extra = {"--poll-interval", "1s"};
  check_installed(ws, sim, p, ws.provision(sim, p));
  for (const auto& line : settled_audit(sim)) {
    if (line.value("path", "").find("/download/") != std::string::npos) CHECK(line.value("status", 0) == 200);
  }
}

TEST_CASE("a CA that answers 429 to every request until --timeout: exit 4 (nothing was ordered), not 5; the job is saved") {
  CertCentralSim sim({"--auto-approve", "--fail-429-every", "1", "--retry-after", "1"});
  Workspace ws;
  Provision p = quick_job("limited");
  p.extra = {"--timeout", "8s"};
  auto run = ws.provision(sim, p);
  CHECK_MESSAGE(run.exit_code == 4, "exit " << run.exit_code << "\n" << run.err);
  CHECK(sim_orders(sim).empty());
  json out = json::parse(run.out, nullptr, false);
  REQUIRE(out.is_object());
  CHECK(out.value("state", "") != "FAILED");
}

// Issue 18, defect 3: every local input is read before the token is touched, and what the CA can
// tell at once (the account's organizations, the product) is asked before the key pair is made.
// Each refusal leaves no key and no job, and the same command with the input fixed then finishes
// with one key and one order.
TEST_CASE("provision: a bad --trust, --ca-file, product or organization is refused before the key pair; the fixed command finishes") {
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  const std::string garbage = ws.write("garbage.bin", std::string("\x01\x02not a certificate\xff", 21));
  Provision p = quick_job("checked");

  struct Case {
    const char* name;
    std::function<void(Provision&, Workspace&)> spoil;
    std::string expected;
    bool asks_the_ca;  // refused on the CA's word: GETs only, never a POST
  };
  const std::vector<Case> cases = {
      {"--trust garbage", [&](Provision& q, Workspace&) { q.extra = {"--trust", garbage}; }, "--trust: ", false},
      {"--ca-file garbage", [&](Provision&, Workspace& w) { w.use_ca_file(garbage); }, "--ca-file: ", false},
      {"--product not a name_id", [](Provision& q, Workspace&) { q.product = "ssl basic/../x"; }, "--product: 'ssl basic/../x' is not a CertCentral product name_id", false},
      {"--product unknown to the CA", [](Provision& q, Workspace&) { q.product = "nosuch_product"; }, "--product: CertCentral has no product 'nosuch_product'", true},
      {"an organization unknown to the CA",
       [](Provision& q, Workspace&) {
         q.order_body = json{{"organization", {{"id", 999999}}}, {"order_validity", {{"years", 1}}},
                             {"certificate", {{"common_name", "e2e.example.nl"}, {"dns_names", {"e2e.example.nl"}}}}}.dump();
       },
       "--order-file: organization.id 999999 is not an organization of this CertCentral account (it has: 112233", true},
  };
  for (const Case& c : cases) {
    INFO(std::string(c.name));
    Provision spoiled = p;
    c.spoil(spoiled, ws);
    auto run = ws.provision(sim, spoiled);
    ws.use_ca_file({});
    CHECK_MESSAGE(run.exit_code == 2, run.err);
    CHECK_MESSAGE(run.err.find(c.expected) != std::string::npos, run.err);
    CHECK(ws.objects().empty());
    CHECK(changing_requests(sim) == 0);
    if (!c.asks_the_ca) CHECK(settled_audit(sim).empty());
    auto jobs = ws.agent(sim, {"--json", "jobs"});
    REQUIRE_MESSAGE(jobs.exit_code == 0, jobs.err);
    CHECK(json::parse(jobs.out)["jobs"].empty());
  }
  auto fixed = ws.provision(sim, p);
  CHECK_MESSAGE(fixed.exit_code == 0, fixed.err);
  CHECK(order_posts(sim, p.product).size() == 1);
  CHECK(count_objects(ws.objects(), private_key) == 1);
}

TEST_CASE("a job that failed before any order was placed: the same command, fixed, takes over its key pair; one key, one order") {
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  Provision p = quick_job("again");
  // ssl_basic takes no provisioning_method: the CA refuses the POST (400), no order exists.
  json body = json::parse(p.order_body);
  body["provisioning_method"] = "csr";
  Provision refused = p;
  refused.order_body = body.dump();
  auto first = ws.provision(sim, refused);
  CHECK_MESSAGE(first.exit_code != 0, first.err);
  CHECK(sim_orders(sim).empty());
  REQUIRE(count_objects(ws.objects(), private_key, p.label) == 1);

  auto again = ws.provision(sim, p);
  CHECK_MESSAGE(again.exit_code == 0, again.err);
  CHECK(again.err.find("taking over the key pair") != std::string::npos);
  // Two POSTs: the refused one (400, no order) and the order.
  auto posts = order_posts(sim, p.product);
  REQUIRE(posts.size() == 2);
  CHECK(posts[0].value("status", 0) == 400);
  CHECK(posts[1].value("status", 0) == 201);
  CHECK(sim_orders(sim).size() == 1);
  auto objects = ws.objects();
  CHECK(count_objects(objects, private_key) == 1);
  CHECK(count_objects(objects, public_key) == 1);
  CHECK(count_objects(objects, certificate, p.label) == 1);
}
