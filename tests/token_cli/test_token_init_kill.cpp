// Issue 18, defect 12: `token init --force` SIGKILLed at each C_* call it makes (the shim's
// QSCD_SHIM_KILL) and at random delays, then the same command run again: it must find the token
// the killed run left (by the record in the state folder, docs/pkcs11.md) and finish, every time.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "process.hpp"
#include "qscd/pkcs11/login.hpp"
#include "qscd/pkcs11/module.hpp"
#include "qscd/pkcs11/session.hpp"
#include "qscd/pkcs11/uri.hpp"
#include "softhsm.hpp"

extern char** environ;

namespace {

using qscd::test::SoftHsm;
using qscd::test::softhsm_module;

std::string shim_path() {
  const char* path = std::getenv("QSCD_P11SHIM");
  REQUIRE(path != nullptr);
  return path;
}

std::string secret_file(const std::filesystem::path& dir, const std::string& name, const std::string& value) {
  auto path = dir / name;
  std::ofstream(path) << value << "\n";
  std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::replace);
  return "file:" + path.string();
}

// The agent with `args`, `env` added; SIGKILLed after `kill_after` when given. Returns the exit
// status as a shell reports it (128 + 9 when killed).
int run_agent(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
              std::optional<std::chrono::microseconds> kill_after = std::nullopt) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    for (const auto& [name, value] : env) ::setenv(name.c_str(), value.c_str(), 1);
    if (std::FILE* null = std::fopen("/dev/null", "w")) {
      ::dup2(::fileno(null), 1);
      ::dup2(::fileno(null), 2);
    }
    std::vector<std::string> full = {qscd::test::agent_binary()};
    full.insert(full.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& arg : full) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  if (kill_after) {
    std::this_thread::sleep_for(*kill_after);
    ::kill(pid, SIGKILL);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// What the token store holds after a run, read in-process (one Module at a time).
struct TokenState {
  std::size_t initialised = 0;    // initialised tokens
  bool old_label = false;         // a token still labelled "old"
  bool new_label = false;         // a token labelled "new"
  bool new_user_pin = false;      // ... whose user PIN is the new one
  std::size_t new_objects = 0;    // objects on it, seen with that PIN
};

TokenState token_state() {
  TokenState state;
  qscd::p11::Module module(softhsm_module);
  for (const auto& token : qscd::p11::list_tokens(module)) {
    if (!token.initialized) continue;
    ++state.initialised;
    if (token.label == "old") state.old_label = true;
    if (token.label != "new") continue;
    state.new_label = true;
    if (!token.user_pin_initialized) continue;
    qscd::p11::Session session(module, token.slot, qscd::p11::Session::Access::read_only);
    const char* pin = "24680";
    try {
      qscd::p11::login(session, CKU_USER, {reinterpret_cast<const unsigned char*>(pin), std::strlen(pin)});
      state.new_user_pin = true;
      state.new_objects = session.find(qscd::p11::AttributeTemplate{}).size();
    } catch (const std::exception&) {
    }
  }
  return state;
}

struct Setup {
  SoftHsm hsm;
  std::filesystem::path state = hsm.dir() / "state";
  std::vector<std::string> command;

  Setup() {
    hsm.add_token("old", "12345678", "123456");
    std::filesystem::create_directory(state);
    std::filesystem::permissions(state, std::filesystem::perms::owner_all, std::filesystem::perm_options::replace);
    // A key pair, so the init needs --force and has something to erase.
    REQUIRE(run_agent({"--module", softhsm_module, "--state-dir", state.string(), "keygen", "--token", "pkcs11:token=old",
                       "--pin-source", secret_file(hsm.dir(), "pin", "123456"), "--key-type", "ec:p256", "--label", "k"},
                      {}) == 0);
    command = {"--module", shim_path(), "--state-dir", state.string(), "token", "init", "--token", "pkcs11:token=old",
               "--label", "new", "--force", "--so-pin-source", secret_file(hsm.dir(), "so", "12345678"),
               "--new-pin-source", secret_file(hsm.dir(), "new-pin", "24680")};
  }

  // Records marked done: the line "done 31" (hex of "1").
  [[nodiscard]] std::size_t done_records() const {
    std::error_code ignored;
    std::size_t n = 0;
    for (auto it = std::filesystem::directory_iterator(state / "token-init", ignored); it != std::filesystem::directory_iterator(); ++it) {
      if (it->path().extension() != ".init") continue;
      std::ifstream in(it->path());
      for (std::string line; std::getline(in, line);) n += line == "done 31" ? 1 : 0;
    }
    return n;
  }
  [[nodiscard]] std::size_t records() const {
    std::error_code ignored;
    std::size_t n = 0;
    // Records only: a kill inside the record's own atomic write may leave its temporary file.
    for (auto it = std::filesystem::directory_iterator(state / "token-init", ignored); it != std::filesystem::directory_iterator(); ++it) {
      if (it->path().extension() == ".init") ++n;
    }
    return n;
  }
};

// Where the kill left the token: before C_InitToken took effect, between it and C_InitPIN, or done.
std::string landed(const TokenState& state) {
  if (state.old_label) return "before C_InitToken";
  if (state.new_label && !state.new_user_pin) return "between C_InitToken and C_InitPIN";
  if (state.new_user_pin) return "after C_InitPIN";
  if (state.initialised == 0) return "inside C_InitToken (SoftHSM2 lost the token)";
  return "other";
}

void check_finished(Setup& setup, const std::string& where) {
  INFO(where);
  const int rerun = run_agent(setup.command, {});
  CHECK(rerun == 0);
  const TokenState state = token_state();
  CHECK(state.initialised == 1);
  CHECK(state.new_label);
  CHECK(!state.old_label);
  CHECK(state.new_user_pin);
  CHECK(state.new_objects == 0);
  CHECK(setup.records() == 1);
  CHECK(setup.done_records() == 1);
  // Once more, the same command: done before, nothing changes.
  CHECK(run_agent(setup.command, {}) == 0);
  CHECK(token_state().new_user_pin);
}

}  // namespace

