// `qscd-agent watch` end to end: the daemon runs as a child process against certcentral-sim and
// a SoftHSM2 store; the test initialises tokens, moves a token's folder away and back, sends
// signals, and reads the results back independently (the journal through `jobs`, pkcs11-tool,
// the simulator's audit, the hook's own output file).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "../e2e/e2e_fixture.hpp"

namespace {

using namespace qscd::e2e;
using namespace std::chrono_literals;
using qscd::test::CertCentralSim;
namespace fs = std::filesystem;

inline constexpr const char* cn = "watch.example.nl";

// The daemon as a child: stdout and stderr into files, signals by pid.
class Daemon {
 public:
  // `module` and `env` (the shim's knobs) default to SoftHSM2 itself; `poll_every` is the look
  // the daemon takes without a slot event.
  Daemon(const Workspace& ws, const CertCentralSim& sim, const std::string& name, const std::string& module = qscd::test::softhsm_module,
         const std::map<std::string, std::string>& env = {}, const std::string& poll_every = "1s")
      : err_(ws.path(name + ".err")), out_(ws.path(name + ".out")) {
    std::vector<std::string> args = {qscd::test::agent_binary(), "--config", ws.path("agent.toml"), "--module", module,
                                     "--state-dir", ws.state_dir(), "--api-url", sim.url(), "--ca-file", sim.ca_file(),
                                     "--api-key-source", "env:CERTCENTRAL_API_KEY", "watch", "--pin-source", "file:" + ws.path("pin"),
                                     "--poll-every", poll_every, "--run-for", "120s"};
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::setenv("CERTCENTRAL_API_KEY", CertCentralSim::api_key, 1);
      for (const auto& [variable, value] : env) ::setenv(variable.c_str(), value.c_str(), 1);
      int err = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int out = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(out, 1);
      ::dup2(err, 2);
      std::vector<char*> argv;
      for (auto& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    REQUIRE_MESSAGE(wait_for_log("watch: ready"), log());
  }
  ~Daemon() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  [[nodiscard]] std::string log() const { return qscd::test::slurp(err_); }
  [[nodiscard]] std::size_t count(const std::string& text) const {
    const std::string all = log();
    std::size_t n = 0;
    for (auto at = all.find(text); at != std::string::npos; at = all.find(text, at + 1)) ++n;
    return n;
  }
  bool wait_for_log(const std::string& text, std::size_t times = 1, std::chrono::seconds limit = 30s) const {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (count(text) >= times) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }
  void signal(int number) const { REQUIRE(::kill(pid_, number) == 0); }
  // SIGTERM, then the exit status (-1 when it did not exit within `limit`).
  int stop(std::chrono::seconds limit = 15s) {
    signal(SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(50ms);
    }
    return -1;
  }
  [[nodiscard]] std::string out() const { return qscd::test::slurp(out_); }

 private:
  std::string err_;
  std::string out_;
  pid_t pid_ = -1;
};

// The jobs in the journal, read by `jobs --json` (a process of its own).
json jobs(const Workspace& ws, const CertCentralSim& sim) {
  auto listed = ws.agent(sim, {"--json", "jobs"});
  REQUIRE_MESSAGE(listed.exit_code == 0, listed.err);
  return json::parse(listed.out)["jobs"];
}

// Waits until some job is in `state` (up to `limit`); returns it, or null.
json wait_for_job_state(const Workspace& ws, const CertCentralSim& sim, const std::string& state, std::chrono::seconds limit = 30s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    for (const auto& job : jobs(ws, sim)) {
      if (job["state"] == state) return job;
    }
    std::this_thread::sleep_for(200ms);
  }
  return nullptr;
}

std::string rule(const std::string& token, const Workspace& ws) {
  return "[[watch.rule]]\n"
         "match = \"pkcs11:model=SoftHSM%20v2;token=" + token + "\"\n"
         "action = \"provision\"\n"
         "profile = \"generic\"\n"
         "product = \"ssl_basic\"\n"
         "key_type = \"ec:p256\"\n"
         "label = \"seal\"\n"
         "subject_file = \"" + ws.path("subject.toml") + "\"\n"
         "order_file = \"" + ws.path("order.json") + "\"\n";
}

// A config with a post-install hook that appends one line per run to hook.log, and `rules`.
void write_config(const Workspace& ws, const std::string& rules) {
  ws.write("subject.toml", std::string("subject = [[\"C\", \"NL\"], [\"O\", \"Voorbeeld BV\"], [\"CN\", \"") + cn + "\"]]\n");
  ws.write("order.json", ssl_order_body(cn));
  const std::string hook = ws.write("hook.sh", "#!/bin/sh\necho \"$QSCD_CERT_SERIAL $QSCD_TOKEN_SERIAL\" >> " + ws.path("hook.log") + "\n");
  fs::permissions(hook, fs::perms::owner_all, fs::perm_options::replace);
  ws.write("agent.toml", "[hooks]\npost_install = \"" + hook + "\"\n" + rules);
}

std::size_t hook_runs(const Workspace& ws) {
  std::ifstream in(ws.path("hook.log"));
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) ++n;
  }
  return n;
}

