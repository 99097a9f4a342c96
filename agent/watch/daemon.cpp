#include "watch/daemon.hpp"

#include <poll.h>

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <vector>

#include "base/duration.hpp"
#include "base/errors.hpp"
#include "journal/journal.hpp"
#include "qscd/pkcs11/attributes.hpp"
#include "qscd/pkcs11/session.hpp"
#include "renew/renewer.hpp"
#include "watch/notify.hpp"
#include "watch/schedule.hpp"
#include "watch/signals.hpp"
#include "watch/token_watch.hpp"

namespace qscd::agent {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::seconds;

std::string describe(const p11::TokenInfo& token) { return "token '" + token.label + "' (serial " + token.serial + ")"; }

class Daemon {
 public:
  Daemon(const WatchHost& host, const WatchOptions& options) : host_(host), options_(options), watch_(host.module) {}

  WatchSummary run() {
    rules_ = check_rules(host_.config().watch_rules);
    check_pin_sources(rules_, options_.defaults);
    // Read once: an env: or fd: source cannot be read again for the next job.
    api_key_ = std::make_shared<const api::SecretBytes>(read_api_key(host_.services().ca));
    log_rules();
    const SlotEvents mode = watch_.start();
    if (mode == SlotEvents::polling) {
      say("the module has no slot events (C_WaitForSlotEvent): polling every " + format_duration(options_.poll_every) +
          ", the module re-initialised before each look");
    } else {
      say("the module reports slot events (C_WaitForSlotEvent); looking every " + format_duration(options_.poll_every) + " too");
    }
    TokenChanges first = look();
    notify_.ready(status());
    say("ready: " + status());
    last_status_ = status();
    handle(first);
    schedule_renewal_check();
    const auto started = Clock::now();
    auto next_look = Clock::now() + options_.poll_every;
    auto next_watchdog = Clock::now();

    while (stopped_by_.empty()) {
      auto now = Clock::now();
      auto wake = std::min(next_look, next_check_);
      for (const auto& [id, pending] : pending_) wake = std::min(wake, pending.due);
      if (notify_.watchdog_every()) wake = std::min(wake, next_watchdog);
      if (options_.run_for) wake = std::min(wake, started + *options_.run_for);
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(wake - now).count();
      pollfd fds[2] = {{signals_.fd(), POLLIN, 0}, {watch_.event_fd(), POLLIN, 0}};
      const int count = watch_.event_fd() >= 0 ? 2 : 1;
      (void)::poll(fds, static_cast<nfds_t>(count), static_cast<int>(std::clamp<long long>(wait, 0, 60'000)));
      if (stopping()) break;
      now = Clock::now();
      if (options_.run_for && now >= started + *options_.run_for) {
        stopped_by_ = "--run-for";
        break;
      }
      if (reload_requested_) reload();
      if (notify_.watchdog_every() && now >= next_watchdog) {
        notify_.watchdog();
        next_watchdog = now + *notify_.watchdog_every();
      }
      bool event = false;
      if (count == 2 && (fds[1].revents & POLLIN) != 0) {
        watch_.drain_events();
        event = true;
      }
      if (event || now >= next_look) {
        handle(look());
        next_look = Clock::now() + options_.poll_every;
      }
      run_due_jobs();
      if (!stopping() && Clock::now() >= next_check_) {
        renewal_check();
        schedule_renewal_check();
      }
      if (const std::string now_status = status(); now_status != last_status_) {
        notify_.status(now_status);
        last_status_ = now_status;
      }
    }

    WatchSummary summary;
    summary.stopped_by = stopped_by_;
    summary.installed = installed_;
    summary.waiting_on_ca = pending_.size();
    summary.reloads = reloads_;
    const std::string last = "stopping (" + stopped_by_ + "): " + std::to_string(pending_.size()) +
                             " job(s) wait on CertCentral and go on at the next start";
    notify_.stopping(last);
    say(last);
    return summary;
  }

 private:
  // What a job needs, with the API key read at the start.
  ProvisionServices services() const {
    ProvisionServices services = host_.services();
    services.ca.key = api_key_;
    return services;
  }

  void say(const std::string& message) const { host_.log.progress("watch: " + single_line(message)); }
  void warn(const std::string& message) const { host_.log.warn("watch: " + single_line(message)); }
  void error(const std::string& message) const { host_.log.error("watch: " + single_line(message)); }

  std::string status() const {
    std::string text = "watching " + std::to_string(watch_.present().size()) + " token(s)";
    text += watch_.mode() == SlotEvents::polling ? " (polling every " + format_duration(options_.poll_every) + ")" : " (slot events)";
    text += "; " + std::to_string(pending_.size()) + " job(s) waiting on CertCentral";
    return text;
  }

  void log_rules() const {
    if (rules_.empty()) warn("no [[watch.rule]] in the config: tokens are only resumed, never provisioned or renewed");
    for (const CheckedRule& rule : rules_) say(rule.name() + ": " + rule.rule.action);
  }

  // Reads SIGTERM/SIGINT/SIGHUP that arrived; true once a stop was asked for.
  bool stopping() {
    for (int signal : signals_.read()) {
      if (signal == SIGHUP) {
        reload_requested_ = true;
      } else if (stopped_by_.empty()) {
        stopped_by_ = signal == SIGINT ? "SIGINT" : "SIGTERM";
        say("got " + stopped_by_ + ": stopping after the current step");
      }
    }
    return !stopped_by_.empty();
  }

  void reload() {
    reload_requested_ = false;
    say("got SIGHUP: reloading the config");
    try {
      Config loaded = host_.load_config();
      std::vector<CheckedRule> rules = check_rules(loaded.watch_rules);
      check_pin_sources(rules, options_.defaults);
      host_.adopt_config(std::move(loaded));
      rules_ = std::move(rules);
      ++reloads_;
      blocked_.clear();
      no_rule_logged_.clear();
      say("config reloaded: " + std::to_string(rules_.size()) + " rule(s)");
      log_rules();
    } catch (const std::exception& e) {
      error("the new config is refused, the old one stays in force: " + std::string(e.what()));
      return;
    }
    schedule_renewal_check();
    // The new rules apply to the tokens present as if they had just been inserted.
    for (const auto& [serial, token] : snapshot()) {
      if (stopping()) return;
      apply_rule(token);
    }
  }

  TokenChanges look() {
    try {
      return watch_.look();
    } catch (const std::exception& e) {
      warn("looking at the slots failed (tried again at the next look): " + std::string(e.what()));
      return {};
    }
  }

  std::map<std::string, p11::TokenInfo> snapshot() const { return watch_.present(); }

  void handle(const TokenChanges& changes) {
    for (const p11::TokenInfo& token : changes.uninitialized) {
      say("slot " + std::to_string(token.slot) + ": a token that is not initialised (" +
          (token.model.empty() ? std::string("no model") : token.model) + "); the daemon never initialises tokens");
    }
    for (const std::string& serial : changes.removed) on_removed(serial);
    for (const p11::TokenInfo& token : changes.inserted) {
      if (stopping()) return;
      on_inserted(token);
    }
  }

  void on_removed(const std::string& serial) {
    say("token with serial " + serial + " removed");
    // Its jobs wait for it in NEED_TOKEN and go on when the same token comes back.
    for (auto it = pending_.begin(); it != pending_.end();) {
      it = it->second.serial == serial ? pending_.erase(it) : std::next(it);
    }
    try {
      Journal journal = Journal::open(services().state_dir());
      for (const Job& job : journal.unfinished(serial)) {
        const JobState from = restart_state(job.state);
        if (!is_allowed(from, JobState::need_token)) continue;
        try {
          JobLease lease(journal, job.id);
          if (!is_allowed(lease.job().state, JobState::need_token)) continue;
          journal.transition(job.id, lease.job().state, JobState::need_token, "token removed; waiting for the token with serial " + serial);
          say("job " + std::to_string(job.id) + " waits in NEED_TOKEN for the token with serial " + serial);
        } catch (const JobBusy&) {
          // Another process drives it; it notices the removal itself.
        }
      }
    } catch (const std::exception& e) {
      error("recording the removal of the token with serial " + serial + ": " + e.what());
    }
  }

  void on_inserted(const p11::TokenInfo& token) {
    say(describe(token) + " present (" + token.manufacturer + " " + token.model + ")");
    blocked_.erase(token.serial);
    const CheckedRule* rule = rule_for(rules_, token);
    // A renew rule's Renewer resumes the token's renewal jobs itself.
    resume_unfinished(token, rule != nullptr && rule->action == RuleAction::renew);
    if (stopping()) return;
    apply_rule(token);
  }

  // The journal's unfinished jobs of the token, each resumed once.
  void resume_unfinished(const p11::TokenInfo& token, bool skip_renewals) {
    std::vector<Job> jobs;
    try {
      jobs = Journal::open(services().state_dir()).unfinished(token.serial);
    } catch (const std::exception& e) {
      error("reading the journal: " + std::string(e.what()));
      return;
    }
    for (const Job& job : jobs) {
      if (stopping()) return;
      if (skip_renewals && job.kind == JobKind::renewal) continue;
      say(describe(token) + ": resuming job " + std::to_string(job.id) + " from " + std::string(to_string(job.state)));
      resume_job(token, job.id, job.kind);
    }
  }

  void apply_rule(const p11::TokenInfo& token) {
    if (blocked_.contains(token.serial)) return;
    const CheckedRule* rule = rule_for(rules_, token);
    if (rule == nullptr) {
      if (no_rule_logged_.insert(token.serial).second) say(describe(token) + " matches no watch rule; left alone");
      return;
    }
    switch (rule->action) {
      case RuleAction::resume:
        return;
      case RuleAction::renew:
        renew(token, rule);
        return;
      case RuleAction::provision:
        provision(token, *rule);
        return;
    }
  }

  // A certificate labelled `label` on the token (a public object: no login).
  bool holds_certificate(const p11::TokenInfo& token, const std::string& label) {
    p11::Session session(host_.module(), token.slot, p11::Session::Access::read_only);
    p11::AttributeTemplate query;
    query.token(true).object_class(CKO_CERTIFICATE).label(label);
    return !session.find(query).empty();
  }

  void provision(const p11::TokenInfo& token, const CheckedRule& rule) {
    const WatchRule& r = rule.rule;
    const std::string who = describe(token) + ", " + rule.name();
    try {
      Journal journal = Journal::open(services().state_dir());
      const JobKey key{token.serial, r.label, r.profile, r.product, {}};
      if (const std::optional<Job> job = journal.find(key)) {
        if (job->state == JobState::monitoring) {
          say(who + ": already provisioned by job " + std::to_string(job->id) + " (certificate " + job->cert_serial + "); nothing to do");
        }
        return;  // an unfinished one was resumed on insertion
      }
      for (const Job& job : journal.list()) {
        if (job.key.token_serial == key.token_serial && job.key.key_label == key.key_label && job.key.profile == key.profile &&
            job.key.product == key.product && job.key.renews_serial.empty() && job.state == JobState::failed) {
          warn(who + ": job " + std::to_string(job.id) + " failed (" + job.last_error +
               "); the daemon does not start it again: run `qscd-agent provision` for this token");
          return;
        }
      }
      if (holds_certificate(token, r.label)) {
        say(who + ": the token already holds a certificate labelled '" + r.label + "'; not provisioned again");
        return;
      }
      say(who + ": provisioning (" + r.profile + ", " + r.product + ", key '" + r.label + "' " + r.key_type + ")");
      Provisioner provisioner(services(), provision_options(rule, options_.defaults, token));
      const ProvisionOutcome outcome = provisioner.run(token);
      after_run(token, outcome.job, outcome.stop, outcome.retry_after);
    } catch (...) {
      failed_attempt(token, std::nullopt, std::current_exception(), who + ": provisioning");
    }
  }

  void renew(const p11::TokenInfo& token, const CheckedRule* rule) {
    const std::string who = describe(token) + ": renewal check";
    try {
      Renewer renewer(services(), renew_options(rule, options_.defaults, host_.config(), token));
      const std::vector<RenewalOutcome> outcomes = renewer.run(token);
      std::size_t due = 0;
      for (const RenewalOutcome& outcome : outcomes) {
        if (outcome.plan.due) ++due;
        if (outcome.plan.action == RenewalAction::new_order_needed) warn(describe(token) + ": " + outcome.plan.detail);
        if (outcome.job) after_run(token, *outcome.job, outcome.stop, outcome.retry_after);
      }
      say(who + ": " + std::to_string(outcomes.size()) + " certificate(s), " + std::to_string(due) + " due");
    } catch (...) {
      failed_attempt(token, std::nullopt, std::current_exception(), who);
    }
  }

  void resume_job(const p11::TokenInfo& token, std::int64_t id, JobKind kind) {
    const CheckedRule* rule = rule_for(rules_, token);
    const std::string who = describe(token) + ": job " + std::to_string(id);
    try {
      if (kind == JobKind::renewal) {
        Renewer renewer(services(), renew_options(rule, options_.defaults, host_.config(), token));
        const RenewalOutcome outcome = renewer.resume(token, id);
        if (outcome.job) after_run(token, *outcome.job, outcome.stop, outcome.retry_after);
        return;
      }
      ProvisionOptions options;
      const Job job = Journal::open(services().state_dir()).get(id);
      if (rule != nullptr && rule->action == RuleAction::provision && rule->rule.label == job.key.key_label) {
        options = provision_options(*rule, options_.defaults, token);
      } else {
        options.token = token_options(rule, options_.defaults, token);
        options.no_wait = true;
      }
      options.job_id = id;
      Provisioner provisioner(services(), options);
      const ProvisionOutcome outcome = provisioner.run(token);
      after_run(token, outcome.job, outcome.stop, outcome.retry_after);
    } catch (...) {
      failed_attempt(token, id, std::current_exception(), who);
    }
  }

  void after_run(const p11::TokenInfo& token, const Job& job, RunStop stop, seconds retry_after) {
    const std::string who = describe(token) + ": job " + std::to_string(job.id);
    switch (stop) {
      case RunStop::finished:
        pending_.erase(job.id);
        ++installed_;
        say(who + " done: certificate " + job.cert_serial + " installed (" + std::string(to_string(job.kind)) + ")");
        return;
      case RunStop::stopped:  // the daemon's runs set no stop predicate; a stop ends the loop instead
      case RunStop::waiting_on_ca: {
        const seconds delay = std::max(retry_after, seconds(1));
        pending_[job.id] = PendingJob{token.serial, Clock::now() + delay, seconds(0)};
        say(who + " waits on CertCentral (" + std::string(to_string(job.state)) + "); next look in " + format_duration(delay));
        return;
      }
      case RunStop::waiting_on_person:
        pending_.erase(job.id);
        warn(who + " waits in " + std::string(to_string(job.state)) + ": " + job.last_error);
        return;
      case RunStop::failed:
        pending_.erase(job.id);
        error(who + " failed: " + job.last_error);
        return;
    }
  }

  void failed_attempt(const p11::TokenInfo& token, std::optional<std::int64_t> id, const std::exception_ptr& failure,
                      const std::string& who) {
    std::string what = "unknown error";
    bool pin = false;
    bool busy = false;
    try {
      std::rethrow_exception(failure);
    } catch (const p11::PinError& e) {
      what = e.what();
      pin = true;
    } catch (const JobBusy& e) {
      what = e.what();
      busy = true;
    } catch (const std::exception& e) {
      what = e.what();
    }
    if (pin) {
      // Never the same PIN twice: the token waits until it is inserted again or the config reloaded.
      blocked_.insert(token.serial);
      if (id) pending_.erase(*id);
      error(who + ": " + what + "; nothing more is tried on this token until it is inserted again or the config is reloaded");
      return;
    }
    if (token_went_away(failure)) {
      warn(who + ": the token went away (" + what + ")");
      handle(look());
      if (id && watch_.is_present(token.serial)) pending_[*id] = PendingJob{token.serial, Clock::now() + options_.poll_every, seconds(0)};
      return;
    }
    if (!id) {
      error(who + ": " + what);
      return;
    }
    PendingJob& pending = pending_[*id];
    pending.serial = token.serial;
    pending.backoff = busy ? seconds(30) : std::clamp(pending.backoff * 2, seconds(30), seconds(1800));
    pending.due = Clock::now() + pending.backoff;
    error(who + ": " + what + "; tried again in " + format_duration(pending.backoff));
  }

  void run_due_jobs() {
    const auto now = Clock::now();
    std::vector<std::int64_t> due;
    for (const auto& [id, pending] : pending_) {
      if (pending.due <= now) due.push_back(id);
    }
    for (std::int64_t id : due) {
      if (stopping()) return;
      auto it = pending_.find(id);
      if (it == pending_.end()) continue;
      const auto token = watch_.present().find(it->second.serial);
      if (token == watch_.present().end()) {
        pending_.erase(it);  // parked in NEED_TOKEN by the removal; resumed when it is back
        continue;
      }
      const p11::TokenInfo info = token->second;
      std::optional<Job> job;
      try {
        job = Journal::open(services().state_dir()).find(id);
      } catch (const std::exception& e) {
        error("reading the journal: " + std::string(e.what()));
        continue;
      }
      if (!job || is_terminal(job->state)) {
        pending_.erase(id);
        continue;
      }
      resume_job(info, id, job->kind);
    }
  }

  void schedule_renewal_check() {
    const seconds delay = renewal_check_delay(host_.config().renew_check_every, random_);
    next_check_ = Clock::now() + delay;
    host_.log.info("watch: next renewal check in " + format_duration(delay));
  }

  // renew.check_every: every token present whose rule provisions or renews.
  void renewal_check() {
    for (const auto& [serial, token] : snapshot()) {
      if (stopping()) return;
      if (blocked_.contains(serial)) continue;
      const CheckedRule* rule = rule_for(rules_, token);
      if (rule == nullptr || rule->action == RuleAction::resume) continue;
      renew(token, rule);
    }
  }

  const WatchHost& host_;
  const WatchOptions& options_;
  Signals signals_;  // before TokenWatch starts its thread
  Notifier notify_;
  TokenWatch watch_;
  std::vector<CheckedRule> rules_;
  std::shared_ptr<const api::SecretBytes> api_key_;
  std::map<std::int64_t, PendingJob> pending_;
  std::set<std::string> blocked_;         // serials whose PIN was refused
  std::set<std::string> no_rule_logged_;  // serials already logged as matching no rule
  Clock::time_point next_check_{};
  std::mt19937_64 random_{std::random_device{}()};
  std::string stopped_by_;
  bool reload_requested_ = false;
  std::string last_status_;
  std::size_t installed_ = 0;
  std::size_t reloads_ = 0;
};

}  // namespace

WatchSummary run_watch(const WatchHost& host, const WatchOptions& options) {
  if (options.poll_every.count() <= 0) throw UsageError("--poll-every", "must be at least one second");
  Daemon daemon(host, options);
  return daemon.run();
}

}  // namespace qscd::agent
