#pragma once
// Errors that carry the exit code the user should see. main() maps every
// exception to an exit code in one place (agent/main.cpp); nothing else exits.
#include <stdexcept>
#include <string>

#include "exit_code.hpp"

namespace qscd::agent {

class AgentError : public std::runtime_error {
 public:
  AgentError(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  [[nodiscard]] ExitCode code() const noexcept { return code_; }

 private:
  ExitCode code_;
};

// Bad input or usage (exit 2). `field` names what was wrong, `rule` what it must be.
class UsageError : public AgentError {
 public:
  explicit UsageError(const std::string& message) : AgentError(ExitCode::usage, message) {}
  UsageError(const std::string& field, const std::string& rule)
      : AgentError(ExitCode::usage, field + ": " + rule) {}
};

class TokenError : public AgentError {
 public:
  explicit TokenError(const std::string& message) : AgentError(ExitCode::token, message) {}
};

class CaError : public AgentError {
 public:
  explicit CaError(const std::string& message) : AgentError(ExitCode::ca, message) {}
};

// Not an error in the usual sense: the job is saved and waits on the CA.
class StillWaiting : public AgentError {
 public:
  explicit StillWaiting(const std::string& message) : AgentError(ExitCode::waiting, message) {}
};

}  // namespace qscd::agent
