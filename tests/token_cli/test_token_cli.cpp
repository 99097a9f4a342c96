// qscd-agent's token commands as a user runs them: a child process, PINs from
// files or a pipe, a real SoftHSM2 token, exit codes of product.md.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "cli/context.hpp"
#include "base/errors.hpp"
#include "process.hpp"
#include "qscd/pkcs11/keys.hpp"
#include "token/token_access.hpp"
#include "qscd/pkcs11/login.hpp"
#include "qscd/pkcs11/module.hpp"
#include "qscd/pkcs11/session.hpp"
#include "qscd/pkcs11/uri.hpp"
#include "softhsm.hpp"

using qscd::test::Outcome;
using qscd::test::run_agent;
using qscd::test::run_command;
using qscd::test::SoftHsm;
using qscd::test::softhsm_module;

namespace {

const std::string module_option = std::string("--module=") + softhsm_module;

std::string shim_path() {
  const char* path = std::getenv("QSCD_P11SHIM");
  REQUIRE(path != nullptr);
  return path;
}

// A PIN file only its owner can read, as --pin-source file: requires.
std::string pin_file(const SoftHsm& hsm, const std::string& name, const std::string& pin,
                     std::filesystem::perms perms = std::filesystem::perms::owner_read |
                                                    std::filesystem::perms::owner_write) {
  auto path = hsm.dir() / name;
  std::ofstream(path) << pin << "\n";
  std::filesystem::permissions(path, perms);
  return "file:" + path.string();
}

// Every object on the token, counted after a user login (in-process, one Module at a time).
std::size_t object_count(const std::string& label, const char* user_pin = "123456") {
  qscd::p11::Module module(softhsm_module);
  qscd::p11::TokenInfo token = qscd::p11::select_token(module, "pkcs11:token=" + label);
  qscd::p11::Session session(module, token.slot, qscd::p11::Session::Access::read_only);
  qscd::p11::login(session, CKU_USER, {reinterpret_cast<const unsigned char*>(user_pin), std::strlen(user_pin)});
  return session.find(qscd::p11::AttributeTemplate{}).size();
}

int count_lines(const std::string& text, const std::string& line) {
  int n = 0;
  std::size_t at = 0;
  while ((at = text.find(line + "\n", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') ++n;
    at += line.size() + 1;
  }
  return n;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("keygen for every key type; pkcs11-tool -O shows sign only, sensitive, never extractable, local") {
  SoftHsm hsm;
  hsm.add_token("done");
  std::string pin = pin_file(hsm, "pin", "123456");
  for (const char* type : {"rsa:2048", "rsa:3072", "rsa:4096", "ec:p256", "ec:p384"}) {
    CAPTURE(type);
    Outcome keygen = run_agent({"keygen", module_option, "--key-type", type, "--label", std::string("k-") + type,
                                "--pin-source", pin, "--json"});
    REQUIRE_MESSAGE(keygen.exit == 0, keygen.err);
    auto doc = nlohmann::json::parse(keygen.out);
    CHECK(doc["key_type"] == type);
    CHECK(doc["id"].get<std::string>().size() == 40);
    CHECK(contains(doc["uri"], "token=done"));
    CHECK(contains(doc["uri"], "object=k-"));
  }
  Outcome listing = run_command({"pkcs11-tool", "--module", softhsm_module, "-O", "--login", "--pin", "123456"});
  REQUIRE(listing.exit == 0);
  const std::string& out = listing.out;
  std::size_t private_keys = 0;
  for (std::size_t at = out.find("Private Key Object"); at != std::string::npos;
       at = out.find("Private Key Object", at + 1)) {
    ++private_keys;
    std::size_t end = out.find(" Object;", at + 20);
    std::string block = out.substr(at, end == std::string::npos ? std::string::npos : end - at);
    CAPTURE(block);
    CHECK(contains(block, "Usage:      sign\n"));
    CHECK(contains(block, "Access:     sensitive, always sensitive, never extractable, local\n"));
  }
  CHECK(private_keys == 5);
}

TEST_CASE("tokens lists label, serial, manufacturer, model, PIN state and key pairs") {
  SoftHsm hsm;
  hsm.add_token("shown");
  std::string pin = pin_file(hsm, "pin", "123456");
  REQUIRE(run_agent({"keygen", module_option, "--key-type", "ec:p256", "--label", "seal", "--id", "c0ffee",
                     "--pin-source", pin}).exit == 0);
  Outcome text = run_agent({"tokens", module_option});
  REQUIRE(text.exit == 0);
  CHECK(contains(text.out, "token 'shown'"));
  CHECK(contains(text.out, "Manufacturer: SoftHSM project"));
  CHECK(contains(text.out, "Model:        SoftHSM v2"));
  CHECK(contains(text.out, "User PIN:     ok"));
  CHECK(contains(text.out, "id c0ffee  'seal'  EC P-256  public key\n"));
  CHECK(contains(text.out, "public only"));
  Outcome with_pin = run_agent({"tokens", module_option, "--token", "pkcs11:token=shown", "--pin-source", pin, "--json"});
  REQUIRE_MESSAGE(with_pin.exit == 0, with_pin.err);
  auto doc = nlohmann::json::parse(with_pin.out);
  REQUIRE(doc["tokens"].size() == 1);
  auto token = doc["tokens"][0];
  CHECK(token["serial"].get<std::string>().size() == 16);
  CHECK(token["user_pin"]["state"] == "ok");
  CHECK(token["logged_in"] == true);
  REQUIRE(token["objects"].size() == 1);
  CHECK(token["objects"][0]["private_key"] == true);
  CHECK(token["objects"][0]["public_key"] == true);
  CHECK(token["objects"][0]["id"] == "c0ffee");
}

TEST_CASE("PIN: a wrong PIN exits 3 after exactly one C_Login, with the PIN state") {
  SoftHsm hsm;
  hsm.add_token("wrong");
  std::string counts = (hsm.dir() / "calls").string();
  ::setenv("QSCD_SHIM_COUNT_FILE", counts.c_str(), 1);
  Outcome result = run_agent({"keygen", "--module", shim_path(), "--key-type", "ec:p256", "--label", "x",
                              "--pin-source", pin_file(hsm, "pin", "999999")});
  ::unsetenv("QSCD_SHIM_COUNT_FILE");
  CHECK(result.exit == 3);
  CHECK(contains(result.err, "CKR_PIN_INCORRECT"));
  CHECK(contains(result.err, "PIN state now: count low"));
  CHECK(count_lines(qscd::test::slurp(counts), "C_Login") == 1);
  CHECK(count_lines(qscd::test::slurp(counts), "C_GenerateKeyPair") == 0);
}

TEST_CASE("PIN: a locked token is refused without any C_Login; final try only with --allow-final-try") {
  SoftHsm hsm;
  hsm.add_token("locked");
  std::string pin = pin_file(hsm, "pin", "123456");
  std::string counts = (hsm.dir() / "calls").string();
  ::setenv("QSCD_SHIM_COUNT_FILE", counts.c_str(), 1);
  ::setenv("QSCD_SHIM_TOKEN_FLAGS_OR", "CKF_USER_PIN_LOCKED", 1);
  Outcome locked = run_agent({"keygen", "--module", shim_path(), "--key-type", "ec:p256", "--label", "x",
                              "--pin-source", pin, "--json"});
  CHECK(locked.exit == 3);
  CHECK(contains(nlohmann::json::parse(locked.out)["error"]["message"], "user PIN is locked; no PIN was sent"));
  Outcome listed = run_agent({"tokens", "--module", shim_path()});
  CHECK(contains(listed.out, "User PIN:     locked"));

  ::setenv("QSCD_SHIM_TOKEN_FLAGS_OR", "CKF_USER_PIN_FINAL_TRY", 1);
  Outcome final_try = run_agent({"keygen", "--module", shim_path(), "--key-type", "ec:p256", "--label", "x",
                                 "--pin-source", pin});
  CHECK(final_try.exit == 3);
  CHECK(contains(final_try.err, "--allow-final-try"));
  CHECK(count_lines(qscd::test::slurp(counts), "C_Login") == 0);

  // On a final try nobody is asked for the PIN first and refused after.
  const std::string answers = (hsm.dir() / "answers").string();
  const char* source_dir = std::getenv("QSCD_TEST_SOURCE_DIR");
  REQUIRE(source_dir != nullptr);
  ::setenv("PINENTRY_PROGRAM", (std::string(source_dir) + "/tests/support/fake-pinentry.sh").c_str(), 1);
  ::setenv("FAKE_PINENTRY_PINS", answers.c_str(), 1);
  std::ofstream(answers) << "123456\n";
  for (const std::vector<std::string>& asked :
       {std::vector<std::string>{"keygen", "--module", shim_path(), "--key-type", "ec:p256", "--label", "x", "--pin-source", "pinentry"},
        std::vector<std::string>{"token", "change-pin", "--module", shim_path(), "--pin-source", "pinentry",
                                 "--new-pin-source", "pinentry"}}) {
    CAPTURE(asked[0]);
    Outcome refused = run_agent(asked);
    CHECK(refused.exit == 3);
    CHECK(contains(refused.err, "--allow-final-try"));
    CHECK(qscd::test::slurp(answers) == "123456\n");  // pinentry was never started
  }
  ::unsetenv("FAKE_PINENTRY_PINS");
  ::unsetenv("PINENTRY_PROGRAM");

  Outcome allowed = run_agent({"keygen", "--module", shim_path(), "--key-type", "ec:p256", "--label", "x",
                               "--pin-source", pin, "--allow-final-try"});
  CHECK_MESSAGE(allowed.exit == 0, allowed.err);
  CHECK(count_lines(qscd::test::slurp(counts), "C_Login") == 1);

  ::setenv("QSCD_SHIM_TOKEN_FLAGS_OR", "CKF_USER_PIN_TO_BE_CHANGED", 1);
  Outcome to_change = run_agent({"keygen", "--module", shim_path(), "--key-type", "ec:p256", "--label", "y",
                                 "--pin-source", pin});
  CHECK(to_change.exit == 3);
  CHECK(contains(to_change.err, "token change-pin"));
  ::unsetenv("QSCD_SHIM_TOKEN_FLAGS_OR");
  ::unsetenv("QSCD_SHIM_COUNT_FILE");
}

TEST_CASE("PIN: never in the agent's /proc/<pid>/cmdline nor in its output") {
  SoftHsm hsm;
  const std::string secret = "739184265";
  hsm.add_token("quiet", "12345678", secret);
  std::string cmdline;
  Outcome result = run_agent(
      {"-vv", "keygen", module_option, "--key-type", "ec:p256", "--label", "q", "--pin-source", "fd:3"}, &secret,
      [&cmdline](pid_t pid) {
        // Wait until the child is the agent (exec done), then read its argv.
        std::string path = "/proc/" + std::to_string(pid) + "/cmdline";
        for (int i = 0; i < 500 && !contains(cmdline, "keygen"); ++i) {
          cmdline = qscd::test::slurp(path);
          ::usleep(2000);
        }
      });
  CHECK_MESSAGE(result.exit == 0, result.err);
  REQUIRE(contains(cmdline, "--pin-source"));
  CHECK_FALSE(contains(cmdline, secret));
  CHECK_FALSE(contains(result.out, secret));
  CHECK_FALSE(contains(result.err, secret));
  CHECK(contains(result.err, "generating ec:p256"));  // the log did run
}

TEST_CASE("URIs: token by label and serial, key ids; missing exits 3, ambiguous exits 2 listing them") {
  SoftHsm hsm;
  hsm.add_token("alpha");
  hsm.add_token("beta");
  std::string pin = pin_file(hsm, "pin", "123456");
  Outcome by_label = run_agent({"keygen", module_option, "--token", "pkcs11:token=beta", "--key-type", "ec:p256",
                                "--label", "b", "--id", "0b", "--pin-source", pin, "--json"});
  REQUIRE_MESSAGE(by_label.exit == 0, by_label.err);
  auto doc = nlohmann::json::parse(by_label.out);
  CHECK(doc["token"] == "beta");
  std::string serial_uri = doc["token_uri"];
  std::string serial = serial_uri.substr(serial_uri.find("serial=") + 7, 16);
  Outcome by_serial = run_agent({"keygen", module_option, "--token", "pkcs11:serial=" + serial, "--key-type",
                                 "ec:p256", "--label", "b2", "--pin-source", pin, "--json"});
  REQUIRE_MESSAGE(by_serial.exit == 0, by_serial.err);
  CHECK(nlohmann::json::parse(by_serial.out)["token"] == "beta");

  Outcome missing = run_agent({"keygen", module_option, "--token", "pkcs11:token=gamma", "--key-type", "ec:p256",
                               "--label", "g", "--pin-source", pin});
  CHECK(missing.exit == 3);
  CHECK(contains(missing.err, "no token matches pkcs11:token=gamma"));

  Outcome ambiguous = run_agent({"keygen", module_option, "--key-type", "ec:p256", "--label", "a", "--pin-source", pin});
  CHECK(ambiguous.exit == 2);
  CHECK(contains(ambiguous.err, "2 tokens are present; name one with --token"));
  CHECK(contains(ambiguous.err, "token=alpha"));
  CHECK(contains(ambiguous.err, "token=beta"));

  Outcome bad_uri = run_agent({"tokens", module_option, "--token", "token=alpha"});
  CHECK(bad_uri.exit == 2);
  CHECK(contains(bad_uri.err, "is not a PKCS#11 URI"));

  // The id chosen above is the key's: the URI keygen printed selects it.
  qscd::p11::Module module(softhsm_module);
  qscd::p11::TokenInfo beta = qscd::p11::select_token(module, doc["uri"].get<std::string>());
  CHECK(beta.label == "beta");
}

TEST_CASE("bad input exits 2 naming the field, before the token changes") {
  SoftHsm hsm;
  hsm.add_token("input");
  std::string pin = pin_file(hsm, "pin", "123456");
  REQUIRE(run_agent({"keygen", module_option, "--key-type", "ec:p256", "--label", "k", "--id", "01", "--pin-source",
                     pin}).exit == 0);
  const std::size_t before = object_count("input");
  REQUIRE(before == 2);

  struct Case {
    std::vector<std::string> args;
    const char* field;
  };
  using std::filesystem::perms;
  std::string readable = pin_file(hsm, "readable-pin", "123456", perms::owner_read | perms::owner_write | perms::others_read);
  const std::vector<Case> cases = {
      {{"keygen", module_option, "--key-type", "dsa:2048", "--label", "k", "--pin-source", pin}, "--key-type"},
      {{"keygen", module_option, "--key-type", "rsa:1024", "--label", "k2", "--pin-source", pin}, "--key-type"},
      {{"keygen", module_option, "--key-type", "ec:p256", "--label", "k", "--id", "zz", "--pin-source", pin}, "--id"},
      {{"keygen", module_option, "--key-type", "ec:p256", "--label", "k2", "--id", "01", "--pin-source", pin}, "--id"},
      {{"keygen", module_option, "--key-type", "ec:p256", "--label", "k", "--pin-source", pin}, "--allow-duplicate-label"},
      {{"keygen", "--module", "/etc/hostname", "--key-type", "ec:p256", "--label", "k", "--pin-source", pin},
       "--module"},
      {{"keygen", module_option, "--key-type", "ec:p256", "--label", "k", "--pin-source", readable}, "--pin-source"},
      {{"token", "init", module_option, "--token", "pkcs11:token=input", "--label", "again", "--so-pin-source", pin,
        "--new-pin-source", pin},
       "--force"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.args[2]);
    Outcome result = run_agent(c.args);
    CAPTURE(result.err);
    CHECK(result.exit == 2);
    CHECK(contains(result.err, c.field));
  }
  CHECK(object_count("input") == before);
}

TEST_CASE("token init, change-pin (user and SO), unblock") {
  SoftHsm hsm;
  auto secret = [&hsm](const std::string& name, const std::string& value) { return pin_file(hsm, name, value); };
  // A new PIN the token would refuse is refused before anything changes.
  Outcome short_pin = run_agent({"token", "init", module_option, "--label", "officer", "--so-pin-source",
                                 secret("so0", "so-pin-1"), "--new-pin-source", secret("user0", "12")});
  CHECK(short_pin.exit == 2);
  CHECK(contains(short_pin.err, "--new-pin-source: the new user PIN has length 2; the blank token in slot"));
  CHECK(contains(run_agent({"tokens", module_option}).out, "token not initialised"));
  Outcome init = run_agent({"token", "init", module_option, "--label", "officer", "--so-pin-source",
                            secret("so", "so-pin-1"), "--new-pin-source", secret("user", "1111"), "--json"});
  REQUIRE_MESSAGE(init.exit == 0, init.err);
  CHECK(nlohmann::json::parse(init.out)["label"] == "officer");
  // No public objects, but a user PIN: private keys would be invisible here, so --force is needed.
  Outcome unseen = run_agent({"token", "init", module_option, "--token", "pkcs11:token=officer", "--label", "other",
                              "--so-pin-source", secret("so1", "so-pin-1"), "--new-pin-source", secret("user1", "1111")});
  CHECK(unseen.exit == 2);
  CHECK(contains(unseen.err, "--force: token 'officer' has a user PIN, so it may hold private objects"));
  CHECK(contains(run_agent({"tokens", module_option}).out, "officer"));

  Outcome change = run_agent({"token", "change-pin", module_option, "--pin-source", secret("old", "1111"),
                              "--new-pin-source", secret("new", "2222")});
  REQUIRE_MESSAGE(change.exit == 0, change.err);
  CHECK(contains(change.out, "user PIN of token 'officer' is changed"));
  Outcome old_pin = run_agent({"tokens", module_option, "--pin-source", secret("old2", "1111")});
  CHECK(old_pin.exit == 3);

  Outcome change_so = run_agent({"token", "change-pin", "--so", module_option, "--so-pin-source",
                                 secret("so-old", "so-pin-1"), "--new-pin-source", secret("so-new", "so-pin-2")});
  REQUIRE_MESSAGE(change_so.exit == 0, change_so.err);

  Outcome short_so = run_agent({"token", "change-pin", "--so", module_option, "--so-pin-source",
                                secret("so-old2", "so-pin-2"), "--new-pin-source", secret("so-short", "x")});
  CHECK(short_so.exit == 2);
  CHECK(contains(short_so.err, "--new-pin-source: the new SO PIN has length 1; token 'officer' takes 4 to 255 characters"));

  Outcome unblock = run_agent({"token", "unblock", module_option, "--so-pin-source", secret("so2", "so-pin-2"),
                               "--new-pin-source", secret("reset", "3333")});
  REQUIRE_MESSAGE(unblock.exit == 0, unblock.err);
  CHECK(run_agent({"keygen", module_option, "--key-type", "ec:p256", "--label", "after", "--pin-source",
                   secret("p3", "3333")}).exit == 0);

  // A token holding objects is re-initialised only with --force.
  std::vector<std::string> reinit = {"token", "init", module_option, "--token", "pkcs11:token=officer", "--label",
                                     "renamed", "--so-pin-source", secret("so3", "so-pin-2"), "--new-pin-source",
                                     secret("p4", "4444")};
  Outcome refused = run_agent(reinit);
  CHECK(refused.exit == 2);
  CHECK(contains(refused.err, "holds 1 public objects"));
  reinit.push_back("--force");
  Outcome forced = run_agent(reinit);
  CHECK_MESSAGE(forced.exit == 0, forced.err);
  CHECK(contains(forced.out, "'renamed'"));
}

TEST_CASE("open_key: a key URI selects token and session for csr, install and export; --key names bad URIs") {
  SoftHsm hsm;
  hsm.add_token("keys");
  hsm.add_token("other");
  std::string pin = pin_file(hsm, "pin", "123456");
  REQUIRE(run_agent({"keygen", module_option, "--token", "pkcs11:token=keys", "--key-type", "ec:p256", "--label",
                     "seal", "--id", "01", "--always-authenticate", "--pin-source", pin}).exit == 0);
  qscd::agent::Context context;
  context.options.module = softhsm_module;
  qscd::agent::TokenOptions options;
  options.pin_source = pin;
  {
    qscd::agent::OpenKey key = qscd::agent::open_key(context.tokens(), "pkcs11:token=keys;object=seal", options);
    CHECK(key.info.label == "keys");
    REQUIRE(key.pin.has_value());
    auto private_key = qscd::p11::select_object(key.session, key.uri, CKO_PRIVATE_KEY);
    auto description = qscd::p11::describe_key(key.session, private_key);
    CHECK(description.id == qscd::p11::Bytes{0x01});
    CHECK(description.always_authenticate);
    unsigned char digest[32] = {};
    CHECK(qscd::p11::sign(key.session, private_key, CKM_ECDSA, digest, key.pin->bytes()).size() == 64);
  }
  {
    // Login only with a PIN source; the hook runs first.
    qscd::agent::TokenOptions no_pin;
    bool hook_ran = false;
    qscd::agent::OpenKey key = qscd::agent::open_key(
        context.tokens(), "pkcs11:token=keys;id=%01", no_pin,
        {.access = qscd::p11::Session::Access::read_only,
         .login = qscd::agent::KeyLogin::if_pin_given,
         .before_login = [&hook_ran](const qscd::p11::Session& session, const qscd::p11::Uri&) {
           hook_ran = !session.logged_in();
         }});
    CHECK(hook_ran);
    CHECK_FALSE(key.session.logged_in());
    CHECK_FALSE(key.pin.has_value());
  }
  qscd::agent::OpenKey other_key = qscd::agent::open_key(context.tokens(), "pkcs11:token=keys;id=%02", options);
  CHECK_THROWS_WITH_AS(qscd::p11::select_object(other_key.session, other_key.uri, CKO_PRIVATE_KEY),
                       "no private key on token 'keys' matches pkcs11:token=keys;id=%02", qscd::p11::NotFound);
  CHECK_THROWS_WITH_AS(qscd::agent::open_key(context.tokens(), "pkcs11:token=keys", options), doctest::Contains("names no key"),
                       qscd::agent::UsageError);

  // Every key command reports a bad key URI against --key.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"export", module_option, "--key", "token=keys;id=%01"},
        std::vector<std::string>{"csr", module_option, "--key", "token=keys;id=%01", "--profile", "generic", "--set",
                                 "CN=x"}}) {
    CAPTURE(args[0]);
    Outcome result = run_agent(args);
    CHECK(result.exit == 2);
    CHECK(contains(result.err, "--key: 'token=keys;id=%01' is not a PKCS#11 URI"));
  }
}

TEST_CASE("tokens --json: a key label that is not UTF-8 (Latin-1) gives valid JSON, not an abort") {
  SoftHsm hsm;
  hsm.add_token("latin");
  const std::string latin1_label = "cl\xe9 \xe0 sceller";  // "clé à sceller" in ISO 8859-1
  Outcome made = run_command({"pkcs11-tool", "--module", softhsm_module, "--token-label", "latin", "--login", "--pin",
                              "123456", "--keypairgen", "--key-type", "EC:prime256v1", "--id", "0a", "--label",
                              latin1_label});
  REQUIRE_MESSAGE(made.exit == 0, made.err);
  Outcome listing = run_agent({"tokens", module_option, "--json"});
  REQUIRE_MESSAGE(listing.exit == 0, listing.err);
  auto doc = nlohmann::json::parse(listing.out);  // throws on invalid UTF-8
  REQUIRE(doc["tokens"][0]["objects"].size() == 1);
  CHECK(doc["tokens"][0]["objects"][0]["label"] == "cl\xef\xbf\xbd \xef\xbf\xbd sceller");  // U+FFFD for each byte
}

TEST_CASE("a PIN inside a --token or --key URI is refused (exit 2) and appears nowhere in the output") {
  SoftHsm hsm;
  hsm.add_token("inuri");
  const std::string secret = "5718204";
  const std::vector<std::vector<std::string>> commands = {
      {"tokens", module_option, "--token", "pkcs11:token=inuri?pin-value=" + secret},
      {"--json", "tokens", module_option, "--token", "pkcs11:token=inuri?pin-source=file:/tmp/" + secret},
      {"export", module_option, "--key", "pkcs11:token=inuri;id=%01?pin-value=" + secret},
      {"csr", module_option, "--key", "pkcs11:token=inuri;id=%01?pin-value=" + secret, "--profile", "generic", "--set",
       "CN=x"},
  };
  for (const auto& args : commands) {
    CAPTURE(args[args.size() > 4 && args[0] == "--json" ? 4 : 3]);
    Outcome result = run_agent(args);
    CAPTURE(result.err);
    CHECK(result.exit == 2);
    CHECK(contains(result.err, "PINs are not accepted inside a PKCS#11 URI; use --pin-source"));
    CHECK_FALSE(contains(result.out, secret));
    CHECK_FALSE(contains(result.err, secret));
  }
}

TEST_CASE("pinentry: a missing program or one that hangs up exits 2 with a message, never killed by SIGPIPE") {
  SoftHsm hsm;
  hsm.add_token("entry", "12345678", "1234");  // the fake pinentry answers 1234
  const char* source_dir = std::getenv("QSCD_TEST_SOURCE_DIR");
  REQUIRE(source_dir != nullptr);
  const std::string fake = std::string(source_dir) + "/tests/support/fake-pinentry.sh";
  const std::vector<std::string> keygen = {"keygen", module_option, "--key-type", "ec:p256", "--label", "p",
                                           "--pin-source", "pinentry"};

  ::setenv("PINENTRY_PROGRAM", "/nonexistent", 1);
  Outcome missing = run_agent(keygen);
  CHECK(missing.exit == 2);
  CHECK(contains(missing.err, "cannot run the pinentry program '/nonexistent'"));

  ::setenv("PINENTRY_PROGRAM", fake.c_str(), 1);
  ::setenv("FAKE_PINENTRY_MODE", "hangup", 1);
  // The agent must ignore SIGPIPE itself, not inherit SIG_IGN from the test runner.
  auto runner_sigpipe = std::signal(SIGPIPE, SIG_DFL);
  Outcome hangup = run_agent(keygen);
  std::signal(SIGPIPE, runner_sigpipe);
  ::unsetenv("FAKE_PINENTRY_MODE");
  CHECK_MESSAGE(hangup.exit == 2, hangup.err);  // 141 when SIGPIPE killed it
  CHECK(contains(hangup.err, "pinentry did not return the user PIN"));

  Outcome through_pinentry = run_agent(keygen);
  ::unsetenv("PINENTRY_PROGRAM");
  CHECK_MESSAGE(through_pinentry.exit == 0, through_pinentry.err);
}

TEST_CASE("new PINs from an interactive source are asked twice and must agree") {
  SoftHsm hsm;
  const char* source_dir = std::getenv("QSCD_TEST_SOURCE_DIR");
  REQUIRE(source_dir != nullptr);
  const std::string fake = std::string(source_dir) + "/tests/support/fake-pinentry.sh";
  const std::string answers = (hsm.dir() / "answers").string();
  ::setenv("PINENTRY_PROGRAM", fake.c_str(), 1);
  ::setenv("FAKE_PINENTRY_PINS", answers.c_str(), 1);
  auto run_with_answers = [&](const std::string& lines, const std::vector<std::string>& args) {
    std::ofstream(answers) << lines;
    Outcome result = run_agent(args);
    CHECK(qscd::test::slurp(answers).empty());  // every answer was asked for
    return result;
  };
  const std::vector<std::string> init = {"token", "init", module_option, "--label", "twice", "--so-pin-source",
                                         "pinentry", "--new-pin-source", "pinentry"};

  // Three pairs that differ: refused, nothing changed.
  Outcome so_differs = run_with_answers("so-pin-1\nso-pin-2\nso-pin-3\nso-pin-4\nso-pin-5\nso-pin-6\n", init);
  CHECK(so_differs.exit == 2);
  CHECK(contains(so_differs.err, "--so-pin-source: the two entries differed 3 times"));
  CHECK(contains(run_agent({"tokens", module_option}).out, "token not initialised"));
  // A mistyped confirmation asks for that PIN twice again, not for the whole init again.
  Outcome agreed = run_with_answers("so-pin-1\nso-pin-1\n1111\n1112\n1111\n1111\n", init);
  REQUIRE_MESSAGE(agreed.exit == 0, agreed.err);

  // change-pin checks the current PIN before it asks for the new one: a wrong one asks nothing.
  const std::vector<std::string> wrong_old = {"token", "change-pin", module_option, "--pin-source",
                                              pin_file(hsm, "wrong-old", "9999"), "--new-pin-source", "pinentry"};
  std::ofstream(answers) << "2222\n2222\n";
  Outcome refused = run_agent(wrong_old);
  CHECK(refused.exit == 3);
  CHECK(contains(refused.err, "CKR_PIN_INCORRECT"));
  CHECK(qscd::test::slurp(answers) == "2222\n2222\n");  // the new PIN was never asked for
  std::ofstream(answers, std::ios::trunc).flush();

  const std::vector<std::string> change = {"token", "change-pin", module_option, "--pin-source",
                                           pin_file(hsm, "old", "1111"), "--new-pin-source", "pinentry"};
  Outcome change_retyped = run_with_answers("2222\n3333\n2222\n2222\n", change);
  CHECK_MESSAGE(change_retyped.exit == 0, change_retyped.err);

  const std::vector<std::string> unblock = {"token", "unblock", module_option, "--so-pin-source",
                                            pin_file(hsm, "so", "so-pin-1"), "--new-pin-source", "pinentry"};
  CHECK(run_with_answers("4444\n5555\n4444\n4444\n", unblock).exit == 0);
  ::unsetenv("FAKE_PINENTRY_PINS");
  ::unsetenv("PINENTRY_PROGRAM");
  CHECK(run_agent({"tokens", module_option, "--pin-source", pin_file(hsm, "new", "4444")}).exit == 0);
}

TEST_CASE("errors name their field: a bad --token URI, and where a bad module path came from") {
  SoftHsm hsm;
  hsm.add_token("named");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"tokens", module_option, "--token", "token=named"},
        std::vector<std::string>{"keygen", module_option, "--token", "token=named", "--key-type", "ec:p256", "--label",
                                 "k", "--pin-source", pin_file(hsm, "pin0", "123456")},
        std::vector<std::string>{"token", "change-pin", module_option, "--token", "token=named", "--pin-source",
                                 pin_file(hsm, "pin", "123456"), "--new-pin-source", pin_file(hsm, "new", "654321")}}) {
    CAPTURE(args[0]);
    Outcome result = run_agent(args);
    CHECK(result.exit == 2);
    CHECK_MESSAGE(contains(result.err, "--token: 'token=named' is not a PKCS#11 URI"), result.err);
  }

  ::setenv("QSCD_AGENT_MODULE", "/etc/hostname", 1);
  Outcome from_env = run_agent({"tokens"});
  ::unsetenv("QSCD_AGENT_MODULE");
  CHECK(from_env.exit == 2);
  CHECK_MESSAGE(contains(from_env.err, "QSCD_AGENT_MODULE /etc/hostname is not a loadable PKCS#11 module"), from_env.err);

  const auto config = hsm.dir() / "agent.toml";
  std::ofstream(config) << "[pkcs11]\nmodule = \"/etc/hostname\"\n";
  Outcome from_config = run_agent({"tokens", "--config", config.string()});
  CHECK(from_config.exit == 2);
  CHECK_MESSAGE(contains(from_config.err, "pkcs11.module of " + config.string() + " /etc/hostname is not a loadable"),
                from_config.err);

  Outcome from_option = run_agent({"tokens", "--module", "/etc/hostname", "--config", config.string()});
  CHECK(contains(from_option.err, "--module /etc/hostname is not a loadable PKCS#11 module"));
}

