// Inputs that are not regular files, or are endless, or an unsafe state folder: refused at once
// with exit 2 and a message naming the option and the rule, nothing read past the cap, nothing
// changed on the token, at the CA or in the journal (issue 18's defects 1, 2, 6, 7).
#include <sys/stat.h>

#include <chrono>

#include "e2e_fixture.hpp"

using namespace qscd::e2e;
using qscd::test::CertCentralSim;

namespace {

// qscd-agent with exactly these arguments (the workspace's runs bring --config and --state-dir).
qscd::test::ProcessResult bare_agent(std::vector<std::string> args) {
  args.insert(args.begin(), qscd::test::agent_binary());
  return qscd::test::run_process(args, {});
}

}  // namespace

TEST_CASE("a FIFO, a device or a folder where a file is expected: exit 2 at once, nothing changed") {
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  const std::string fifo = ws.path("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string folder = ws.path("a-folder");
  std::filesystem::create_directory(folder);
  const std::string pin = "file:" + ws.path("pin");
  const std::string token = std::string("pkcs11:token=") + token_label;

  struct Row {
    const char* name;
    std::vector<std::string> args;
    std::string expected;  // in the message: the option and the rule
  };
  const std::vector<Row> rows = {
      {"csr check of a FIFO", {"csr", "check", fifo, "--profile", "generic"}, "is a FIFO; give a regular file"},
      {"csr check of /dev/zero", {"csr", "check", "/dev/zero", "--profile", "generic"}, "/dev/zero is a device"},
      {"csr check of a folder", {"csr", "check", folder, "--profile", "generic"}, "is a folder"},
      {"a FIFO as --pin-source file:", {"tokens", "--pin-source", "file:" + fifo}, "--pin-source: " + fifo + " is not a regular file"},
      {"a FIFO as --subject-file", {"csr", "--key", token + ";object=x", "--profile", "generic", "--subject-file", fifo, "--pin-source", pin},
       "--subject-file: " + fifo + " is a FIFO"},
      {"a FIFO as --order-file",
       {"provision", "--token", token, "--pin-source", pin, "--profile", "generic", "--product", "ssl_basic", "--key-type", "ec:p256",
        "--label", "k", "--set", "CN=x.example.nl", "--order-file", fifo},
       "--order-file: " + fifo + " is a FIFO"},
      {"/dev/zero as --order-file",
       {"provision", "--token", token, "--pin-source", pin, "--profile", "generic", "--product", "ssl_basic", "--key-type", "ec:p256",
        "--label", "k", "--set", "CN=x.example.nl", "--order-file", "/dev/zero"},
       "/dev/zero is a device"},
      {"a FIFO as install --cert", {"install", "--key", token + ";object=x", "--cert", fifo, "--pin-source", pin}, "is a FIFO"},
  };
  for (const Row& row : rows) {
    INFO(std::string(row.name));
    const auto start = std::chrono::steady_clock::now();
    auto run = ws.agent(sim, row.args);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(20));
    CHECK_MESSAGE(run.exit_code == 2, run.err);
    CHECK_MESSAGE(run.err.find(row.expected) != std::string::npos, run.err);
  }
  // --config and --state-dir come from the workspace's command line: these runs make their own.
  for (const std::string& config : {fifo, folder}) {
    INFO(config);
    auto run = bare_agent({"--config", config, "--module", qscd::test::softhsm_module, "--state-dir", ws.state_dir(), "jobs"});
    CHECK(run.exit_code == 2);
    CHECK_MESSAGE(run.err.find("--config: " + config + " is a") != std::string::npos, run.err);
  }
  check_untouched(ws, sim);
}

TEST_CASE("the config is checked on every run, also when --module and --state-dir make it unnecessary") {
  CertCentralSim sim;
  Workspace ws;
  ws.write("agent.toml", "[renew]\nwithin_days = -5\n");
  auto run = ws.agent(sim, {"jobs"});
  CHECK(run.exit_code == 2);
  CHECK(run.err.find("renew.within_days: must be a whole number of days from 1 to 3650") != std::string::npos);
}

TEST_CASE("--state-dir: a folder others may write is refused and left as it is; a new one is made 0700") {
  CertCentralSim sim;
  Workspace ws;
  const std::string shared = ws.path("shared");
  std::filesystem::create_directory(shared);
  ::chmod(shared.c_str(), 01777);
  const std::string config = ws.path("agent.toml");
  const char* module = qscd::test::softhsm_module;
  auto run = bare_agent({"--config", config, "--module", module, "--state-dir", shared, "jobs"});
  CHECK(run.exit_code == 2);
  CHECK(run.err.find("not be writable by group or others") != std::string::npos);
  struct stat st {};
  REQUIRE(::stat(shared.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 01777);
  CHECK_FALSE(std::filesystem::exists(shared + "/journal.sqlite"));

  const std::string fresh = ws.path("fresh/state");
  auto made = bare_agent({"--config", config, "--module", module, "--state-dir", fresh, "jobs"});
  CHECK_MESSAGE(made.exit_code == 0, made.err);
  REQUIRE(::stat(fresh.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
}

TEST_CASE("--json: a wrong command line still prints one JSON document, the error, on stdout") {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--json", "provision", "--bogus"}, {"--json", "nosuch"}, {"--json"}, {"jobs", "--json", "--state-dir"}}) {
    auto run = bare_agent(args);
    CHECK(run.exit_code == 2);
    json doc = json::parse(run.out, nullptr, false);
    REQUIRE_MESSAGE(doc.is_object(), "stdout: " << run.out);
    CHECK(doc["error"]["exit_code"] == 2);
    CHECK_FALSE(doc["error"]["message"].get<std::string>().empty());
  }
}

TEST_CASE("labels and new PINs that are not UTF-8 text, or hold a NUL: exit 2, the token unchanged") {
  CertCentralSim sim;
  Workspace ws;
  const std::string pin = "file:" + ws.path("pin");
  const std::string token = std::string("pkcs11:token=") + token_label;
  const std::string nul_pin = "file:" + ws.write("nul-pin", std::string("12\0" "3456", 7));
  const std::string latin1_pin = "file:" + ws.write("latin1-pin", "p\xe9n1234");
  auto keygen = ws.agent(sim, {"keygen", "--token", token, "--pin-source", pin, "--key-type", "ec:p256", "--label", "seal\xff"});
  CHECK(keygen.exit_code == 2);
  CHECK(keygen.err.find("--label: the key label is not UTF-8 (byte 5)") != std::string::npos);
  auto change = ws.agent(sim, {"token", "change-pin", "--token", token, "--pin-source", pin, "--new-pin-source", nul_pin});
  CHECK(change.exit_code == 2);
  CHECK(change.err.find("holds a NUL byte") != std::string::npos);
  auto latin1 = ws.agent(sim, {"token", "change-pin", "--token", token, "--pin-source", pin, "--new-pin-source", latin1_pin});
  CHECK(latin1.exit_code == 2);
  CHECK(latin1.err.find("is not UTF-8") != std::string::npos);
  // The PIN is unchanged: the old one still logs in.
  CHECK(ws.objects().empty());
}
