#pragma once
// The list of subcommands, one registration function per file in agent/cmd/.
#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

#include "cli/context.hpp"

namespace qscd::agent::cmd {

using Register = void (*)(CLI::App&, Context&);

// Declared here, defined in the command's own file (agent/cmd/<name>.cpp).
void add_tokens(CLI::App& app, Context& context);
void add_token(CLI::App& app, Context& context);
void add_keygen(CLI::App& app, Context& context);
void add_csr(CLI::App& app, Context& context);
void add_order(CLI::App& app, Context& context);
void add_orgs(CLI::App& app, Context& context);
void add_export(CLI::App& app, Context& context);
void add_install(CLI::App& app, Context& context);
void add_jobs(CLI::App& app, Context& context);
void add_provision(CLI::App& app, Context& context);
void add_renew(CLI::App& app, Context& context);
void add_watch(CLI::App& app, Context& context);

inline std::vector<Register> all_commands() {
  return {
      add_tokens,
      add_token,
      add_keygen,
      add_csr,
      add_order,
      add_orgs,
      add_provision,
      add_renew,
      add_watch,
      add_install,
      add_export,
      add_jobs,
  };
}

}  // namespace qscd::agent::cmd
