// Issue 18, "Bad inputs, as one table": invalid inputs across every command, each refused with
// exit 2 and a message naming the field or file and the rule; the token's objects and the
// simulator's audit log are compared before and after every row. One token, one simulator and
// one workspace for the whole table, so it stays fast.
#include <sys/stat.h>

#include <chrono>
#include <fstream>

#include "test_ca.hpp"
#include "e2e_fixture.hpp"

using namespace qscd::e2e;
using qscd::test::CertCentralSim;

namespace {

struct Row {
  std::string name;
  std::vector<std::string> args;  // after the workspace's global options (or all of them: bare)
  std::string expected;           // a substring of stderr: the field or file and the rule
  bool bare = false;              // the row gives every global option itself
  std::map<std::string, std::string> env = {};
};

std::string repeat(char c, std::size_t n) { return std::string(n, c); }

// A certificate for `key` issued by `issuer` (self-signed when null), as the test CA makes them.
qscd::test_ca::X509Ptr issue(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, bool ca) {
  qscd::test_ca::CertSpec spec;
  spec.subject = {{"CN", cn}};
  spec.public_key = key;
  if (ca) spec.extensions = qscd::test_ca::ca_extensions(issuer != nullptr);
  return qscd::test_ca::issue(spec, issuer, issuer_key);
}

}  // namespace

