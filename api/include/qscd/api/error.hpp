#pragma once
// Exceptions of the CertCentral client. Calls that reach (or try to reach) the
// CA return an Outcome instead; these are for what is refused before sending,
// and for callers that turn a failed Outcome into an exception.
#include <stdexcept>
#include <string>

namespace qscd::api {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The client cannot be set up as asked: a plain http:// URL to a remote host,
// an unreadable CA file, an empty API key. Nothing was sent. (Agent exit 2.)
class ConfigError : public Error {
 public:
  ConfigError(const std::string& field, const std::string& rule) : Error(field + ": " + rule) {}
};

// A request breaks a documented product rule. Nothing was sent. (Agent exit 2.)
class ValidationError : public Error {
 public:
  ValidationError(const std::string& field, const std::string& rule)
      : Error(field + ": " + rule), field_(field), rule_(rule) {}
  [[nodiscard]] const std::string& field() const noexcept { return field_; }
  [[nodiscard]] const std::string& rule() const noexcept { return rule_; }

 private:
  std::string field_;
  std::string rule_;
};

enum class OutcomeKind { ok, pending, rejected, unreachable, refused, malformed };

// A call ended in anything but ok, raised by Outcome::value_or_throw().
// auth_failed() is true when CertCentral did not accept the API key.
class CallFailed : public Error {
 public:
  CallFailed(OutcomeKind kind, bool auth_failed, const std::string& message)
      : Error(message), kind_(kind), auth_failed_(auth_failed) {}
  [[nodiscard]] OutcomeKind kind() const noexcept { return kind_; }
  [[nodiscard]] bool auth_failed() const noexcept { return auth_failed_; }

 private:
  OutcomeKind kind_;
  bool auth_failed_;
};

}  // namespace qscd::api
