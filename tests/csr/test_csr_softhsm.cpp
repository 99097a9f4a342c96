// The CSR signed on a real SoftHSM2 token: in process through TokenSigner, and through the
// qscd-agent binary (`csr`, `csr check`), with openssl as the independent verifier.
#include <doctest/doctest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "csr/builder.hpp"
#include "csr/token_signer.hpp"
#include "csr_test_support.hpp"
#include "process.hpp"
#include "qscd/pkcs11/error.hpp"
#include "qscd/pkcs11/keys.hpp"
#include "qscd/pkcs11/login.hpp"
#include "qscd/pkcs11/module.hpp"
#include "qscd/pkcs11/session.hpp"
#include "qscd/pkcs11/uri.hpp"
#include "softhsm.hpp"

using namespace qscd::agent::csr;
namespace ossl = qscd::agent::ossl;
using csr_test::quote;
using qscd::test::SoftHsm;
using qscd::test::softhsm_module;

namespace p11 = qscd::p11;

namespace {

constexpr const char* user_pin = "123456";

std::span<const unsigned char> pin_bytes() { return {reinterpret_cast<const unsigned char*>(user_pin), std::strlen(user_pin)}; }

p11::Session logged_in(const p11::Module& module) {
  const p11::TokenInfo token = p11::select_token(module, std::nullopt);
  p11::Session session(module, token.slot, p11::Session::Access::read_write);
  p11::login(session, CKU_USER, pin_bytes());
  return session;
}

p11::KeyPair make_key(p11::Session& session, const std::string& type, const std::string& id_hex, bool always_auth = false) {
  p11::KeyGenRequest request;
  request.type = p11::parse_key_type(type);
  request.label = "k" + id_hex;
  request.id = p11::parse_hex_id(id_hex);
  request.always_authenticate = always_auth;
  return p11::generate_key_pair(session, request);
}

std::size_t object_count() {
  p11::Module module(softhsm_module);
  p11::Session session = logged_in(module);
  return session.find(p11::AttributeTemplate{}).size();
}

const Subject be_ebox{{"C", "BE"},
                      {"O", "SMALS"},
                      {"OU", "Belgian Federal Government"},
                      {"OU", "urn:be:fgov:kbo-bce:organization:cbe-number:0403019261"},
                      {"OU", "PRD"},
                      {"CN", "employment:job-attest:werkkaart"},
                      {"L", "Sint-Gillis"},
                      {"ST", "Brussel-Hoofdstad"}};

std::vector<std::string> agent_args(std::vector<std::string> args) {
  args.insert(args.begin(), {"--module", softhsm_module});
  return args;
}

}  // namespace

TEST_CASE("token-signed CSRs verify with openssl req: RSA 2048/3072/4096, RSA-PSS, EC P-256, P-384") {
  SoftHsm hsm;
  hsm.add_token("csr");
  csr_test::TempDir dir;
  p11::Module module(softhsm_module);
  p11::Session session = logged_in(module);
  struct Case {
    const char* type;
    const char* id;
    bool pss;
  };
  const Case cases[] = {{"rsa:2048", "01", false}, {"rsa:3072", "02", false}, {"rsa:4096", "03", false},
                        {"rsa:2048", "01", true},  {"ec:p256", "04", false},  {"ec:p384", "05", false}};
  for (const auto& c : cases) {
    CAPTURE(c.type);
    CAPTURE(c.pss);
    std::vector<p11::ObjectHandle> existing = p11::find_by_id(session, p11::parse_hex_id(c.id));
    p11::ObjectHandle key = CK_INVALID_HANDLE;
    if (existing.empty()) {
      key = make_key(session, c.type, c.id).private_key;
    } else {
      for (auto handle : existing) {
        if (session.ulong(handle, CKA_CLASS) == CKO_PRIVATE_KEY) key = handle;
      }
    }
    TokenSigner signer(session, key, std::nullopt);
    ossl::X509ReqPtr request = build_request(Profile::be_ebox, be_ebox, signer, c.pss);
    const auto path = dir / (std::string(c.type).replace(2, 1, "-") + (c.pss ? "-pss" : "") + ".csr");
    write_request(request.get(), path.string(), false);
    const auto verified = csr_test::run("openssl req -verify -noout -in " + quote(path));
    CHECK_MESSAGE(verified.exit == 0, verified.err);
    CHECK(csr_test::subject_oids_by_asn1parse(path) ==
          std::vector<std::string>{"countryName", "organizationName", "organizationalUnitName", "organizationalUnitName",
                                   "organizationalUnitName", "commonName", "localityName", "stateOrProvinceName"});
    // The public key in the request is the token's.
    ossl::EvpPkeyPtr token_key(p11::public_key(session, key).release());
    CHECK(EVP_PKEY_eq(X509_REQ_get0_pubkey(request.get()), token_key.get()) == 1);
  }
}

