#pragma once
// Runs a program with extra environment variables, stdout and stderr captured
// separately (through temporary files), and returns its exit code; or starts it and collects
// it later. Header-only.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace qscd::test {

struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// A program started by start_process: its output goes to files until wait() collects it, so a
// test can signal it while it runs (SIGINT during a wait) and read what it printed so far.
class RunningProcess {
 public:
  RunningProcess(pid_t pid, std::filesystem::path dir) : pid_(pid), dir_(std::move(dir)) {}
  RunningProcess(const RunningProcess&) = delete;
  RunningProcess& operator=(const RunningProcess&) = delete;
  ~RunningProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  [[nodiscard]] pid_t pid() const { return pid_; }
  void signal(int number) const { ::kill(pid_, number); }
  [[nodiscard]] std::string err_so_far() const { return slurp(dir_ / "err"); }

  ProcessResult wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    ProcessResult result;
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    result.out = slurp(dir_ / "out");
    result.err = slurp(dir_ / "err");
    return result;
  }

 private:
  static std::string slurp(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }
  pid_t pid_;
  std::filesystem::path dir_;
};

// Starts `args` with the test's environment plus `env`; stdin is /dev/null; `fd3`, when given,
// becomes the child's fd 3 (for --pin-source fd:3).
inline std::unique_ptr<RunningProcess> start_process(const std::vector<std::string>& args,
                                                     const std::map<std::string, std::string>& env = {}, int fd3 = -1) {
  namespace fs = std::filesystem;
  std::string pattern = (fs::temp_directory_path() / "qscd-run-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  fs::path dir = pattern;
  std::string out_path = (dir / "out").string(), err_path = (dir / "err").string();

  std::map<std::string, std::string> merged;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    auto eq = entry.find('=');
    if (eq != std::string::npos) merged[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const auto& [key, value] : env) merged[key] = value;
  std::vector<std::string> env_strings;
  for (const auto& [key, value] : merged) env_strings.push_back(key + "=" + value);
  std::vector<char*> envp;
  for (auto& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings = args;
  std::vector<char*> argv;
  for (auto& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd3 >= 0) posix_spawn_file_actions_adddup2(&actions, fd3, 3);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot run " + args.at(0));
  return std::make_unique<RunningProcess>(pid, dir);
}

inline ProcessResult run_process(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {}) {
  return start_process(args, env)->wait();
}

}  // namespace qscd::test