// The real pinentry-curses, in a pseudo-terminal as a person at a terminal has it: it draws its
// dialog only when told the terminal (OPTION ttyname/ttytype), and the PIN typed there logs in.
TEST_CASE("pinentry-curses in a pseudo-terminal: the dialog appears, the typed PIN logs in; a cancel says what pinentry answered") {
  if (!std::filesystem::exists("/usr/bin/pinentry-curses")) {
    MESSAGE("pinentry-curses is not installed: skipped");
    return;
  }
  SoftHsm hsm;
  hsm.add_token("curses", "12345678", "1234");
  const std::string errors = (hsm.dir() / "stderr").string();
  auto converse = [&](const std::string& keys) {
    int terminal = -1;
    const pid_t pid = ::forkpty(&terminal, nullptr, nullptr, nullptr);
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::setenv("TERM", "xterm", 1);
      ::setenv("PINENTRY_PROGRAM", "/usr/bin/pinentry-curses", 1);
      ::unsetenv("GPG_TTY");
      ::unsetenv("DISPLAY");
      // stdin and stdout stay the terminal; the agent's messages go to a file to be read whole.
      const int error_file = ::open(errors.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (error_file >= 0) ::dup2(error_file, STDERR_FILENO);
      const std::string agent = qscd::test::agent_binary();
      std::vector<std::string> args = {agent, "--json", "tokens", module_option, "--token", "pkcs11:token=curses", "--pin-source", "pinentry"};
      std::vector<char*> argv;
      for (auto& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    std::string screen;
    bool typed = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd ready{terminal, POLLIN, 0};
      if (::poll(&ready, 1, 200) > 0) {
        char buffer[4096];
        const ssize_t n = ::read(terminal, buffer, sizeof buffer);
        if (n <= 0) break;
        screen.append(buffer, static_cast<std::size_t>(n));
      }
      if (!typed && screen.find("user PIN") != std::string::npos) {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        REQUIRE(::write(terminal, keys.data(), keys.size()) == static_cast<ssize_t>(keys.size()));
        typed = true;
      }
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    ::close(terminal);
    return std::make_tuple(typed, WIFEXITED(status) ? WEXITSTATUS(status) : -1, screen);
  };

  // std::tie, not structured bindings: doctest's CHECK_MESSAGE captures in a lambda, which clang 14
  // cannot do with a binding.
  bool drawn = false;
  int code = -1;
  std::string screen;
  std::tie(drawn, code, screen) = converse("1234\r");
  CHECK_MESSAGE(drawn, "no dialog drawn: " << screen);
  CHECK_MESSAGE(code == 0, screen);
  CHECK_MESSAGE(screen.find("\"logged_in\": true") != std::string::npos, screen);

  bool drawn_again = false;
  int cancelled = -1;
  std::string cancel_screen;
  std::tie(drawn_again, cancelled, cancel_screen) = converse("\x1b");  // Escape: cancel
  CHECK(drawn_again);
  CHECK(cancelled == 2);
  const std::string said = qscd::test::slurp(errors);
  CHECK_MESSAGE(said.find("pinentry did not return the user PIN: it answered \"") != std::string::npos, said << cancel_screen);
}

TEST_CASE("keygen refuses a label the token already has, unless --allow-duplicate-label") {
  SoftHsm hsm;
  hsm.add_token("dup");
  std::string pin = pin_file(hsm, "pin", "123456");
  const std::vector<std::string> make = {"keygen", module_option, "--key-type", "ec:p256", "--label", "seal", "--pin-source", pin};
  REQUIRE(run_agent(make).exit == 0);
  const std::size_t before = object_count("dup");
  Outcome again = run_agent(make);
  CHECK(again.exit == 2);
  CHECK(contains(again.err, "--label: token 'dup' already holds a key labelled 'seal'"));
  CHECK(contains(again.err, "--allow-duplicate-label"));
  CHECK(object_count("dup") == before);
  std::vector<std::string> allowed = make;
  allowed.push_back("--allow-duplicate-label");
  CHECK(run_agent(allowed).exit == 0);
  CHECK(object_count("dup") == before + 2);
}

TEST_CASE("an unknown command is an error naming it, the commands and the closest, also with --help") {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"renw", "--help"}, std::vector<std::string>{"--json", "renw"}}) {
    Outcome run = run_agent(args);
    CHECK(run.exit == 2);
    CHECK(contains(run.err, "renw: is not a command (tokens, token, keygen, csr, order, orgs, provision, renew, watch"));
    CHECK(contains(run.err, "did you mean renew?"));
  }
  CHECK(nlohmann::json::parse(run_agent({"--json", "renw"}).out)["error"]["exit_code"] == 2);
}

