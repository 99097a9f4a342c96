#include "hooks/post_install.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace qscd::agent {

namespace {

// Reaps `pid` if it has ended; true when it has.
bool reaped(pid_t pid, int& status) {
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) return true;
    if (done == 0) return false;
    if (errno != EINTR) return true;  // not our child any more: nothing to wait for
  }
}

bool wait_until(pid_t pid, int& status, std::chrono::steady_clock::time_point deadline) {
  while (std::chrono::steady_clock::now() < deadline) {
    if (reaped(pid, status)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return reaped(pid, status);
}

}  // namespace

HookRun run_post_install(const PostInstallHook& hook, const InstalledEvent& event) {
  HookRun run;
  const char* path = std::getenv("PATH");
  std::vector<std::string> environment = {
      std::string("PATH=") + (path != nullptr && *path != '\0' ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
      "QSCD_KEY_URI=" + event.key_uri,
      "QSCD_CERT_SERIAL=" + event.cert_serial,
      "QSCD_CERT_NOT_AFTER=" + event.cert_not_after,
      "QSCD_TOKEN_SERIAL=" + event.token_serial,
      "QSCD_JOB_ID=" + std::to_string(event.job_id),
      "QSCD_JOB_KIND=" + event.job_kind,
  };
  std::vector<char*> envp;
  for (std::string& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::string shell = "/bin/sh", dash_c = "-c", command = hook.command;
  std::vector<char*> argv = {shell.data(), dash_c.data(), command.data(), nullptr};

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  // Its own process group, so a time-out ends what it started too; default signal handling.
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGHUP);
  sigaddset(&defaults, SIGPIPE);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, shell.c_str(), &actions, &attributes, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (spawned != 0) {
    run.summary = std::string("could not start: ") + std::strerror(spawned);
    return run;
  }
  run.started = true;
  int status = 0;
  if (!wait_until(pid, status, std::chrono::steady_clock::now() + hook.timeout)) {
    run.timed_out = true;
    ::kill(-pid, SIGTERM);
    if (!wait_until(pid, status, std::chrono::steady_clock::now() + std::chrono::seconds(2))) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
    run.summary = "killed after " + std::to_string(hook.timeout.count()) + " s";
    return run;
  }
  if (WIFEXITED(status)) {
    run.exit_status = WEXITSTATUS(status);
    run.summary = "exit " + std::to_string(run.exit_status);
  } else if (WIFSIGNALED(status)) {
    run.signal = WTERMSIG(status);
    run.summary = std::string("ended by signal ") + ::strsignal(run.signal);
  }
  return run;
}

}  // namespace qscd::agent
