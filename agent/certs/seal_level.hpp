#pragma once
// What a seal certificate is, read from its certificate policies (ETSI EN 319 411-2) and its
// qcStatements (ETSI EN 319 412-5): a qualified e-seal on a QSCD, an advanced e-seal with a
// qualified certificate, or a seal certificate that is not qualified. Public linters have no
// legal-person seal type, so these checks are ours.
#include <openssl/x509.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qscd::agent {

inline constexpr const char* oid_qcp_l = "0.4.0.194112.1.1";       // QCP-l: qualified, legal person
inline constexpr const char* oid_qcp_l_qscd = "0.4.0.194112.1.3";  // QCP-l-qscd: the same, key on a QSCD

struct QcStatementsReport {
  bool compliance = false;  // 0.4.0.1862.1.1
  bool sscd = false;        // 0.4.0.1862.1.4
  bool type_eseal = false;  // QcType 0.4.0.1862.1.6 with 0.4.0.1862.1.6.2
};

// In the order of what they promise: each level is more than the one before.
enum class SealLevel {
  not_qualified,       // neither QCP-l nor QCP-l-qscd with QcCompliance and QcType eseal
  advanced_qcp_l,      // a qualified certificate for an advanced e-seal (QCP-l); the key is not on a QSCD
  qualified_qscd,      // a qualified e-seal: QCP-l-qscd, QcCompliance, QcSSCD, QcType eseal
};

// "qualified e-seal on a QSCD (QCP-l-qscd)", "advanced e-seal (QCP-l)", "not a qualified seal certificate".
std::string_view describe(SealLevel level);
// "qualified_qscd", "advanced_qcp_l", "not_qualified" (for --json).
std::string_view to_string(SealLevel level);
// The values of --expect: "qualified" (on a QSCD) or "advanced" (QCP-l). Throws UsageError.
SealLevel parse_expected_seal(std::string_view text, std::string_view option);

struct SealVerdict {
  SealLevel level = SealLevel::not_qualified;
  bool policy_qcp_l = false;
  bool policy_qcp_l_qscd = false;
  QcStatementsReport qc;
  // What the certificate lacks to be `wanted` ("certificate policy QCP-l-qscd (0.4.0.194112.1.3)",
  // "qcStatement QcSSCD (0.4.0.1862.1.4)", ...); empty when it is at least that.
  [[nodiscard]] std::vector<std::string> missing_for(SealLevel wanted) const;
};

QcStatementsReport read_qc_statements(X509* certificate);
SealVerdict classify_seal(X509* certificate);

}  // namespace qscd::agent