TEST_CASE("csr be-ebox warns when the key belongs to another e-Box environment") {
  SoftHsm hsm;
  hsm.add_token("ebox");
  std::string pin = pin_file(hsm, "pin", "123456");
  REQUIRE(run_agent({"keygen", module_option, "--key-type", "rsa:2048", "--label", "ebox-acc", "--pin-source", pin}).exit == 0);
  auto csr = [&](const std::string& environment) {
    return run_agent({"csr", module_option, "--key", "pkcs11:token=ebox;object=ebox-acc", "--profile", "be-ebox", "--set",
                      "organization=SMALS", "--set", "cbe_number=BE 0403.019.261", "--set", "environment=" + environment, "--set",
                      "application=employment:job-attest:werkkaart", "--set", "locality=Sint-Gillis", "--set", "state=Brussels",
                      "--pin-source", pin});
  };
  Outcome other = csr("PRD");
  REQUIRE_MESSAGE(other.exit == 0, other.err);
  CHECK(contains(other.err, "this key looks like another e-Box environment's (its label 'ebox-acc' names ACC)"));
  CHECK(contains(other.err, "make a separate key for PRD"));
  Outcome same = csr("ACC");
  REQUIRE_MESSAGE(same.exit == 0, same.err);
  CHECK_FALSE(contains(same.err, "another e-Box environment"));
}
