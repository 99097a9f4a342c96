#pragma once
// Each subcommand lives in its own file under agent/cmd/ and registers itself
// here. A command's callback stores its result in the Context; it never prints.
#include <CLI/CLI.hpp>

#include "cli/context.hpp"

namespace qscd::agent {

void register_commands(CLI::App& app, Context& context);

}  // namespace qscd::agent
