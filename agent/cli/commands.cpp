#include "cli/commands.hpp"

#include "cli/registry.hpp"

namespace qscd::agent {

void register_commands(CLI::App& app, Context& context) {
  for (const auto& add : cmd::all_commands()) add(app, context);
}

}  // namespace qscd::agent
