#include "csr/finding.hpp"

#include <openssl/err.h>

#include "base/ossl.hpp"

namespace qscd::agent::csr {

namespace {

std::string list(const std::string& profile, const std::vector<Finding>& findings) {
  std::string text = "breaks profile " + profile + " (" + std::to_string(findings.size()) +
                     (findings.size() == 1 ? " rule" : " rules") + "):";
  for (const auto& finding : findings) text += "\n  " + describe(finding);
  return text;
}

}  // namespace

std::string describe(const Finding& finding) {
  return finding.rule + " " + finding.field + ": found " + finding.found + "; expected " + finding.expected;
}

ProfileViolation::ProfileViolation(const std::string& profile, std::vector<Finding> findings)
    : UsageError(list(profile, findings)), findings_(std::move(findings)) {}


}  // namespace qscd::agent::csr
