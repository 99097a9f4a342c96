#pragma once
// Runs the qscd-agent binary as a child process for tests: argv without any
// secret, optional secret handed over on fd 3, stdout and stderr captured.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace qscd::test {

// Sets an environment variable for a scope (unset again at its end, also when a REQUIRE fails),
// so a child process or the module under test sees it and the test cases after it do not.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) { ::setenv(name, value.c_str(), 1); }
  ~ScopedEnv() { ::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

struct Outcome {
  int exit = -1;
  std::string out;
  std::string err;
};

inline std::string agent_binary() {
  const char* bin = std::getenv("QSCD_AGENT_BIN");
  REQUIRE_MESSAGE(bin != nullptr, "QSCD_AGENT_BIN is not set; run through ctest");
  return bin;
}

// Runs `argv` (argv[0] a path or a name on PATH). When `fd3` is given, it is written to the child's
// fd 3 (for --pin-source fd:3) only after `while_waiting(pid)` has run, so a
// test can inspect the running process before it gets its secret.
inline Outcome run_command(const std::vector<std::string>& argv_in, const std::string* fd3 = nullptr,
                           const std::function<void(pid_t)>& while_waiting = {}) {
  int out_pipe[2], err_pipe[2], secret_pipe[2] = {-1, -1};
  REQUIRE(::pipe2(out_pipe, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(err_pipe, O_CLOEXEC) == 0);
  if (fd3 != nullptr) REQUIRE(::pipe2(secret_pipe, O_CLOEXEC) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    if (fd3 != nullptr) ::dup2(secret_pipe[0], 3);
    std::vector<std::string> full = argv_in;
    std::vector<char*> argv;
    for (auto& arg : full) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (fd3 != nullptr) {
    ::close(secret_pipe[0]);
    if (while_waiting) while_waiting(pid);
    REQUIRE(::write(secret_pipe[1], fd3->data(), fd3->size()) == static_cast<ssize_t>(fd3->size()));
    ::close(secret_pipe[1]);
  }
  Outcome outcome;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_count = 2;
  char buffer[4096];
  while (open_count > 0) {
    if (::poll(fds, 2, -1) < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_count;
      } else {
        (i == 0 ? outcome.out : outcome.err).append(buffer, static_cast<std::size_t>(n));
      }
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  outcome.exit = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return outcome;
}

// Runs `qscd-agent args...` (see run_command).
inline Outcome run_agent(const std::vector<std::string>& args, const std::string* fd3 = nullptr,
                         const std::function<void(pid_t)>& while_waiting = {}) {
  std::vector<std::string> full{agent_binary()};
  full.insert(full.end(), args.begin(), args.end());
  return run_command(full, fd3, while_waiting);
}

// The whole content of a file ("" when it does not exist).
inline std::string slurp(const std::string& path) {
  std::string content;
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return content;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) content.append(buffer, n);
  std::fclose(file);
  return content;
}

}  // namespace qscd::test
