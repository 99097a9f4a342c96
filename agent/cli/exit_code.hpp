#pragma once
// The exit codes of the product contract (shared/product.md), and the one mapping from what
// went wrong to the code the user sees. main() is its only caller.
#include <exception>
#include <string>

#include "cli/context.hpp"

namespace qscd::agent {

enum class ExitCode : int {
  ok = 0,
  failure = 1,   // unexpected failure
  usage = 2,     // bad input; nothing changed on the token or at the CA
  token = 3,     // token absent, removed, PIN wrong or locked
  ca = 4,        // CA rejected, unreachable after retries, refused the request
  waiting = 5,   // order not issued yet; the job is saved and resumes on rerun
};

struct Failure {
  ExitCode code = ExitCode::failure;
  std::string message;
};

// Every exception type the agent can see, mapped once.
Failure failure_for(std::exception_ptr error);
// How a command that returned a result ends.
ExitCode exit_code_for(CommandStatus status);

}  // namespace qscd::agent