TEST_CASE("an always-authenticate key signs a CSR after a context-specific login") {
  SoftHsm hsm;
  hsm.add_token("always");
  p11::Module module(softhsm_module);
  p11::Session session = logged_in(module);
  const p11::KeyPair pair = make_key(session, "rsa:2048", "0a", true);
  CHECK(p11::describe_key(session, pair.private_key).always_authenticate);

  TokenSigner without_pin(session, pair.private_key, std::nullopt);
  CHECK_THROWS_AS(build_request(Profile::be_ebox, be_ebox, without_pin, false), p11::InvalidArgument);

  TokenSigner signer(session, pair.private_key, pin_bytes());
  ossl::X509ReqPtr request = build_request(Profile::be_ebox, be_ebox, signer, false);
  CHECK(lint_request(Profile::be_ebox, request.get()).empty());
  csr_test::TempDir dir;
  write_request(request.get(), (dir / "always.csr").string(), false);
  CHECK(csr_test::run("openssl req -verify -noout -in " + quote(dir / "always.csr")).exit == 0);
}

TEST_CASE("qscd-agent csr: PEM and DER on the token, always-authenticate through the CLI, csr check") {
  SoftHsm hsm;
  hsm.add_token("cli");
  {
    p11::Module module(softhsm_module);
    p11::Session session = logged_in(module);
    make_key(session, "rsa:3072", "01");
    make_key(session, "ec:p384", "02", true);
  }
  csr_test::TempDir dir;
  const std::string pin = user_pin;
  const auto pem = dir / "server.csr";
  auto made = qscd::test::run_agent(
      agent_args({"csr", "--key", "pkcs11:token=cli;id=%01", "--profile", "pkio-server", "--set", "organization=Gemeente X",
                  "--set", "common_name=gemeente-x.qvtl.nl", "--set", "kvk=12345678", "--pin-source", "fd:3", "--out",
                  pem.string()}),
      &pin);
  REQUIRE_MESSAGE(made.exit == 0, made.err);
  CHECK(csr_test::run("openssl req -verify -noout -in " + quote(pem)).exit == 0);
  CHECK(csr_test::subject_oids_by_asn1parse(pem) ==
        std::vector<std::string>{"countryName", "organizationName", "commonName", "serialNumber"});

  const auto der = dir / "seal.der";
  made = qscd::test::run_agent(
      agent_args({"--json", "csr", "--key", "pkcs11:token=cli;id=%02", "--profile", "pkio-eseal", "--subject-file",
                  (csr_test::data_dir() / "golden" / "pkio-eseal.toml").string(), "--pin-source", "fd:3", "--out",
                  der.string(), "--der"}),
      &pin);
  REQUIRE_MESSAGE(made.exit == 0, made.err);
  const auto result = nlohmann::json::parse(made.out);
  CHECK(result["signature_algorithm"] == "ecdsa-with-SHA256");
  CHECK(result["format"] == "der");
  CHECK(csr_test::run("openssl req -verify -noout -inform DER -in " + quote(der)).exit == 0);

  auto checked = qscd::test::run_agent({"csr", "check", der.string(), "--profile", "pkio-eseal"});
  CHECK(checked.exit == 0);
  checked = qscd::test::run_agent({"--json", "csr", "check", der.string(), "--profile", "pkio-server"});
  CHECK(checked.exit == 2);
  const auto report = nlohmann::json::parse(checked.out);
  CHECK(report["ok"] == false);
  std::vector<std::string> ids;
  for (const auto& finding : report["findings"]) ids.push_back(finding["rule"]);
  CHECK(ids == std::vector<std::string>{"PKIO-SERVER-NO-EXTRA", "PKIO-SERVER-CN-DNS-NAME", "PKIO-SERVER-KEY-RSA"});
}

