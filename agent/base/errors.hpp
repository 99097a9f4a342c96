#pragma once
// The agent's domain errors. They say what went wrong, not how the process ends: main.cpp maps
// each type to an exit code in one place, and nothing else picks one.
#include <stdexcept>
#include <string>

namespace qscd::agent {

class AgentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad input or usage: refused before anything changed. `field` names what was wrong, `rule`
// what it must be.
class UsageError : public AgentError {
 public:
  explicit UsageError(const std::string& message) : AgentError(message) {}
  UsageError(const std::string& field, const std::string& rule) : AgentError(field + ": " + rule) {}
};

// The token cannot do what the job needs (absent, removed, PIN, unexpected objects).
class TokenError : public AgentError {
 public:
  explicit TokenError(const std::string& message) : AgentError(message) {}
};

// CertCentral refused, rejected or could not be reached.
class CaError : public AgentError {
 public:
  explicit CaError(const std::string& message) : AgentError(message) {}
};

// Not a failure: the order is not issued yet and the job is saved.
class StillWaiting : public AgentError {
 public:
  explicit StillWaiting(const std::string& message) : AgentError(message) {}
};

}  // namespace qscd::agent