// The certificates labelled `label` on token `token_label`, as pkcs11-tool lists them.
std::size_t certificates_on(const std::string& token_label, const std::string& label) {
  auto listed = qscd::test::run_command({"pkcs11-tool", "--module", qscd::test::softhsm_module, "--token-label", token_label, "-O",
                                         "--type", "cert"});
  if (listed.exit != 0) return 0;
  return count_objects(parse_objects(listed.out), certificate, label);
}

// The SoftHSM2 token folder, from the store's softhsm2.conf.
fs::path token_dir() {
  std::ifstream in(std::getenv("SOFTHSM2_CONF"));
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("directories.tokendir = ")) return line.substr(std::strlen("directories.tokendir = "));
  }
  FAIL("no tokendir in SOFTHSM2_CONF");
  return {};
}

}  // namespace

TEST_CASE("watch: a rule provisions a token initialised while it runs, the hook runs once per certificate, SIGHUP adds a rule, SIGTERM exits 0") {
  Workspace ws;
  CertCentralSim sim({"--auto-approve"});
  write_config(ws, rule("new1", ws));
  Daemon daemon(ws, sim, "watch");
  // The workspace's token "e2e" matches no rule: logged once, left alone.
  CHECK(daemon.wait_for_log("token 'e2e' (serial"));
  CHECK(daemon.wait_for_log("matches no watch rule; left alone"));
  // SoftHSM2's free slot: reported, never initialised.
  CHECK(daemon.count("not initialised") >= 1);

  ws.add_token("new1");
  REQUIRE_MESSAGE(daemon.wait_for_log("done: certificate"), daemon.log());
  const json done = wait_for_job_state(ws, sim, "MONITORING", 5s);
  REQUIRE(done != nullptr);
  CHECK(done["key_label"] == "seal");
  CHECK(certificates_on("new1", "seal") == 1);
  CHECK(certificates_on(token_label, "seal") == 0);
  CHECK(order_posts(sim, "ssl_basic").size() == 1);
  CHECK(hook_runs(ws) == 1);

  // A few more looks change nothing: no second order, no second hook run.
  std::this_thread::sleep_for(3s);
  CHECK(order_posts(sim, "ssl_basic").size() == 1);
  CHECK(hook_runs(ws) == 1);
  CHECK(daemon.count("matches no watch rule") == 1);

  // A config that does not parse is refused; the old one stays in force.
  ws.write("agent.toml", "[[watch.rule]]\nmatch = \"pkcs11:tokn=x\"\naction = \"provision\"\n");
  daemon.signal(SIGHUP);
  CHECK(daemon.wait_for_log("the new config is refused"));

  // SIGHUP with a rule for "e2e" as well: the token present gets its key and certificate.
  write_config(ws, rule("new1", ws) + rule(token_label, ws));
  daemon.signal(SIGHUP);
  REQUIRE_MESSAGE(daemon.wait_for_log("config reloaded"), daemon.log());
  REQUIRE_MESSAGE(daemon.wait_for_log("done: certificate", 2), daemon.log());
  CHECK(certificates_on(token_label, "seal") == 1);
  CHECK(certificates_on("new1", "seal") == 1);
  CHECK(order_posts(sim, "ssl_basic").size() == 2);
  CHECK(hook_runs(ws) == 2);
  CHECK(daemon.count("already provisioned by job") >= 1);  // new1, seen again after the reload

  CHECK(daemon.stop() == 0);
  CHECK(daemon.out().find("watch stopped (SIGTERM): 2 certificate(s) installed") != std::string::npos);
}

