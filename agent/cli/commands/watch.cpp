// `watch`: the daemon (agent/watch/). This file is the command line and the last report.
#include "base/duration.hpp"
#include "cli/registry.hpp"
#include "cli/token_options.hpp"
#include "watch/daemon.hpp"

namespace qscd::agent::cmd {

namespace {

struct WatchCli {
  TokenOptions token;  // --pin-source, --allow-final-try: the rules' default
  std::string sign_pin_source;
  std::string poll_every = "3s";
  std::string run_for;
};

void run(Context& context, WatchCli& cli) {
  WatchOptions options;
  options.poll_every = parse_duration(cli.poll_every, "--poll-every");
  if (!cli.run_for.empty()) options.run_for = parse_duration(cli.run_for, "--run-for");
  options.defaults.pin_source = cli.token.pin_source;
  options.defaults.sign_pin_source = cli.sign_pin_source;
  options.defaults.allow_final_try = cli.token.allow_final_try;

  const WatchHost host{
      [&context]() -> p11::Module& { return context.module(); },
      context.log,
      [&context]() -> const Config& { return context.config(); },
      [&context] { return context.load_config_again(); },
      [&context](Config config) { context.replace_config(std::move(config)); },
      [&context] { return context.provision_services(); },
  };
  const WatchSummary summary = run_watch(host, options);

  CommandResult result;
  result.json = {{"stopped_by", summary.stopped_by},
                 {"installed", summary.installed},
                 {"waiting_on_ca", summary.waiting_on_ca},
                 {"reloads", summary.reloads}};
  result.text = "watch stopped (" + summary.stopped_by + "): " + std::to_string(summary.installed) +
                " certificate(s) installed, " + std::to_string(summary.waiting_on_ca) + " job(s) waiting on CertCentral\n";
  context.set_result(std::move(result));
}

}  // namespace

void add_watch(CLI::App& app, Context& context) {
  auto cli = std::make_shared<WatchCli>();
  CLI::App* command = app.add_subcommand(
      "watch", "daemon: run the config's [[watch.rule]] on inserted tokens, resume jobs, check renewals (systemd Type=notify)");
  add_pin_options(*command, cli->token);
  command->add_option("--sign-pin-source", cli->sign_pin_source,
                      "where the PIN of a key that asks for it at each signature comes from, for rules without sign_pin_source; default: the user PIN");
  command->add_option("--poll-every", cli->poll_every,
                      "how often to look at the slots when the module has no slot events (default 3s)");
  command->add_option("--run-for", cli->run_for, "stop by itself after this long, as on SIGTERM (tests, benchmarks)");
  command->callback([cli, &context] { run(context, *cli); });
}

}  // namespace qscd::agent::cmd
