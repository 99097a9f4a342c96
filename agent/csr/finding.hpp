#pragma once
// One broken rule of a CSR profile, and the refusal that carries a list of them.
#include <string>
#include <vector>

#include "base/errors.hpp"

namespace qscd::agent::csr {

struct Finding {
  std::string rule;      // stable id, e.g. BE-EBOX-OU2-CBE-CHECK
  std::string field;     // the attribute (OU#2, ST, serialNumber), input field (kvk) or part of the request
  std::string found;     // what is there, "(absent)" when nothing is
  std::string expected;  // what the rule wants, in words a user can act on
};

// "RULE field: found ...; expected ..." — one line per finding.
std::string describe(const Finding& finding);

// A subject, key or request that breaks its profile: exit 2, nothing written, the token untouched
// (when raised before signing). what() lists every finding.
class ProfileViolation : public UsageError {
 public:
  ProfileViolation(const std::string& profile, std::vector<Finding> findings);
  [[nodiscard]] const std::vector<Finding>& findings() const noexcept { return findings_; }

 private:
  std::vector<Finding> findings_;
};

}  // namespace qscd::agent::csr