TEST_CASE("watch: SIGTERM while the order waits on the CA exits 0; the next start finishes the same job") {
  Workspace ws;
  CertCentralSim sim({"--auto-approve", "--issue-after-ms", "7000"});
  write_config(ws, rule(token_label, ws));
  json waiting;
  {
    Daemon daemon(ws, sim, "first");
    REQUIRE_MESSAGE(daemon.wait_for_log("waits on CertCentral"), daemon.log());
    waiting = wait_for_job_state(ws, sim, "CA_WORKING", 5s);
    REQUIRE(waiting != nullptr);
    const auto before = std::chrono::steady_clock::now();
    CHECK(daemon.stop() == 0);
    CHECK(std::chrono::steady_clock::now() - before < 5s);
    CHECK(daemon.log().find("stopping (SIGTERM): 1 job(s) wait on CertCentral") != std::string::npos);
  }
  CHECK(jobs(ws, sim)[0]["state"] == "CA_WORKING");
  CHECK(certificates_on(token_label, "seal") == 0);

  Daemon again(ws, sim, "second");
  REQUIRE_MESSAGE(again.wait_for_log("resuming job " + as_text(waiting["id"]) + " from CA_WORKING"), again.log());
  REQUIRE_MESSAGE(again.wait_for_log("done: certificate"), again.log());
  const json listed = jobs(ws, sim);
  REQUIRE(listed.size() == 1);
  CHECK(listed[0]["state"] == "MONITORING");
  CHECK(listed[0]["order_id"] == waiting["order_id"]);
  CHECK(order_posts(sim, "ssl_basic").size() == 1);
  CHECK(certificates_on(token_label, "seal") == 1);
  CHECK(hook_runs(ws) == 1);
  CHECK(again.stop() == 0);
}

TEST_CASE("watch: a token removed mid-job parks the job in NEED_TOKEN; the same token back, the job goes on") {
  Workspace ws;
  CertCentralSim sim({"--auto-approve", "--issue-after-ms", "4000"});
  write_config(ws, rule(token_label, ws));
  Daemon daemon(ws, sim, "watch");
  REQUIRE_MESSAGE(daemon.wait_for_log("waits on CertCentral"), daemon.log());
  REQUIRE(wait_for_job_state(ws, sim, "CA_WORKING", 5s) != nullptr);

  // The token's folder away: to SoftHSM2 (re-initialised at each look) the token is gone.
  const fs::path tokens = token_dir();
  const fs::path away = tokens.parent_path() / "away";
  fs::create_directory(away);
  for (const auto& entry : fs::directory_iterator(tokens)) fs::rename(entry.path(), away / entry.path().filename());
  REQUIRE_MESSAGE(daemon.wait_for_log("removed"), daemon.log());
  const json parked = wait_for_job_state(ws, sim, "NEED_TOKEN", 10s);
  REQUIRE_MESSAGE(parked != nullptr, daemon.log());
  CHECK(parked["waiting_from"] == "CA_WORKING");
  // Meanwhile the CA issues; nothing is installed without the token.
  std::this_thread::sleep_for(5s);
  CHECK(daemon.count("done: certificate") == 0);

  for (const auto& entry : fs::directory_iterator(away)) fs::rename(entry.path(), tokens / entry.path().filename());
  REQUIRE_MESSAGE(daemon.wait_for_log("done: certificate"), daemon.log());
  const json listed = jobs(ws, sim);
  REQUIRE(listed.size() == 1);
  CHECK(listed[0]["state"] == "MONITORING");
  CHECK(listed[0]["token_serial"] == ws.token_serial());
  CHECK(order_posts(sim, "ssl_basic").size() == 1);
  CHECK(certificates_on(token_label, "seal") == 1);
  CHECK(hook_runs(ws) == 1);
  CHECK(daemon.stop() == 0);
}

