#pragma once
// What the randomized kill tests share (issue 18, "Crash safety beyond the planned points"): a
// seeded RNG (QSCD_KILL_SEED repeats a run), an agent run SIGKILLed after a delay or at a shim
// kill point, and the tally of where the kills landed and what the reruns left.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e_fixture.hpp"

namespace qscd::e2e {

inline constexpr int killed_by_sigkill = 128 + 9;

inline std::uint64_t kill_seed() {
  const char* given = std::getenv("QSCD_KILL_SEED");
  return given != nullptr ? std::strtoull(given, nullptr, 10) : std::random_device{}();
}

inline std::string shim_module() {
  const char* path = std::getenv("QSCD_P11SHIM");
  REQUIRE(path != nullptr);
  return path;
}

// argv with env, output to /dev/null; SIGKILLed after `kill_after` when given. Returns the exit
// status as a shell shows it (137 when killed) and how long it ran.
struct KilledRun {
  int exit_code = -1;
  std::chrono::microseconds ran{};
};

inline KilledRun run_killed(const std::vector<std::string>& argv_in, const std::map<std::string, std::string>& env,
                            std::optional<std::chrono::microseconds> kill_after) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    if (env.count(entry.substr(0, entry.find('='))) == 0) env_strings.push_back(entry);
  }
  for (const auto& [name, value] : env) env_strings.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (auto& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv_in;
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const auto started = std::chrono::steady_clock::now();
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  int status = 0;
  if (kill_after) {
    // Sleep until the delay, unless the run ends first (then there is nothing to kill).
    const auto deadline = started + *kill_after;
    while (std::chrono::steady_clock::now() < deadline) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started)};
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    ::kill(pid, SIGKILL);
  }
  ::waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
          std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started)};
}

// The PKCS#11 calls one run made, in order, as "C_X@n" kill points (the shim's count file).
inline std::vector<std::string> kill_points(const std::string& count_file) {
  std::vector<std::string> points;
  std::map<std::string, int> seen;
  std::istringstream in(test::slurp(count_file));
  for (std::string call; std::getline(in, call);) {
    if (call.empty() || call == "C_GetFunctionList") continue;  // not a kill point of the shim
    points.push_back(call + "@" + std::to_string(++seen[call]));
  }
  return points;
}

// SoftHSM2's file store rewrites an object file in place (ftruncate to 0, then one write): the
// token's token.object at every C_Login, a key's file at every attribute change. A SIGKILL
// between the two leaves the file empty, and SoftHSM2 then no longer lists the token (or the
// object). That is the module's own durability gap, not the agent's, and a card's writes are
// atomic: such a trial is counted apart and its token given up. Returns the files cut to 0
// bytes in the token folder of the current SOFTHSM2_CONF.
inline std::vector<std::string> softhsm_cut_files() {
  std::vector<std::string> cut;
  const char* conf = std::getenv("SOFTHSM2_CONF");
  if (conf == nullptr) return cut;
  std::istringstream in(test::slurp(conf));
  std::string dir;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("directories.tokendir = ", 0) == 0) dir = line.substr(23);
  }
  std::error_code ignored;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ignored); it != std::filesystem::recursive_directory_iterator(); ++it) {
    if (it->path().extension() == ".object" && it->is_regular_file(ignored) && it->file_size(ignored) == 0) {
      cut.push_back(it->path().filename().string());
    }
  }
  return cut;
}

struct KillTally {
  int trials = 0;
  int killed = 0;          // runs the kill stopped
  int finished_first = 0;  // runs that ended before their delay
  int reruns_finished = 0;
  int extra_orders = 0;    // jobs with other than one order-creating request
  int extra_keys = 0;      // jobs with other than one key pair
  int stuck = 0;           // jobs not finished after their rerun
  int module_lost = 0;     // trials where SoftHSM2 lost a file to the kill (softhsm_cut_files)
  std::map<std::string, int> landed;

  [[nodiscard]] std::string report(const std::string& what) const {
    std::ostringstream out;
    out << what << ": " << trials << " trials, " << killed << " killed, " << finished_first << " finished before the kill; "
        << reruns_finished << " reruns finished; jobs with orders != 1: " << extra_orders << ", keys != 1: " << extra_keys
        << ", stuck: " << stuck << "; SoftHSM2 lost a file of its own (trial given up): " << module_lost << "\n  kills landed:";
    for (const auto& [where, n] : landed) out << "\n    " << where << ": " << n;
    return out.str();
  }
};

// The state a job with `label` was left in, from `jobs --json` ("no job yet" before it exists).
inline std::string job_state(const Workspace& ws, const CertCentralSim& sim, const std::string& label) {
  auto listed = ws.agent(sim, {"--json", "jobs"});
  REQUIRE_MESSAGE(listed.exit_code == 0, listed.err);
  std::string state = "no job yet";
  const json jobs = json::parse(listed.out)["jobs"];  // a copy: a range-for over a temporary's member dangles
  for (const auto& job : jobs) {
    if (job.value("key_label", "") == label) state = job.value("state", "");
  }
  return state;
}

// Milliseconds since midnight of a journal time ("2026-12-04T02:32:08.263Z"), for differences.
inline long journal_ms(const std::string& at) {
  int h = 0, m = 0, sec = 0, ms = 0;
  if (std::sscanf(at.c_str(), "%*d-%*d-%*dT%d:%d:%d.%dZ", &h, &m, &sec, &ms) != 4) return 0;
  return ((h * 60L + m) * 60L + sec) * 1000L + ms;
}

// How long the job with `label` took from its creation to its last change (its steps), in us.
inline std::chrono::microseconds job_span(const Workspace& ws, const CertCentralSim& sim, const std::string& label) {
  auto listed = ws.agent(sim, {"--json", "jobs"});
  REQUIRE(listed.exit_code == 0);
  const json jobs = json::parse(listed.out)["jobs"];
  for (const auto& job : jobs) {
    if (job.value("key_label", "") == label) {
      return std::chrono::milliseconds(journal_ms(job.value("updated_at", "")) - journal_ms(job.value("created_at", "")));
    }
  }
  return {};
}

// Order-creating requests the CA answered with success, since `from` audit lines.
inline std::size_t placed_since(const std::vector<json>& audit, std::size_t from, const std::string& suffix) {
  std::size_t n = 0;
  for (std::size_t i = from; i < audit.size(); ++i) {
    const auto& line = audit[i];
    const int status = line.value("status", 0);
    if (line.value("method", "") == "POST" && line.value("path", "").ends_with(suffix) && status >= 200 && status < 300) ++n;
  }
  return n;
}

}  // namespace qscd::e2e
