#pragma once
// The exit codes of the product contract (shared/product.md), in one place.
namespace qscd::agent {

enum class ExitCode : int {
  ok = 0,
  failure = 1,   // unexpected failure
  usage = 2,     // bad input; nothing changed on the token or at the CA
  token = 3,     // token absent, removed, PIN wrong or locked
  ca = 4,        // CA rejected, unreachable after retries, refused the request
  waiting = 5,   // order not issued yet; the job is saved and resumes on rerun
};

}  // namespace qscd::agent