TEST_CASE("watch: slot events from a card reader (the shim's C_WaitForSlotEvent): inserted, provisioned, pulled out mid-job, back, finished, with no polling look") {
  const char* shim = std::getenv("QSCD_P11SHIM");
  REQUIRE_MESSAGE(shim != nullptr, "QSCD_P11SHIM is not set; run through ctest");
  Workspace ws;
  CertCentralSim sim({"--auto-approve", "--issue-after-ms", "4000"});
  write_config(ws, rule(token_label, ws));
  // The token starts pulled out; the test plugs it in and out by replacing this file (renamed
  // into place, so the shim never reads it half-written).
  const std::string removed = ws.write("removed", std::string(token_label) + "\n");
  const auto plug = [&](bool in) {
    ws.write("removed.new", in ? "" : std::string(token_label) + "\n");
    fs::rename(ws.path("removed.new"), removed);
  };
  const std::string trace = ws.path("watch.trace");
  // A look every hour: whatever the daemon notices within this test, it noticed by a slot event.
  Daemon daemon(ws, sim, "watch", shim, {{"QSCD_SHIM_REMOVED_FILE", removed}, {"QSCD_SHIM_TRACE", trace}}, "1h");
  CHECK_MESSAGE(daemon.count("the module reports slot events") == 1, daemon.log());
  CHECK_MESSAGE(daemon.count("watching 0 token(s)") >= 1, daemon.log());

  plug(true);
  REQUIRE_MESSAGE(daemon.wait_for_log("waits on CertCentral"), daemon.log());
  REQUIRE(wait_for_job_state(ws, sim, "CA_WORKING", 5s) != nullptr);

  plug(false);
  REQUIRE_MESSAGE(daemon.wait_for_log("removed"), daemon.log());
  const json parked = wait_for_job_state(ws, sim, "NEED_TOKEN", 10s);
  REQUIRE_MESSAGE(parked != nullptr, daemon.log());
  CHECK(parked["waiting_from"] == "CA_WORKING");
  std::this_thread::sleep_for(5s);  // the CA issues meanwhile; nothing is installed without the token
  CHECK(daemon.count("done: certificate") == 0);

  plug(true);
  REQUIRE_MESSAGE(daemon.wait_for_log("done: certificate"), daemon.log());
  const json listed = jobs(ws, sim);
  REQUIRE(listed.size() == 1);
  CHECK(listed[0]["state"] == "MONITORING");
  CHECK(order_posts(sim, "ssl_basic").size() == 1);
  CHECK(certificates_on(token_label, "seal") == 1);
  CHECK(hook_runs(ws) == 1);
  CHECK(daemon.stop() == 0);

  // Events, not polling: the module was never re-initialised for a look (one C_Initialize, the
  // C_Finalize at the end), and each plug-in and pull-out was a C_WaitForSlotEvent answer.
  std::size_t initializes = 0;
  std::size_t events = 0;
  std::ifstream in(trace);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("C_Initialize ")) ++initializes;
    if (line.starts_with("C_WaitForSlotEvent CKR_OK ")) ++events;
  }
  CHECK(initializes == 1);
  CHECK(events >= 3);
}