TEST_CASE("bad inputs, one table: exit 2 naming the field and the rule, the token and the CA untouched") {
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  const std::string token = std::string("pkcs11:token=") + token_label;
  const std::string pin = "file:" + ws.path("pin");

  // One key on the token for the commands that need one; made before the counts are taken.
  auto made = ws.agent(sim, {"keygen", "--token", token, "--pin-source", pin, "--key-type", "ec:p256", "--label", "k", "--id", "0a0b"});
  REQUIRE_MESSAGE(made.exit_code == 0, made.err);
  const std::string key = token + ";id=%0a%0b;object=k";
  const std::size_t objects_before = ws.objects().size();
  REQUIRE(objects_before == 2);
  REQUIRE(settled_audit(sim).empty());

  // Files.
  const std::string fifo = ws.path("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string open_pin = ws.write("open-pin", user_pin);
  ::chmod(open_pin.c_str(), 0640);
  const std::string big = ws.write("big", repeat('1', 10U << 20U));
  const std::string link = ws.path("pin-link");
  std::filesystem::create_symlink(ws.path("pin"), link);
  const std::string garbage = ws.write("garbage.bin", std::string("\x00\x01\x02\xff\xfe garbage", 13));
  const std::string empty = ws.write("empty", "");
  const std::string not_utf8 = ws.write("latin1.toml", "organization = \"Caf\xe9\"\ncommon_name = \"x.example.nl\"\nkvk = \"12345678\"\n");

  // A CSR, whole and cut short; a certificate that is not a CSR.
  auto csr_key = qscd::test_ca::ec_key();
  const std::string csr_pem = qscd::test::make_csr(csr_key.get(), "x.example.nl");
  const std::string csr_file = ws.write("good.csr", csr_pem);
  const std::string truncated_csr = ws.write("truncated.csr", csr_pem.substr(0, csr_pem.size() / 2));
  const std::string bad_base64_csr =
      ws.write("base64.csr", "-----BEGIN CERTIFICATE REQUEST-----\n!!!!notbase64!!!!\n-----END CERTIFICATE REQUEST-----\n");
  const std::string random_csr = ws.write("random.csr", garbage);
  // Certificates and bundles for install.
  auto ca_key = qscd::test_ca::ec_key();
  auto ca = issue("Bad Input Test CA", ca_key.get(), nullptr, ca_key.get(), true);
  const std::string ca_pem = qscd::test_ca::pem(ca.get());
  const std::string cert_as_csr = ws.write("cert-as.csr", ca_pem);
  const std::string truncated_cert = ws.write("truncated.pem", ca_pem.substr(0, ca_pem.size() / 2));
  const std::string empty_p7b = ws.write("empty.p7b", qscd::test_ca::p7b({}, false));
  std::vector<qscd::test_ca::X509Ptr> many;
  std::vector<X509*> many_raw;
  for (int i = 0; i < 1000; ++i) {
    many.push_back(issue("Many " + std::to_string(i), ca_key.get(), ca.get(), ca_key.get(), false));
    many_raw.push_back(many.back().get());
  }
  const std::string thousand_p7b = ws.write("thousand.p7b", qscd::test_ca::p7b(many_raw, false));
  // A cycle: A issued by B, B issued by A, and the token key's certificate issued by A.
  auto token_key = ws.public_key("0a0b");
  auto key_a = qscd::test_ca::ec_key();
  auto key_b = qscd::test_ca::ec_key();
  auto seed_b = issue("Cycle B", key_b.get(), nullptr, key_b.get(), true);
  auto cert_a = issue("Cycle A", key_a.get(), seed_b.get(), key_b.get(), true);
  auto cert_b = issue("Cycle B", key_b.get(), cert_a.get(), key_a.get(), true);
  auto leaf = issue("cycle.example.nl", token_key.get(), cert_a.get(), key_a.get(), false);
  const std::string cycle_pem = ws.write("cycle.pem", qscd::test_ca::pem(leaf.get()) + qscd::test_ca::pem(cert_a.get()) +
                                                          qscd::test_ca::pem(cert_b.get()));
  // Subject files.
  const std::string nul_subject = ws.write("nul.toml", "subject = [[\"CN\", \"a\\u0000b\"]]\n");
  const std::string bad_toml = ws.write("bad.toml", "organization = \"unterminated\n");
  const std::string unknown_field = ws.write("unknown.toml", "organization = \"O\"\ncommon_name = \"x.example.nl\"\nkvk = \"12345678\"\nshoe_size = \"44\"\n");
  const std::string big_subject = ws.write("big.toml", "organization = \"" + repeat('O', 2U << 20U) + "\"\n");
  // Order files.
  const std::string order_not_json = ws.write("order-bad.json", "{\"organization\": ");
  const std::string order_array = ws.write("order-array.json", "[1, 2]");
  const std::string order_unknown = ws.write("order-unknown.json", R"({"organisation": {"id": 112233}})");
  const std::string order_ok = ws.write("order-ok.json", ssl_order_body("x.example.nl"));
  const std::string order_eseal = ws.write("order-eseal.json", eseal_order_body());
  // Configs.
  const std::string config_not_toml = ws.write("c-bad.toml", "[renew\nwithin_days = 3\n");
  const std::string config_unknown = ws.write("c-unknown.toml", "[renew]\nwithin_dayz = 3\n");
  const std::string config_huge_days = ws.write("c-days.toml", "[renew]\nwithin_days = 100000\n");
  const std::string config_negative_every = ws.write("c-every.toml", "[renew]\ncheck_every = \"-1d\"\n");
  const std::string config_latin1 = ws.write("c-latin1.toml", "[agent]\nstate_dir = \"/tmp/caf\xe9\"\n");
  const std::string config_ftp = ws.write("c-ftp.toml", "[api]\nbase_url = \"ftp://127.0.0.1/services/v2\"\n");
  const std::string config_ca_file = ws.write("c-ca.toml", "[api]\nca_file = \"" + garbage + "\"\n");

  const std::vector<std::string> provision_base = {"provision", "--token", token, "--pin-source", pin, "--profile", "generic",
                                                   "--product", "ssl_basic", "--key-type", "ec:p256", "--label", "p",
                                                   "--order-file", order_ok, "--set", "CN=x.example.nl"};
  auto provision_with = [&](std::vector<std::string> replace, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = provision_base;
    for (std::size_t i = 0; i + 1 < replace.size(); i += 2) {
      auto at = std::find(args.begin(), args.end(), replace[i]);
      if (at != args.end()) {
        *(at + 1) = replace[i + 1];
      } else {
        args.push_back(replace[i]);
        args.push_back(replace[i + 1]);
      }
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  auto csr_with = [&](const std::string& profile, std::vector<std::string> sets) {
    std::vector<std::string> args = {"csr", "--key", key, "--pin-source", pin, "--profile", profile};
    for (const auto& s : sets) args.insert(args.end(), {"--set", s});
    return args;
  };
  const std::vector<std::string> be_ok = {"organization=SMALS", "environment=ACC", "application=employment:job-attest:werkkaart",
                                          "locality=Sint-Gillis", "state=Brussel-Hoofdstad"};
  auto be_with = [&](const std::string& cbe) {
    auto sets = be_ok;
    sets.push_back("cbe_number=" + cbe);
    return csr_with("be-ebox", sets);
  };
  // Every global option given here: the config's api settings are not overridden by the sim's.
  auto bare = [&](const std::string& config, std::vector<std::string> args) {
    std::vector<std::string> full = {"--config", config, "--module", qscd::test::softhsm_module, "--state-dir", ws.state_dir()};
    full.insert(full.end(), args.begin(), args.end());
    return full;
  };
  const std::string ok_config = ws.path("agent.toml");

  const std::vector<Row> rows = {
      // CBE numbers (be-ebox).
      {"CBE number of 9 digits", be_with("056698825"), "BE-EBOX-OU2-CBE-URN OU#2"},
      {"CBE number failing mod 97", be_with("0566.988.258"), "expected a valid CBE number: the last two digits"},
      {"CBE number starting with 2", be_with("2566.988.259"), "a CBE number starts with 0 or 1"},
      {"CBE number with letters", be_with("0566.98A.259"), "the 10-digit CBE number"},
      // KvK numbers (pkio-eseal, pkio-server).
      {"KvK of 7 digits", csr_with("pkio-eseal", {"organization=O", "common_name=Zegel", "kvk=1234567"}), "kvk"},
      {"KvK with letters", csr_with("pkio-eseal", {"organization=O", "common_name=Zegel", "kvk=1234567a"}), "kvk"},
      {"KvK of 9 digits", csr_with("pkio-server", {"organization=O", "common_name=x.example.nl", "kvk=123456789"}), "kvk"},
      // OINs.
      {"OIN of 19 digits", csr_with("pkio-server", {"organization=O", "common_name=x.example.nl", "oin=0000000312345678000"}), "an OIN/HRN is exactly 20 digits"},
      {"OIN with letters", csr_with("pkio-server", {"organization=O", "common_name=x.example.nl", "oin=0000000312345678000X"}), "an OIN/HRN is exactly 20 digits"},
      {"OIN of 21 digits", csr_with("pkio-eseal", {"organization=O", "common_name=Z", "kvk=12345678", "oin=000000031234567800001"}), "PKIO-ESEAL-SERIALNUMBER-OIN"},
      {"pkio-server without oin or kvk", csr_with("pkio-server", {"organization=O", "common_name=x.example.nl"}), "kvk"},
      // DN lengths and characters.
      {"a 10000-character CN", provision_with({"--set", "CN=" + repeat('a', 10000)}), "CN"},
      {"a 10000-character O", csr_with("generic", {"O=" + repeat('o', 10000), "CN=x"}), "O"},
      {"an O that is not UTF-8", csr_with("generic", {"O=Caf\xe9", "CN=x"}), "UTF-8"},
      {"a CN with a NUL (subject file)", {"csr", "--key", key, "--pin-source", pin, "--profile", "generic", "--subject-file", nul_subject}, "NUL"},
      {"C of three letters", csr_with("generic", {"C=NLD", "CN=x"}), "C"},
      {"an unknown attribute", csr_with("generic", {"XX=1", "CN=x"}), "XX"},
      {"--set without =", csr_with("generic", {"CN"}), "--set"},
      {"be-ebox environment PROD", csr_with("be-ebox", {"organization=SMALS", "cbe_number=0566.988.259", "environment=PROD",
                                                        "application=a:b", "locality=L", "state=Brussel-Hoofdstad"}), "BE-EBOX-OU3-ENVIRONMENT OU#3"},
      {"pkio-server empty common_name", csr_with("pkio-server", {"organization=O", "common_name=", "kvk=12345678"}), "X509-EMPTY-VALUE CN"},
      // Subject files.
      {"a subject file that is not TOML", {"csr", "--key", key, "--pin-source", pin, "--profile", "pkio-server", "--subject-file", bad_toml}, bad_toml},
      {"a subject file with an unknown field", {"csr", "--key", key, "--pin-source", pin, "--profile", "pkio-server", "--subject-file", unknown_field}, "shoe_size"},
      {"a subject file that is not UTF-8", {"csr", "--key", key, "--pin-source", pin, "--profile", "pkio-server", "--subject-file", not_utf8}, "latin1.toml:1:20: the TOML text is not UTF-8"},
      {"a 2 MB subject file", {"csr", "--key", key, "--pin-source", pin, "--profile", "pkio-server", "--subject-file", big_subject}, "--subject-file"},
      {"/dev/zero as subject file", {"csr", "--key", key, "--pin-source", pin, "--profile", "pkio-server", "--subject-file", "/dev/zero"}, "--subject-file"},
      // Key types per product.
      {"pkio_private_services_server with EC", provision_with({"--profile", "pkio-server", "--product", "pkio_private_services_server", "--set", "organization=O"},
                                                               {"--set", "common_name=x.example.nl", "--set", "kvk=12345678"}),
       "RSA"},
      {"eu_eseal with EC", provision_with({"--product", "eu_eseal", "--order-file", order_eseal}), "RSA"},
      {"keygen rsa:1024", {"keygen", "--token", token, "--pin-source", pin, "--key-type", "rsa:1024", "--label", "weak"}, "--key-type"},
      {"keygen ec:p521", {"keygen", "--token", token, "--pin-source", pin, "--key-type", "ec:p521", "--label", "p521"}, "--key-type"},
      {"provision --key-type dsa", provision_with({"--key-type", "dsa:2048"}), "--key-type"},
      // CSRs.
      {"csr check of random bytes", {"csr", "check", random_csr, "--profile", "generic"}, random_csr},
      {"csr check of a truncated CSR", {"csr", "check", truncated_csr, "--profile", "generic"}, truncated_csr},
      {"csr check of bad base64", {"csr", "check", bad_base64_csr, "--profile", "generic"}, bad_base64_csr},
      {"csr check of a certificate", {"csr", "check", cert_as_csr, "--profile", "generic"}, cert_as_csr},
      {"csr check with an unknown profile", {"csr", "check", csr_file, "--profile", "nosuch"}, "--profile"},
      {"order submit of a truncated CSR", {"order", "submit", "--product", "ssl_basic", "--csr", truncated_csr, "--order-file", order_ok}, "--csr: must be a PEM PKCS#10"},
      {"order submit of a certificate as CSR", {"order", "submit", "--product", "ssl_basic", "--csr", cert_as_csr, "--order-file", order_ok}, "--csr: must be a PEM PKCS#10"},
      {"order attach of an empty CSR", {"order", "attach", "1", "--csr", empty}, "--csr: must be a PEM PKCS#10"},
      // Certificates and bundles.
      {"install --cert garbage", {"install", "--key", key, "--cert", garbage, "--pin-source", pin}, garbage},
      {"install --cert truncated PEM", {"install", "--key", key, "--cert", truncated_cert, "--pin-source", pin}, truncated_cert},
      {"install --cert p7b with no certificate", {"install", "--key", key, "--cert", empty_p7b, "--pin-source", pin}, "no certificate"},
      {"install --cert p7b with 1000 certificates", {"install", "--key", key, "--cert", thousand_p7b, "--pin-source", pin}, "1000 certificates"},
      {"install --cert a chain whose issuers form a cycle", {"install", "--key", key, "--cert", cycle_pem, "--pin-source", pin}, "cycle"},
      {"install --trust garbage", {"install", "--key", key, "--cert", cycle_pem, "--trust", garbage, "--pin-source", pin}, "--trust"},
      {"install --trust empty", {"install", "--key", key, "--cert", cycle_pem, "--trust", empty, "--pin-source", pin}, "--trust"},
      {"install --profile nosuch", {"install", "--key", key, "--cert", cycle_pem, "--profile", "nosuch", "--pin-source", pin}, "be-ebox, pkio-server, pkio-eseal, generic"},
      {"provision --trust garbage", provision_with({}, {"--trust", garbage}), "--trust"},
      {"renew --trust garbage", {"renew", "--token", token, "--pin-source", pin, "--trust", garbage}, "--trust"},
      // Configs.
      {"a config that is not TOML", bare(config_not_toml, {"jobs"}), config_not_toml, true},
      {"a config with an unknown key", bare(config_unknown, {"jobs"}), "within_dayz", true},
      {"renew.within_days = 100000", bare(config_huge_days, {"jobs"}), "renew.within_days", true},
      {"renew.check_every negative", bare(config_negative_every, {"jobs"}), "renew.check_every", true},
      {"a config value that is not UTF-8", bare(config_latin1, {"jobs"}), "c-latin1.toml:2:22: the TOML text is not UTF-8", true},
      {"api.base_url ftp://", bare(config_ftp, {"--api-key-source", "env:CERTCENTRAL_API_KEY", "orgs"}), "api.base_url: must be an https://", true},
      {"api.ca_file garbage", bare(config_ca_file, {"--api-key-source", "env:CERTCENTRAL_API_KEY", "orgs"}), "api.ca_file", true},
      // URIs.
      {"--token with a bad percent escape", {"tokens", "--token", "pkcs11:token=%zz"}, "--token"},
      {"--token that is not a PKCS#11 URI", provision_with({"--token", "https://example.com/"}), "--token"},
      {"--key naming no object", {"csr", "--key", token, "--pin-source", pin, "--profile", "generic", "--set", "CN=x"}, "--key"},
      {"--key with a bad id", {"export", "--key", token + ";id=%GG"}, "--key"},
      {"--key with a PIN in it", {"export", "--key", key + "?pin-value=123456"}, "--key"},
      {"--api-url ftp://", bare(ok_config, {"--api-url", "ftp://127.0.0.1/x", "--api-key-source", "env:CERTCENTRAL_API_KEY", "orgs"}), "--api-url: must be an https://", true},
      {"--api-url plain http to another host", bare(ok_config, {"--api-url", "http://example.com/services/v2", "--api-key-source", "env:CERTCENTRAL_API_KEY", "orgs"}), "--api-url: plain http:// is refused except to loopback", true},
      {"--ca-file garbage for order submit", bare(ok_config, {"--api-url", sim.url(), "--ca-file", garbage, "--api-key-source", "env:CERTCENTRAL_API_KEY", "order", "submit", "--product", "ssl_basic", "--csr", csr_file, "--order-file", order_ok}), "--ca-file", true},
      // Durations and numbers.
      {"--timeout negative", provision_with({"--timeout", "-5s"}), "--timeout"},
      {"--timeout huge", provision_with({"--timeout", "99999999999999999999d"}), "--timeout"},
      {"--timeout with an unknown unit", provision_with({"--timeout", "5x"}), "--timeout"},
      {"--poll-interval 0", provision_with({"--poll-interval", "0"}), "--poll-interval"},
      {"order wait --timeout negative", {"order", "wait", "1", "--timeout", "-1m"}, "--timeout"},
      {"renew --within -1", {"renew", "--token", token, "--pin-source", pin, "--within", "-1"}, "--within"},
      {"renew --within 100000", {"renew", "--token", token, "--pin-source", pin, "--within", "100000"}, "--within"},
      {"watch --poll-every negative", {"watch", "--poll-every", "-1s", "--run-for", "1s"}, "--poll-every"},
      {"order status of something not an id", {"order", "status", "../1"}, "order id"},
      {"jobs show of a non-number", {"jobs", "show", "abc"}, "ID"},
      // Order files.
      {"an order file that is not JSON", provision_with({"--order-file", order_not_json}), order_not_json},
      {"an order file that is an array", provision_with({"--order-file", order_array}), "must be a JSON object"},
      {"an order file with an unknown field", provision_with({"--order-file", order_unknown}), "organisation"},
      // PIN and key sources.
      {"a group-readable PIN file", provision_with({"--pin-source", "file:" + open_pin}), "chmod 600"},
      {"a FIFO as PIN file", provision_with({"--pin-source", "file:" + fifo}), "--pin-source"},
      {"/dev/zero as PIN file", provision_with({"--pin-source", "file:/dev/zero"}), "--pin-source"},
      {"a 10 MB PIN file", provision_with({"--pin-source", "file:" + big}), "--pin-source: the user PIN is longer than"},
      {"a symlink as PIN file", provision_with({"--pin-source", "file:" + link}), "is a symbolic link"},
      {"a missing env var as PIN source", provision_with({"--pin-source", "env:QSCD_NO_SUCH_PIN"}), "QSCD_NO_SUCH_PIN"},
      {"an unknown PIN source", provision_with({"--pin-source", "carrier-pigeon:x"}), "--pin-source"},
      {"a missing env var as API key source", bare(ok_config, {"--api-key-source", "env:QSCD_NO_SUCH_KEY", "orgs"}), "QSCD_NO_SUCH_KEY", true},
      {"a group-readable API key file", bare(ok_config, {"--api-key-source", "file:" + open_pin, "orgs"}), "chmod 600", true},
      {"change-pin with a missing new PIN env var", {"token", "change-pin", "--token", token, "--pin-source", pin, "--new-pin-source", "env:QSCD_NO_SUCH_PIN"}, "QSCD_NO_SUCH_PIN"},
      // Labels and ids.
      {"keygen --label that is not UTF-8", {"keygen", "--token", token, "--pin-source", pin, "--key-type", "ec:p256", "--label", "k\xff"}, "--label"},
      {"keygen --id that is not hex", {"keygen", "--token", token, "--pin-source", pin, "--key-type", "ec:p256", "--label", "z", "--id", "zz"}, "--id"},
      {"keygen --id already used", {"keygen", "--token", token, "--pin-source", pin, "--key-type", "ec:p256", "--label", "z", "--id", "0a0b"}, "--id"},
      {"provision --label already held", provision_with({"--label", "k"}), "--label"},
      {"token init --label of 33 bytes", {"token", "init", "--token", token, "--label", repeat('l', 33), "--force"}, "--label"},
      {"export --format xyz", {"export", "--key", key, "--format", "xyz"}, "--format"},
  };
  CHECK(rows.size() >= 60);

  const auto started = std::chrono::steady_clock::now();
  std::size_t failed_rows = 0;
  std::size_t audit_before = 0;
  for (const Row& row : rows) {
    INFO(row.name);
    auto run = row.bare ? qscd::test::run_process([&] {
      std::vector<std::string> full = row.args;
      full.insert(full.begin(), qscd::test::agent_binary());
      return full;
    }(), {{"CERTCENTRAL_API_KEY", CertCentralSim::api_key}})
                        : ws.agent(sim, row.args, row.env);
    bool ok = run.exit_code == 2 && run.err.find(row.expected) != std::string::npos;
    CHECK_MESSAGE(run.exit_code == 2, "exit " << run.exit_code << ": " << run.err);
    CHECK_MESSAGE(run.err.find(row.expected) != std::string::npos, "expected '" << row.expected << "' in: " << run.err);
    CHECK(ws.objects().size() == objects_before);
    // The sim writes a request's line just after answering it: read until it settles.
    const std::size_t requests = settled_audit(sim).size();
    CHECK_MESSAGE(requests == audit_before, (requests - audit_before) << " request(s) reached the CA");
    if (requests != audit_before) ok = false;
    audit_before = requests;
    if (!ok) ++failed_rows;
  }
  MESSAGE(rows.size() << " rows, " << failed_rows << " not refused as expected, "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count() << " ms");
  CHECK(settled_audit(sim).empty());
}
