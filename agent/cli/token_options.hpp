#pragma once
// The --token and PIN options every command that works on one token registers.
#include <CLI/CLI.hpp>

#include "token/token_access.hpp"

namespace qscd::agent {

// --token URI.
void add_token_option(CLI::App& command, TokenOptions& options);
// --pin-source and --allow-final-try.
void add_pin_options(CLI::App& command, TokenOptions& options);

}  // namespace qscd::agent
