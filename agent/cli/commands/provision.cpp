// `provision`: the whole chain on one token (or every matching token with --all), journaled
// and resumable. The steps are in agent/provision.cpp; this file is the command line and the
// report.
#include <mutex>
#include <thread>

#include "base/duration.hpp"
#include "base/errors.hpp"
#include "base/stop.hpp"
#include "cli/job_report.hpp"
#include "cli/token_options.hpp"
#include "provision/provisioner.hpp"
#include "cli/registry.hpp"

namespace qscd::agent::cmd {

namespace {

struct ProvisionCli {
  ProvisionOptions options;
  std::string timeout;
  std::string poll_interval;
  std::int64_t job = 0;
};

nlohmann::json outcome_json(const ProvisionOutcome& outcome) {
  const Job& job = outcome.job;
  nlohmann::json out = {{"job_id", job.id},
                        {"state", std::string(to_string(job.state))},
                        {"token_serial", job.key.token_serial},
                        {"token_label", outcome.token_label},
                        {"key_label", job.key.key_label},
                        {"profile", job.key.profile},
                        {"product", job.key.product},
                        {"already_done", outcome.already_done}};
  out["order_id"] = job.order_id ? nlohmann::json(*job.order_id) : nlohmann::json(nullptr);
  out["certificate_serial"] = job.cert_serial.empty() ? nlohmann::json(nullptr) : nlohmann::json(job.cert_serial);
  out["key_uri"] = outcome.key_uri.empty() ? nlohmann::json(nullptr) : nlohmann::json(outcome.key_uri);
  if (!job.last_error.empty()) out["last_error"] = job.last_error;
  if (outcome.stop == RunStop::waiting_on_ca) out["next_look_seconds"] = outcome.retry_after.count();
  if (outcome.stop == RunStop::stopped) out["stopped_by"] = stop_signal_name();
  if (outcome.checks) out["checks"] = outcome.checks->to_json();
  return out;
}

std::string outcome_text(const ProvisionOutcome& outcome) {
  const Job& job = outcome.job;
  std::string text = "token '" + outcome.token_label + "' (serial " + job.key.token_serial + "): job " +
                     std::to_string(job.id) + " " + state_text(job.state);
  if (outcome.already_done) text += " (already done; nothing changed)";
  text += "\n";
  if (job.order_id) text += "  order:       " + std::to_string(*job.order_id) + "\n";
  if (!job.cert_serial.empty()) text += "  certificate: serial " + job.cert_serial + "\n";
  if (!outcome.key_uri.empty()) text += "  key:         " + outcome.key_uri + "\n";
  text += run_stop_text(outcome.stop, job);
  return text;
}

void run(Context& context, ProvisionCli& cli) {
  ProvisionOptions& options = cli.options;
  if (!cli.timeout.empty()) options.timeout = parse_duration(cli.timeout, "--timeout");
  if (!cli.poll_interval.empty()) options.poll_interval = parse_duration(cli.poll_interval, "--poll-interval");
  if (cli.job != 0) options.job_id = cli.job;

  Provisioner provisioner(context.provision_services(), options);
  const std::vector<p11::TokenInfo> tokens = provisioner.tokens();

  std::vector<ProvisionOutcome> outcomes(tokens.size());
  if (tokens.size() == 1) {
    outcomes[0] = provisioner.run(tokens[0]);
  } else {
    // One worker per token; the module was initialised with CKF_OS_LOCKING_OK, each worker has
    // its own session, journal connection and HTTP client.
    std::vector<std::exception_ptr> errors(tokens.size());
    std::vector<std::thread> workers;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      workers.emplace_back([&, i] {
        try {
          outcomes[i] = provisioner.run(tokens[i]);
        } catch (...) {
          errors[i] = std::current_exception();
        }
      });
    }
    for (auto& worker : workers) worker.join();
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (!errors[i]) continue;
      try {
        std::rethrow_exception(errors[i]);
      } catch (const std::exception& e) {
        context.log.error("token '" + tokens[i].label + "': " + e.what());
      }
      // The first failure decides the exit code through main's one mapping, after every
      // worker has finished and reported.
      std::rethrow_exception(errors[i]);
    }
  }

  CommandResult result;
  CommandStatus worst = CommandStatus::done;
  nlohmann::json list = nlohmann::json::array();
  for (const ProvisionOutcome& outcome : outcomes) {
    list.push_back(outcome_json(outcome));
    result.text += outcome_text(outcome);
    worst = worse(worst, command_status(outcome.stop, outcome.job));
  }
  result.json = options.all ? nlohmann::json{{"jobs", list}} : list.front();
  result.status = worst;
  if (!options.all && outcomes.front().stop == RunStop::failed) {
    context.log.error("job " + std::to_string(outcomes.front().job.id) + " failed: " + outcomes.front().job.last_error);
  }
  context.set_result(std::move(result));
}

}  // namespace

void add_provision(CLI::App& app, Context& context) {
  auto cli = std::make_shared<ProvisionCli>();
  ProvisionOptions& o = cli->options;
  CLI::App* command = app.add_subcommand("provision", "key on the token, CSR, CertCentral order, wait, install: journaled and resumable");
  add_token_option(*command, o.token);
  add_pin_options(*command, o.token);
  command->add_option("--sign-pin-source", o.sign_pin_source,
                      "where the PIN of a key that asks for it at each signature (CKA_ALWAYS_AUTHENTICATE) comes from; default: the user PIN");
  command->add_option("--profile", o.profile, "be-ebox, pkio-server, pkio-eseal or generic");
  command->add_option("--product", o.product, "CertCentral product name_id, e.g. pkio_private_services_server");
  command->add_option("--key", o.key, "use this existing key (PKCS#11 URI) instead of generating one");
  command->add_option("--key-type", o.key_type, "rsa:2048, rsa:3072, rsa:4096, ec:p256 or ec:p384");
  command->add_option("--label", o.label, "CKA_LABEL of the key pair (and of the job)");
  command->add_option("--id", o.id, "CKA_ID in hex (default: SHA-1 of the public key)");
  auto* file = command->add_option("--subject-file", o.subject_file, "TOML subject file");
  auto* set = command->add_option("--set", o.set, "subject field name=value (repeatable, order kept)");
  file->excludes(set);
  command->add_flag("--rsa-pss", o.rsa_pss, "sign the CSR with RSASSA-PSS");
  command->add_option("--order-file", o.order_file, "the order body (organization, validity, ...) as JSON");
  command->add_option("--order", o.attach_order, "attach the CSR to this existing order (reissue or QSCD pickup)");
  command->add_flag("--approve", o.approve, "approve the order's pending request (the API key's user must be allowed to)");
  command->add_flag("--no-wait", o.no_wait, "stop after submitting (exit 5); the same command continues later");
  command->add_option("--timeout", cli->timeout, "stop waiting after this long (exit 5), e.g. 30m");
  command->add_option("--poll-interval", cli->poll_interval, "the longest time between status checks while waiting (default: a tenth of the time waited, at least 3 s, at most 1 h)");
  command->add_option("--trust", o.trust, "trust anchors the certificate chain must lead to");
  command->add_option("--expect", o.expect,
                      "the least a seal certificate must be to be installed: qualified (a qualified e-seal on a QSCD, "
                      "QCP-l-qscd) or advanced (QCP-l); the product's promise applies anyway");
  command->add_option("--job", cli->job, "continue this job (see `jobs`)");
  command->add_flag("--all", o.all, "every matching token at once, one worker per token");
  command->callback([cli, &context] { run(context, *cli); });
}

}  // namespace qscd::agent::cmd