TEST_CASE("refusals leave the token's objects as they were and write no file") {
  SoftHsm hsm;
  hsm.add_token("refuse");
  {
    p11::Module module(softhsm_module);
    p11::Session session = logged_in(module);
    make_key(session, "ec:p256", "01");
    make_key(session, "rsa:2048", "02");
  }
  const std::size_t objects = object_count();
  csr_test::TempDir dir;
  const auto out = dir / "refused.csr";
  const std::string pin = user_pin;
  const std::vector<std::string> server_subject{"--set", "organization=Gemeente X", "--set", "common_name=x.qvtl.nl",
                                                "--set", "oin=00000001002220647000"};
  auto with_subject = [&](std::vector<std::string> args, const std::vector<std::string>& subject) {
    args.insert(args.end(), subject.begin(), subject.end());
    args.insert(args.end(), {"--pin-source", "fd:3", "--out", out.string()});
    return args;
  };

  SUBCASE("an EC key for pkio-server") {
    const auto run = qscd::test::run_agent(
        agent_args(with_subject({"csr", "--key", "pkcs11:token=refuse;id=%01", "--profile", "pkio-server"}, server_subject)),
        &pin);
    CHECK(run.exit == 2);
    CHECK(run.err.find("PKIO-SERVER-KEY-RSA public key: found EC P-256; expected RSA 2048/3072/4096 is required") !=
          std::string::npos);
  }
  SUBCASE("an EC key for pkio-server is refused before the PIN is read") {
    std::vector<std::string> args{"csr", "--key", "pkcs11:token=refuse;id=%01", "--profile", "pkio-server"};
    args.insert(args.end(), server_subject.begin(), server_subject.end());
    args.insert(args.end(), {"--pin-source", "file:/nonexistent/pin", "--out", out.string()});
    const auto run = qscd::test::run_agent(agent_args(args));
    CHECK(run.exit == 2);
    CHECK(run.err.find("PKIO-SERVER-KEY-RSA") != std::string::npos);
    CHECK(run.err.find("/nonexistent/pin") == std::string::npos);
  }
  SUBCASE("a subject that breaks the profile is refused before the module is even loaded") {
    const auto run = qscd::test::run_agent(
        {"--module", "/nonexistent/module.so", "csr", "--key", "pkcs11:token=refuse;id=%02", "--profile", "be-ebox",
         "--set", "organization=SMALS", "--set", "cbe_number=0123.456.789", "--set", "environment=ACC", "--set",
         "application=employment:job-attest:werkkaart", "--set", "locality=Sint-Gillis", "--set", "state=BRU", "--out",
         out.string()});
    CHECK(run.exit == 2);
    CHECK(run.err.find("BE-EBOX-OU2-CBE-CHECK OU#2: found CBE number 0123456789") != std::string::npos);
    CHECK(run.err.find("BE-EBOX-ST-WRITTEN-OUT") != std::string::npos);
    CHECK(run.err.find("/nonexistent") == std::string::npos);
  }
  SUBCASE("--rsa-pss with an EC key") {
    const auto run = qscd::test::run_agent(
        agent_args(with_subject({"csr", "--key", "pkcs11:token=refuse;id=%01", "--profile", "generic", "--rsa-pss"},
                                {"--set", "CN=x"})),
        &pin);
    CHECK(run.exit == 2);
    CHECK(run.err.find("--rsa-pss: needs an RSA key") != std::string::npos);
  }
  SUBCASE("a bad KvK number") {
    const auto run = qscd::test::run_agent(
        agent_args(with_subject({"csr", "--key", "pkcs11:token=refuse;id=%02", "--profile", "pkio-eseal"},
                                {"--set", "organization=Org", "--set", "common_name=Seal", "--set", "kvk=1234567"})),
        &pin);
    CHECK(run.exit == 2);
    CHECK(run.err.find("KVK-FORMAT kvk: found 1234567; expected a KvK number is exactly 8 digits") != std::string::npos);
  }
  CHECK_FALSE(std::filesystem::exists(out));
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()) == 0);
  CHECK(object_count() == objects);
}

