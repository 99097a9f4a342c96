#pragma once
// The configured command run after a certificate is installed (config hooks.post_install), as
// certbot's and lego's deploy hooks are: the service that signs with the token usually needs a
// reload. It runs under /bin/sh -c with a clean environment (PATH and the QSCD_* variables
// below, nothing of the agent's: no secret source can leak into it), stdin from /dev/null,
// stdout onto stderr (stdout is the agent's one JSON document), and a time limit.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace qscd::agent {

struct PostInstallHook {
  std::string command;
  std::chrono::seconds timeout{60};
};

// What the hook is told, as QSCD_KEY_URI, QSCD_CERT_SERIAL, QSCD_CERT_NOT_AFTER, QSCD_TOKEN_SERIAL,
// QSCD_JOB_ID and QSCD_JOB_KIND (provision | renewal).
struct InstalledEvent {
  std::string key_uri;
  std::string cert_serial;
  std::string cert_not_after;  // UTC, ISO 8601
  std::string token_serial;
  std::int64_t job_id = 0;
  std::string job_kind;
};

struct HookRun {
  bool started = false;
  bool timed_out = false;  // killed after the time limit
  int exit_status = -1;    // when it exited
  int signal = 0;          // when a signal ended it
  // "exit 0", "exit 3", "killed after 60 s", "could not start: ..." — for the log.
  std::string summary;
  [[nodiscard]] bool succeeded() const { return started && !timed_out && signal == 0 && exit_status == 0; }
};

// Runs the hook and waits for it (at most hook.timeout, then SIGTERM, then SIGKILL). Never throws
// for the hook's own failure: the certificate is installed either way, the caller logs the result.
HookRun run_post_install(const PostInstallHook& hook, const InstalledEvent& event);

}  // namespace qscd::agent