TEST_CASE("token init --force killed at each C_* call it makes: the same command finds the token and finishes") {
  // The calls one run makes, in order, from the shim's count file.
  std::vector<std::string> calls;
  {
    Setup setup;
    const std::string counts = (setup.hsm.dir() / "calls").string();
    REQUIRE(run_agent(setup.command, {{"QSCD_SHIM_COUNT_FILE", counts}}) == 0);
    std::ifstream in(counts);
    for (std::string line; std::getline(in, line);) calls.push_back(line);
  }
  REQUIRE(std::find(calls.begin(), calls.end(), "C_InitToken") != calls.end());
  REQUIRE(std::find(calls.begin(), calls.end(), "C_InitPIN") != calls.end());
  std::map<std::string, int> seen;
  std::map<std::string, int> where;
  for (const std::string& call : calls) {
    const std::string point = call + "@" + std::to_string(++seen[call]);
    if (call == "C_Finalize") continue;  // nothing is left to do then: not a kill in the init
    INFO("killed at " << point);
    Setup setup;
    const int killed = run_agent(setup.command, {{"QSCD_SHIM_KILL", point}});
    // C_GetFunctionList is not a kill point of the shim: that run finishes.
    if (killed != 0) CHECK(killed == 128 + SIGKILL);
    const std::string at = killed == 0 ? std::string("not a kill point of the shim (finished)") : landed(token_state());
    ++where[at];
    check_finished(setup, point + " (" + at + ")");
  }
  std::string summary;
  for (const auto& [at, n] : where) summary += "\n  " + at + ": " + std::to_string(n);
  MESSAGE(seen.size() << " functions, " << calls.size() << " calls; kills landed:" << summary);
  CHECK(where["between C_InitToken and C_InitPIN"] > 0);
}

TEST_CASE("token init --force killed at random delays (seeded; >= 20 trials): the rerun finishes every time") {
  const char* given = std::getenv("QSCD_KILL_SEED");
  const unsigned long seed = given != nullptr ? std::strtoul(given, nullptr, 10) : std::random_device{}();
  MESSAGE("seed " << seed << " (QSCD_KILL_SEED=" << seed << " repeats this run)");
  std::mt19937_64 rng(seed);

  // How long one unkilled run takes: the delays cover it and a little more.
  std::chrono::microseconds whole{};
  {
    Setup setup;
    const auto start = std::chrono::steady_clock::now();
    REQUIRE(run_agent(setup.command, {}) == 0);
    whole = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
  }
  std::uniform_int_distribution<long> delay(0, whole.count());
  constexpr int trials = 30;
  std::map<std::string, int> where;
  for (int trial = 0; trial < trials; ++trial) {
    const std::chrono::microseconds after(delay(rng));
    Setup setup;
    const int killed = run_agent(setup.command, {}, after);
    const std::string at = killed == 0 ? std::string("not killed (finished first)") : landed(token_state());
    ++where[at];
    check_finished(setup, "trial " + std::to_string(trial) + ", killed after " + std::to_string(after.count()) + " us (" + at + ")");
  }
  std::string summary;
  for (const auto& [at, n] : where) summary += "\n  " + at + ": " + std::to_string(n);
  MESSAGE(trials << " trials, one run " << whole.count() << " us; kills landed:" << summary);
}
