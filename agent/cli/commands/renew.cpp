// `renew`: every due certificate on the token(s) renewed by its own journaled job (agent/renew/);
// --dry-run lists what would be done. This file is the command line and the report.
#include <cmath>

#include "base/duration.hpp"
#include "base/errors.hpp"
#include "base/stop.hpp"
#include "cli/job_report.hpp"
#include "cli/registry.hpp"
#include "cli/token_options.hpp"
#include "renew/renewer.hpp"

namespace qscd::agent::cmd {

namespace {

struct RenewCli {
  RenewOptions options;
  int within = 0;
  bool allow_new_order = false;
  std::string timeout;
  std::string poll_interval;
};

double rounded(double days) { return std::round(days * 10.0) / 10.0; }

nlohmann::json outcome_json(const RenewalOutcome& outcome) {
  const RenewalPlan& plan = outcome.plan;
  nlohmann::json out = {{"token_label", plan.token_label},
                        {"token_serial", plan.token_serial},
                        {"key_label", plan.key_label},
                        {"certificate_serial", plan.cert_serial},
                        {"due", plan.due},
                        {"action", std::string(to_string(plan.action))}};
  if (!plan.key_uri.empty()) out["key_uri"] = plan.key_uri;
  if (!plan.subject.empty()) out["subject"] = plan.subject;
  if (!plan.not_after.empty()) {
    out["not_after"] = plan.not_after;
    out["days_left"] = rounded(plan.days_left);
    out["window_days"] = rounded(plan.window_days);
  }
  if (!plan.why.empty()) out["why"] = plan.why;
  if (!plan.detail.empty()) out["detail"] = plan.detail;
  out["order_id"] = plan.order_id ? nlohmann::json(*plan.order_id) : nlohmann::json(nullptr);
  if (!plan.order_valid_till.empty()) out["order_valid_till"] = plan.order_valid_till;
  if (outcome.job) {
    const Job& job = *outcome.job;
    out["job_id"] = job.id;
    out["state"] = std::string(to_string(job.state));
    // A failed renewal's new pair is removed again: there is no new key to name.
    out["new_key_uri"] = outcome.stop == RunStop::failed ? nlohmann::json(nullptr) : nlohmann::json(outcome.key_uri);
    out["new_certificate_serial"] = job.cert_serial.empty() ? nlohmann::json(nullptr) : nlohmann::json(job.cert_serial);
    if (!job.last_error.empty()) out["last_error"] = job.last_error;
    if (outcome.stop == RunStop::waiting_on_ca) out["next_look_seconds"] = outcome.retry_after.count();
    if (outcome.stop == RunStop::stopped) out["stopped_by"] = stop_signal_name();
  }
  return out;
}

std::string outcome_text(const RenewalOutcome& outcome, bool dry_run) {
  const RenewalPlan& plan = outcome.plan;
  std::string text = "token '" + plan.token_label + "', key '" + plan.key_label + "': certificate " + plan.cert_serial;
  if (!plan.not_after.empty()) text += " (ends " + plan.not_after + ")";
  text += "\n";
  if (!plan.why.empty()) text += "  " + std::string(plan.due ? "due: " : "not due: ") + plan.why + "\n";
  if (!plan.detail.empty()) text += "  " + std::string(dry_run ? "would do: " : "") + plan.detail + "\n";
  if (outcome.job) {
    const Job& job = *outcome.job;
    text += "  renewal job " + std::to_string(job.id) + ": " + state_text(job.state) + "\n";
    if (!job.cert_serial.empty()) text += "  new certificate: serial " + job.cert_serial + "\n";
    if (!outcome.key_uri.empty() && outcome.stop != RunStop::failed) text += "  new key: " + outcome.key_uri + "\n";
    text += run_stop_text(outcome.stop, job, "; the old pair is untouched and stays in use");
  }
  return text;
}

CommandStatus status_of(const RenewalOutcome& outcome, bool dry_run) {
  // A dry run is a report: what each certificate needs is in its action, not in the exit code.
  if (dry_run) return CommandStatus::done;
  if (outcome.plan.action == RenewalAction::no_order) return CommandStatus::failed_at_ca;
  // A paid order is never placed silently: the renewal waits on a person's --allow-new-order.
  if (outcome.plan.action == RenewalAction::new_order_needed) return CommandStatus::waiting_on_ca;
  if (dry_run || !outcome.job) return CommandStatus::done;
  return command_status(outcome.stop, *outcome.job);
}

void run(Context& context, RenewCli& cli) {
  RenewOptions& options = cli.options;
  options.within_days = cli.within != 0 ? cli.within : context.config().renew_within_days;
  options.allow_new_order = cli.allow_new_order || context.config().renew_allow_new_order;
  if (!cli.timeout.empty()) options.timeout = parse_duration(cli.timeout, "--timeout");
  if (!cli.poll_interval.empty()) options.poll_interval = parse_duration(cli.poll_interval, "--poll-interval");
  if (cli.within < 0) throw UsageError("--within", "must be a whole number of days from 1 to 3650");

  Renewer renewer(context.provision_services(), options);
  std::vector<RenewalOutcome> outcomes;
  for (const p11::TokenInfo& token : renewer.tokens()) {
    for (RenewalOutcome& outcome : renewer.run(token)) outcomes.push_back(std::move(outcome));
  }

  CommandResult result;
  CommandStatus worst = CommandStatus::done;
  nlohmann::json list = nlohmann::json::array();
  std::size_t due = 0;
  for (const RenewalOutcome& outcome : outcomes) {
    list.push_back(outcome_json(outcome));
    result.text += outcome_text(outcome, options.dry_run);
    if (outcome.plan.due) ++due;
    worst = worse(worst, status_of(outcome, options.dry_run));
    if (outcome.plan.action == RenewalAction::new_order_needed) context.log.warn(outcome.plan.detail);
    if (outcome.job && outcome.stop == RunStop::failed) {
      context.log.error("renewal job " + std::to_string(outcome.job->id) + " failed: " + outcome.job->last_error);
    }
  }
  if (outcomes.empty()) result.text = "no certificate with a private key on the token(s)\n";
  result.json = {{"dry_run", options.dry_run},
                 {"within_days", options.within_days},
                 {"due", due},
                 {"certificates", list}};
  result.status = worst;
  context.set_result(std::move(result));
}

}  // namespace

void add_renew(CLI::App& app, Context& context) {
  auto cli = std::make_shared<RenewCli>();
  RenewOptions& o = cli->options;
  CLI::App* command = app.add_subcommand(
      "renew", "renew every certificate on the token(s) that is due: new key, reissue (or new order), install, old pair retired");
  add_token_option(*command, o.token);
  add_pin_options(*command, o.token);
  command->add_option("--sign-pin-source", o.sign_pin_source,
                      "where the PIN of a key that asks for it at each signature (CKA_ALWAYS_AUTHENTICATE) comes from; default: the user PIN");
  command->add_option("--within", cli->within,
                      "due when at most this many days are left (default: config renew.within_days, 30), or a third of the lifetime when shorter");
  command->add_flag("--all", o.all, "every initialised token (matching --token when given)");
  command->add_flag("--dry-run", o.dry_run, "list every certificate, its time left and what would be done; change nothing");
  command->add_flag("--reuse-key", o.reuse_key, "certify the same key again instead of making a new pair");
  command->add_flag("--keep-old", o.keep_old, "keep the replaced pair, relabelled '<label> (superseded)'");
  command->add_flag("--allow-new-order", cli->allow_new_order,
                    "when the order runs out before a new certificate would, place a new (paid) order (config renew.allow_new_order)");
  command->add_option("--order-file", o.order_file, "the new order's body as JSON (with --allow-new-order; default: the old order's)");
  command->add_flag("--approve", o.approve, "approve the reissue or order request (the API key's user must be allowed to)");
  command->add_flag("--no-wait", o.no_wait, "stop after submitting (exit 5); the same command continues later");
  command->add_option("--timeout", cli->timeout, "stop waiting after this long (exit 5), e.g. 30m");
  command->add_option("--poll-interval", cli->poll_interval, "the longest time between status checks while waiting");
  command->add_option("--trust", o.trust, "trust anchors the certificate chain must lead to");
  command->callback([cli, &context] { run(context, *cli); });
}

}  // namespace qscd::agent::cmd
