#include "cli/token_options.hpp"

namespace qscd::agent {

void add_token_option(CLI::App& command, TokenOptions& options) {
  command.add_option("--token", options.token, "PKCS#11 URI of the token (may be left out when only one is present)");
}

void add_pin_options(CLI::App& command, TokenOptions& options) {
  command.add_option("--pin-source", options.pin_source, "user PIN source: prompt, pinentry, fd:N, file:PATH, env:NAME");
  command.add_flag("--allow-final-try", options.allow_final_try,
                   "send the PIN even when one more wrong PIN would lock the token");
}

}  // namespace qscd::agent
