// install / export / jobs through the qscd-agent binary on a real SoftHSM2
// token; the token is read back independently with pkcs11-tool.
#include <doctest/doctest.h>

#include <openssl/x509.h>

#include <fstream>
#include <regex>

#include "../certs/test_pki.hpp"
#include "../unit/scratch_dir.hpp"
#include "certs/certbundle.hpp"
#include "cli/job_report.hpp"
#include "journal/journal.hpp"
#include "process.hpp"
#include "softhsm.hpp"

using qscd::test::run_agent;
using qscd::test::softhsm_module;
using namespace qscd::agent;

namespace {

// Runs a tool and captures stdout + stderr.
qscd::test::Outcome run_tool(const std::vector<std::string>& argv) {
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(pipe_fds[1], 1);
    ::dup2(pipe_fds[1], 2);
    ::close(pipe_fds[0]);
    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  qscd::test::Outcome outcome;
  char buffer[4096];
  ssize_t n = 0;
  while ((n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0) outcome.out.append(buffer, static_cast<std::size_t>(n));
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  outcome.exit = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return outcome;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t found = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++found;
  return found;
}

const test_pki::Subject seal_subject{{{"C", "NL"}, {"O", "Gemeente Testdorp"}, {"CN", "Testdorp seal"}}};

// A token "inst" with an EC key (CKA_ID 01, label "seal") made by pkcs11-tool,
// and a test CA that issues for it.
struct TokenFixture {
  qscd::test::SoftHsm hsm;
  ScratchDir dir;
  test_pki::Ca ca{"Install PKI"};
  ossl::EvpPkeyPtr token_key;
  std::string key_uri = "pkcs11:token=inst;id=%01";

  TokenFixture() {
    hsm.add_token("inst");
    auto made = run_tool({"pkcs11-tool", "--module", softhsm_module, "--token-label", "inst", "--login", "--pin",
                          "123456", "--keypairgen", "--key-type", "EC:prime256v1", "--id", "01", "--label", "seal"});
    REQUIRE_MESSAGE(made.exit == 0, made.out);
    auto pub = dir.path() / "pub.der";
    auto read = run_tool({"pkcs11-tool", "--module", softhsm_module, "--token-label", "inst", "--read-object", "--type",
                          "pubkey", "--id", "01", "-o", pub.string()});
    REQUIRE_MESSAGE(read.exit == 0, read.out);
    std::string der = qscd::test::slurp(pub.string());
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    token_key.reset(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
    REQUIRE(token_key != nullptr);
  }

  ossl::X509Ptr leaf(EVP_PKEY* key, long serial = 10) const {
    return ca.leaf(key, test_pki::CertOptions{seal_subject, false, "critical,nonRepudiation", false, -1, 365, serial});
  }

  std::string write(const std::string& name, const std::string& content) const {
    auto path = dir.path() / name;
    std::ofstream(path, std::ios::binary) << content;
    return path.string();
  }

  qscd::test::Outcome agent(std::vector<std::string> args) const {
    args.insert(args.end(), {"--module", softhsm_module, "--state-dir", (dir.path() / "state").string()});
    return run_agent(args);
  }

  // What pkcs11-tool sees on the token without logging in.
  [[nodiscard]] std::string objects() const {
    auto listed = run_tool({"pkcs11-tool", "--module", softhsm_module, "--token-label", "inst", "-O"});
    REQUIRE(listed.exit == 0);
    return listed.out;
  }
};

}  // namespace

TEST_CASE("install a PEM chain twice: one certificate with the key's ID and label, the intermediate once") {
  TokenFixture f;
  auto leaf = f.leaf(f.token_key.get());
  auto chain = f.write("chain.pem", test_pki::pem(leaf.get()) + test_pki::pem(f.ca.intermediate.get()));
  auto trust = f.write("root.pem", test_pki::pem(f.ca.root.get()));

  auto first = f.agent({"install", "--key", f.key_uri, "--cert", chain, "--trust", trust, "--json"});
  REQUIRE_MESSAGE(first.exit == 0, first.err);
  auto doc = nlohmann::json::parse(first.out);
  CHECK(doc["end_entity"]["created"] == true);
  CHECK(doc["intermediates"][0]["created"] == true);
  CHECK(doc["chain_verified"] == true);
  CHECK(doc["key_id"] == "01");

  auto second = f.agent({"install", "--key", f.key_uri, "--cert", chain, "--trust", trust, "--json"});
  REQUIRE_MESSAGE(second.exit == 0, second.err);
  doc = nlohmann::json::parse(second.out);
  CHECK(doc["end_entity"]["created"] == false);
  CHECK(doc["intermediates"][0]["created"] == false);

  std::string objects = f.objects();
  CAPTURE(objects);
  CHECK(count(objects, "Certificate Object") == 2);
  // The key and its certificate share ID 01 and label "seal"; the intermediate has its CN.
  std::regex key_and_cert(R"(Public Key Object[^\n]*\n(?:  [^\n]*\n)*?  label:\s+seal\n(?:  [^\n]*\n)*?  ID:\s+01)");
  CHECK(std::regex_search(objects, key_and_cert));
  std::regex cert_with_id(R"(Certificate Object; type = X\.509 cert\n  label:\s+seal\n(?:  [^\n]*\n)*?  ID:\s+01)");
  CHECK(std::regex_search(objects, cert_with_id));
  CHECK(count(objects, "label:      Install PKI Issuing CA") == 1);
}

TEST_CASE("a module that cannot destroy the staged session object: the install still sees one copy on the token") {
  // create_on_token stages each certificate as a session object; if it stays, the lookups
  // (CKA_TOKEN true) must not count it as the token's.
  TokenFixture f;
  auto leaf = f.leaf(f.token_key.get());
  auto chain = f.write("chain.pem", test_pki::pem(leaf.get()) + test_pki::pem(f.ca.intermediate.get()));
  auto trust = f.write("root.pem", test_pki::pem(f.ca.root.get()));
  const char* shim = std::getenv("QSCD_P11SHIM");
  REQUIRE(shim != nullptr);
  qscd::test::Outcome installed;
  {
    qscd::test::ScopedEnv fail_destroy("QSCD_SHIM_FAIL", "C_DestroyObject:CKR_FUNCTION_FAILED");
    installed = run_agent({"install", "--key", f.key_uri, "--cert", chain, "--trust", trust, "--json", "--module", shim,
                           "--state-dir", (f.dir.path() / "state").string()});
  }
  REQUIRE_MESSAGE(installed.exit == 0, installed.err);
  std::string objects = f.objects();
  CAPTURE(objects);
  CHECK(count(objects, "Certificate Object") == 2);
}

TEST_CASE("DER and p7b inputs; an older certificate for the key is replaced, the chain added once") {
  TokenFixture f;
  auto first_leaf = f.leaf(f.token_key.get(), 20);
  auto der = test_pki::der(first_leaf.get());
  auto der_file = f.write("cert.der", std::string(der.begin(), der.end()));
  // A lone DER end entity, no --trust: installed with a warning, no chain.
  auto lone = f.agent({"install", "--key", f.key_uri, "--cert", der_file});
  REQUIRE_MESSAGE(lone.exit == 0, lone.err);
  CHECK(lone.err.find("installing the chain as given") != std::string::npos);
  CHECK(count(f.objects(), "Certificate Object") == 1);

  // A reissue as DER PKCS#7 with root and intermediate: the new end entity
  // replaces the old one, the intermediate is added, the root is not stored.
  auto reissued = f.leaf(f.token_key.get(), 21);
  auto trust = f.write("root.pem", test_pki::pem(f.ca.root.get()));
  auto p7 = f.write("chain.p7b", test_pki::p7b({f.ca.root.get(), f.ca.intermediate.get(), reissued.get()}, false));
  auto from_p7 = f.agent({"install", "--key", f.key_uri, "--cert", p7, "--trust", trust, "--json"});
  REQUIRE_MESSAGE(from_p7.exit == 0, from_p7.err);
  CHECK(nlohmann::json::parse(from_p7.out)["replaced"] == 1);
  std::string objects = f.objects();
  CHECK(count(objects, "Certificate Object") == 2);
  CHECK(count(objects, "Install PKI Root") == 0);

  // The same as PEM PKCS#7: nothing new.
  auto p7_pem = f.write("chain.p7c", test_pki::p7b({f.ca.intermediate.get(), reissued.get()}, true));
  auto again = f.agent({"install", "--key", f.key_uri, "--cert", p7_pem, "--trust", trust, "--json"});
  REQUIRE_MESSAGE(again.exit == 0, again.err);
  CHECK(nlohmann::json::parse(again.out)["end_entity"]["created"] == false);
  CHECK(count(f.objects(), "Certificate Object") == 2);
}

TEST_CASE("a certificate for another key writes nothing and exits 4") {
  TokenFixture f;
  auto other_key = test_pki::ec_key();
  auto leaf = f.leaf(other_key.get());
  auto chain = f.write("other.pem", test_pki::pem(leaf.get()) + test_pki::pem(f.ca.intermediate.get()));
  auto outcome = f.agent({"install", "--key", f.key_uri, "--cert", chain});
  CHECK(outcome.exit == 4);
  CHECK(outcome.err.find("the certificate is not for this key") != std::string::npos);
  CHECK(count(f.objects(), "Certificate Object") == 0);
}

TEST_CASE("a chain that does not lead to --trust is refused and nothing is written") {
  TokenFixture f;
  auto leaf = f.leaf(f.token_key.get());
  auto chain = f.write("chain.pem", test_pki::pem(leaf.get()) + test_pki::pem(f.ca.intermediate.get()));
  test_pki::Ca foreign("Foreign PKI");
  auto foreign_trust = f.write("foreign.pem", test_pki::pem(foreign.root.get()));
  auto outcome = f.agent({"install", "--key", f.key_uri, "--cert", chain, "--trust", foreign_trust});
  CHECK(outcome.exit == 4);
  CHECK(outcome.err.find("does not lead to the trust anchors in") != std::string::npos);
  CHECK(count(f.objects(), "Certificate Object") == 0);
}

TEST_CASE("an expired certificate, or a seal without nonRepudiation, is refused before writing") {
  TokenFixture f;
  auto trust = f.write("root.pem", test_pki::pem(f.ca.root.get()));
  auto expired = f.ca.leaf(f.token_key.get(), test_pki::CertOptions{seal_subject, false, "critical,nonRepudiation",
                                                                     false, -100, -1, 30});
  auto expired_file = f.write("expired.pem", test_pki::pem(expired.get()) + test_pki::pem(f.ca.intermediate.get()));
  auto outcome = f.agent({"install", "--key", f.key_uri, "--cert", expired_file, "--trust", trust});
  CHECK(outcome.exit == 4);
  CHECK(outcome.err.find("the certificate is not valid now") != std::string::npos);

  auto signing = f.ca.leaf(f.token_key.get(), test_pki::CertOptions{seal_subject, false, "critical,digitalSignature"});
  auto signing_file = f.write("signing.pem", test_pki::pem(signing.get()) + test_pki::pem(f.ca.intermediate.get()));
  outcome = f.agent({"install", "--key", f.key_uri, "--cert", signing_file, "--trust", trust, "--profile", "pkio-eseal",
                     "--product", "pkio_qualified_organisation_services"});
  CHECK(outcome.exit == 4);
  CHECK(outcome.err.find("a seal certificate without key usage nonRepudiation") != std::string::npos);
  CHECK(outcome.err.find("absent: qcStatement QcCompliance") != std::string::npos);
  CHECK(outcome.err.find("FAILED: the certificate is not a qualified seal certificate") != std::string::npos);
  CHECK(count(f.objects(), "Certificate Object") == 0);
}

TEST_CASE("install says what a seal certificate is, and refuses one less than --expect or the product promises") {
  TokenFixture f;
  auto trust = f.write("root.pem", test_pki::pem(f.ca.root.get()));
  test_pki::CertOptions advanced_options{seal_subject, false, "critical,nonRepudiation", true};
  advanced_options.qcp_l_only = true;
  auto advanced = f.ca.leaf(f.token_key.get(), advanced_options);
  auto advanced_file = f.write("advanced.pem", test_pki::pem(advanced.get()) + test_pki::pem(f.ca.intermediate.get()));
  // An advanced e-seal (QCP-l) where a qualified one on a QSCD is expected: exit 4, nothing written.
  auto refused = f.agent({"install", "--key", f.key_uri, "--cert", advanced_file, "--trust", trust, "--profile", "pkio-eseal",
                          "--product", "eu_eseal", "--expect", "qualified"});
  CHECK(refused.exit == 4);
  CHECK(refused.err.find("less than the qualified e-seal on a QSCD (QCP-l-qscd) the order promises") != std::string::npos);
  CHECK(refused.err.find("lacks certificate policy QCP-l-qscd (0.4.0.194112.1.3), qcStatement QcSSCD") != std::string::npos);
  CHECK(count(f.objects(), "Certificate Object") == 0);
  // The same certificate for eu_eseal without --expect: what the product promises, installed.
  auto installed = f.agent({"--json", "install", "--key", f.key_uri, "--cert", advanced_file, "--trust", trust, "--profile",
                            "pkio-eseal", "--product", "eu_eseal"});
  REQUIRE_MESSAGE(installed.exit == 0, installed.err);
  CHECK(installed.err.find("ok: the certificate is advanced e-seal (QCP-l") != std::string::npos);
  auto doc = nlohmann::json::parse(installed.out);
  CHECK(doc["checks"]["seal"]["level"] == "advanced_qcp_l");
  CHECK(doc["checks"]["seal"]["promised"] == "advanced_qcp_l");
  // A bad --expect is refused before the token is touched.
  auto bad = f.agent({"install", "--key", f.key_uri, "--cert", advanced_file, "--expect", "qscd"});
  CHECK(bad.exit == 2);
  CHECK(bad.err.find("--expect: 'qscd' is not a seal level") != std::string::npos);
}

TEST_CASE("export writes the stored chain as PEM, DER and p7b") {
  TokenFixture f;
  auto leaf = f.leaf(f.token_key.get());
  auto chain = f.write("chain.pem", test_pki::pem(leaf.get()) + test_pki::pem(f.ca.intermediate.get()));
  auto trust = f.write("root.pem", test_pki::pem(f.ca.root.get()));
  REQUIRE(f.agent({"install", "--key", f.key_uri, "--cert", chain, "--trust", trust}).exit == 0);

  auto pem = f.agent({"export", "--key", f.key_uri});
  REQUIRE_MESSAGE(pem.exit == 0, pem.err);
  CHECK(pem.out == test_pki::pem(leaf.get()) + test_pki::pem(f.ca.intermediate.get()));

  auto p7b_file = (f.dir.path() / "out.p7b").string();
  REQUIRE(f.agent({"export", "--key", f.key_uri, "--format", "p7b", "--out", p7b_file}).exit == 0);
  auto printed = run_tool({"openssl", "pkcs7", "-inform", "DER", "-in", p7b_file, "-print_certs", "-noout"});
  CHECK(printed.exit == 0);
  CHECK(count(printed.out, "subject=") == 2);

  auto der_file = (f.dir.path() / "out.der").string();
  REQUIRE(f.agent({"export", "--key", f.key_uri, "--format", "der", "--out", der_file}).exit == 0);
  auto der = test_pki::der(leaf.get());
  CHECK(qscd::test::slurp(der_file) == std::string(der.begin(), der.end()));

  // --out replaces a symlink there instead of writing through it.
  auto victim = f.write("victim", "untouched");
  auto linked = (f.dir.path() / "linked.pem").string();
  std::filesystem::create_symlink(victim, linked);
  REQUIRE(f.agent({"export", "--key", f.key_uri, "--out", linked}).exit == 0);
  CHECK(qscd::test::slurp(victim) == "untouched");
  CHECK(qscd::test::slurp(linked) == pem.out);

  // DER to stdout when stdout is a pipe (as here) or a file: the bytes as they are, no newline.
  auto binary_to_stdout = f.agent({"export", "--key", f.key_uri, "--format", "der"});
  CHECK_MESSAGE(binary_to_stdout.exit == 0, binary_to_stdout.err);
  CHECK(binary_to_stdout.out == std::string(der.begin(), der.end()));
  // Not into --json's document.
  auto binary_in_json = f.agent({"--json", "export", "--key", f.key_uri, "--format", "der"});
  CHECK(binary_in_json.exit == 2);
  CHECK(binary_in_json.err.find("--json prints its document on stdout: give --out FILE") != std::string::npos);

  // Subjects in the certificate's own order, in every command (not RFC 4514's reversed one).
  auto listed = f.agent({"tokens"});
  CHECK_MESSAGE(listed.out.find("C=NL, O=Gemeente Testdorp") != std::string::npos, listed.out);
  auto exported = nlohmann::json::parse(f.agent({"--json", "export", "--key", f.key_uri}).out);
  CHECK(exported["certificates"][0]["subject"].get<std::string>().starts_with("C=NL, O=Gemeente Testdorp"));

  // A key without a certificate.
  auto none = f.agent({"export", "--key", "pkcs11:token=inst;id=%02"});
  CHECK(none.exit == 3);
}

TEST_CASE("jobs lists the journal and jobs show prints the evidence record") {
  ScratchDir dir;
  std::int64_t id = 0;
  {
    auto journal = Journal::open(dir.path());
    NewJob job;
    job.key = {"serial1", "seal", "pkio-eseal", "pkio_qualified_organisation_services"};
    job.token_model = "SoftHSM v2";
    job.token_manufacturer = "SoftHSM project";
    job.operator_name = "officer";
    id = journal.create(job).id;
    journal.claim(id);
    JobUpdate intent;
    intent.key_id_hex = "01";
    journal.transition(id, JobState::need_key_pair, JobState::generating_key_pair, "", intent);
    journal.transition(id, JobState::generating_key_pair, JobState::need_token, "token removed");
    journal.record_error(id, "CKR_DEVICE_REMOVED");
  }
  auto state_dir = dir.path().string();
  auto list = run_agent({"jobs", "--state-dir", state_dir, "--json"});
  REQUIRE_MESSAGE(list.exit == 0, list.err);
  auto doc = nlohmann::json::parse(list.out);
  REQUIRE(doc["jobs"].size() == 1);
  CHECK(doc["jobs"][0]["state"] == "NEED_TOKEN");
  CHECK(doc["jobs"][0]["waiting_from"] == "NEED_KEY_PAIR");
  CHECK(doc["jobs"][0]["last_error"] == "CKR_DEVICE_REMOVED");

  auto text = run_agent({"jobs", "--state-dir", state_dir});
  CHECK(text.out.find("NEED_TOKEN") != std::string::npos);
  CHECK(text.out.find("last error: CKR_DEVICE_REMOVED") != std::string::npos);

  auto one = run_agent({"jobs", std::to_string(id), "--state-dir", state_dir, "--json"});
  REQUIRE_MESSAGE(one.exit == 0, one.err);
  CHECK(nlohmann::json::parse(one.out)["steps"].size() == 4);

  auto show = run_agent({"jobs", "show", std::to_string(id), "--state-dir", state_dir, "--json"});
  REQUIRE_MESSAGE(show.exit == 0, show.err);
  auto evidence = nlohmann::json::parse(show.out);
  CHECK(evidence["token"]["model"] == "SoftHSM v2");
  CHECK(evidence["key"]["id"] == "01");
  CHECK(evidence["operator"] == "officer");
  CHECK(evidence["steps"][1]["state"] == "GENERATING_KEY_PAIR");
  CHECK(evidence["job_tag"].get<std::string>().starts_with("qscd-"));

  auto missing = run_agent({"jobs", "show", "99", "--state-dir", state_dir});
  CHECK(missing.exit == 2);
}
