#pragma once
// `watch`, the daemon: notices token insertion and removal (watch/token_watch), runs the
// matching [[watch.rule]]'s action (provision, renew, resume), resumes the journal's unfinished
// jobs of the tokens present, looks at orders waiting on the CA on the waiting schedule, checks
// renewals every renew.check_every plus jitter, talks to systemd (watch/notify), reloads the
// config on SIGHUP and stops on SIGTERM/SIGINT after the step it is in. Signals arrive on a
// signalfd: no work is done in a signal handler. Every job runs with --no-wait semantics, so the
// loop never blocks on the CA.
#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

#include "base/config.hpp"
#include "base/log.hpp"
#include "provision/provisioner.hpp"
#include "watch/rules.hpp"

namespace qscd::agent {

struct WatchOptions {
  std::chrono::seconds poll_every{3};  // --poll-every: C_GetSlotList when the module has no slot events
  RuleDefaults defaults;                // --pin-source, --sign-pin-source, --allow-final-try
  // Stop after this long (tests and the benchmark; nullopt: until a signal).
  std::optional<std::chrono::seconds> run_for;
};

// What the daemon needs from the process; the CLI's Context provides it.
struct WatchHost {
  std::function<p11::Module&()> module;
  const Log& log;
  std::function<const Config&()> config;           // the config in force
  std::function<Config()> load_config;             // reads it again (SIGHUP); throws when it is bad
  std::function<void(Config)> adopt_config;        // makes a loaded config the one in force
  std::function<ProvisionServices()> services;     // for the config in force
};

struct WatchSummary {
  std::string stopped_by;           // "SIGTERM", "SIGINT", "--run-for"
  std::size_t installed = 0;        // certificates installed by this run
  std::size_t waiting_on_ca = 0;    // jobs that wait on CertCentral at the stop
  std::size_t reloads = 0;
};

// Runs until SIGTERM or SIGINT (or run_for). Throws UsageError for a bad config at the start
// (the rules are checked before anything else), p11 errors when the module cannot be used.
WatchSummary run_watch(const WatchHost& host, const WatchOptions& options);

}  // namespace qscd::agent