TEST_CASE("qscd-agent keygen then csr: the product's own pipeline, always-authenticate key, openssl verifies") {
  SoftHsm hsm;
  hsm.add_token("pipeline");
  const std::string pin = user_pin;
  const auto generated = qscd::test::run_agent(
      agent_args({"--json", "keygen", "--token", "pkcs11:token=pipeline", "--key-type", "ec:p256", "--label", "ebox",
                  "--always-authenticate", "--pin-source", "fd:3"}),
      &pin);
  REQUIRE_MESSAGE(generated.exit == 0, generated.err);
  const std::string uri = nlohmann::json::parse(generated.out)["uri"];
  csr_test::TempDir dir;
  const auto out = dir / "ebox.csr";
  const auto made = qscd::test::run_agent(
      agent_args({"csr", "--key", uri, "--profile", "be-ebox", "--subject-file",
                  (csr_test::data_dir() / "golden" / "be-ebox.toml").string(), "--pin-source", "fd:3", "--out",
                  out.string()}),
      &pin);
  REQUIRE_MESSAGE(made.exit == 0, made.err);
  const auto verified = csr_test::run("openssl req -verify -noout -in " + quote(out));
  CHECK_MESSAGE(verified.exit == 0, verified.err);
  // The subject DER is the golden one.
  ossl::X509ReqPtr request = parse_request(csr_test::read_bytes(out), out.string());
  unsigned char* der = nullptr;
  const int length = i2d_X509_NAME(X509_REQ_get_subject_name(request.get()), &der);
  REQUIRE(length > 0);
  const std::vector<unsigned char> subject(der, der + length);
  OPENSSL_free(der);
  CHECK(subject == csr_test::read_bytes(csr_test::data_dir() / "golden" / "be-ebox.subject.der"));
}

TEST_CASE("qscd-agent csr: a key URI with type=private (as p11tool and pkcs11-tool print them) is accepted") {
  SoftHsm hsm;
  hsm.add_token("typed");
  {
    p11::Module module(softhsm_module);
    p11::Session session = logged_in(module);
    make_key(session, "ec:p256", "03");
  }
  csr_test::TempDir dir;
  const std::string pin = user_pin;
  const auto out = dir / "seal.csr";
  const auto made = qscd::test::run_agent(
      agent_args({"csr", "--key", "pkcs11:token=typed;id=%03;type=private", "--profile", "pkio-eseal", "--subject-file",
                  (csr_test::data_dir() / "golden" / "pkio-eseal.toml").string(), "--pin-source", "fd:3", "--out",
                  out.string()}),
      &pin);
  REQUIRE_MESSAGE(made.exit == 0, made.err);
  CHECK(csr_test::run("openssl req -verify -noout -in " + quote(out)).exit == 0);
  // The public-key check before login still runs on such a URI: pkio-server wants RSA.
  const auto refused = qscd::test::run_agent(
      agent_args({"csr", "--key", "pkcs11:token=typed;id=%03;type=private", "--profile", "pkio-server", "--set",
                  "organization=Gemeente X", "--set", "common_name=gemeente-x.qvtl.nl", "--set", "kvk=12345678",
                  "--pin-source", "env:QSCD_TEST_UNSET_PIN"}));
  CHECK_MESSAGE(refused.exit == 2, refused.err);
  CHECK_MESSAGE(refused.err.find("QSCD_TEST_UNSET_PIN") == std::string::npos, refused.err);  // refused before the PIN
}
