#include "certs/seal_level.hpp"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <memory>

#include "base/errors.hpp"
#include "base/ossl.hpp"

namespace qscd::agent {

namespace {

struct AsnSequenceFree {
  void operator()(ASN1_SEQUENCE_ANY* seq) const noexcept { sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free); }
};
using AsnSequencePtr = std::unique_ptr<ASN1_SEQUENCE_ANY, AsnSequenceFree>;

struct PoliciesFree {
  void operator()(CERTIFICATEPOLICIES* policies) const noexcept { CERTIFICATEPOLICIES_free(policies); }
};
using PoliciesPtr = std::unique_ptr<CERTIFICATEPOLICIES, PoliciesFree>;

// The elements of a DER SEQUENCE held in an ASN1_TYPE (V_ASN1_SEQUENCE keeps
// the whole encoding), decoded by OpenSSL as a SEQUENCE OF ANY.
AsnSequencePtr sequence_of(const ASN1_TYPE* type) {
  if (type == nullptr || type->type != V_ASN1_SEQUENCE) return nullptr;
  const unsigned char* p = type->value.sequence->data;
  AsnSequencePtr seq(d2i_ASN1_SEQUENCE_ANY(nullptr, &p, type->value.sequence->length));
  ERR_clear_error();
  return seq;
}

constexpr const char* oid_qc_compliance = "0.4.0.1862.1.1";
constexpr const char* oid_qc_sscd = "0.4.0.1862.1.4";
constexpr const char* oid_qc_type = "0.4.0.1862.1.6";
constexpr const char* oid_qc_type_eseal = "0.4.0.1862.1.6.2";

}  // namespace

// QCStatements ::= SEQUENCE OF QCStatement; QCStatement ::= SEQUENCE { statementId
// OBJECT IDENTIFIER, statementInfo ANY OPTIONAL } (RFC 3739); QcType's info is a
// SEQUENCE OF OBJECT IDENTIFIER (ETSI EN 319 412-5).
QcStatementsReport read_qc_statements(X509* cert) {
  QcStatementsReport report;
  int index = X509_get_ext_by_NID(cert, NID_qcStatements, -1);
  if (index < 0) return report;
  const ASN1_OCTET_STRING* value = X509_EXTENSION_get_data(X509_get_ext(cert, index));
  const unsigned char* p = value->data;
  AsnSequencePtr statements(d2i_ASN1_SEQUENCE_ANY(nullptr, &p, value->length));
  ERR_clear_error();
  if (!statements) return report;
  for (int i = 0; i < sk_ASN1_TYPE_num(statements.get()); ++i) {
    AsnSequencePtr statement = sequence_of(sk_ASN1_TYPE_value(statements.get(), i));
    if (!statement || sk_ASN1_TYPE_num(statement.get()) < 1) continue;
    const ASN1_TYPE* id = sk_ASN1_TYPE_value(statement.get(), 0);
    if (id->type != V_ASN1_OBJECT) continue;
    std::string oid = ossl::oid_text(id->value.object);
    if (oid == oid_qc_compliance) report.compliance = true;
    if (oid == oid_qc_sscd) report.sscd = true;
    if (oid == oid_qc_type && sk_ASN1_TYPE_num(statement.get()) > 1) {
      AsnSequencePtr types = sequence_of(sk_ASN1_TYPE_value(statement.get(), 1));
      for (int j = 0; types && j < sk_ASN1_TYPE_num(types.get()); ++j) {
        const ASN1_TYPE* type = sk_ASN1_TYPE_value(types.get(), j);
        if (type->type == V_ASN1_OBJECT && ossl::oid_text(type->value.object) == oid_qc_type_eseal) report.type_eseal = true;
      }
    }
  }
  return report;
}


std::string_view describe(SealLevel level) {
  switch (level) {
    case SealLevel::qualified_qscd:
      return "qualified e-seal on a QSCD (QCP-l-qscd)";
    case SealLevel::advanced_qcp_l:
      return "advanced e-seal (QCP-l: a qualified certificate, the key not certified on a QSCD)";
    case SealLevel::not_qualified:
      break;
  }
  return "not a qualified seal certificate (no QCP-l or QCP-l-qscd policy with QcCompliance and QcType eseal)";
}

std::string_view to_string(SealLevel level) {
  switch (level) {
    case SealLevel::qualified_qscd:
      return "qualified_qscd";
    case SealLevel::advanced_qcp_l:
      return "advanced_qcp_l";
    case SealLevel::not_qualified:
      break;
  }
  return "not_qualified";
}

SealLevel parse_expected_seal(std::string_view text, std::string_view option) {
  if (text == "qualified") return SealLevel::qualified_qscd;
  if (text == "advanced") return SealLevel::advanced_qcp_l;
  throw UsageError(std::string(option), "'" + std::string(text) +
                                            "' is not a seal level: give qualified (a qualified e-seal on a QSCD, "
                                            "QCP-l-qscd) or advanced (QCP-l)");
}

SealVerdict classify_seal(X509* certificate) {
  SealVerdict verdict;
  verdict.qc = read_qc_statements(certificate);
  PoliciesPtr policies(static_cast<CERTIFICATEPOLICIES*>(X509_get_ext_d2i(certificate, NID_certificate_policies, nullptr, nullptr)));
  ERR_clear_error();
  for (int i = 0; policies && i < sk_POLICYINFO_num(policies.get()); ++i) {
    const std::string oid = ossl::oid_text(sk_POLICYINFO_value(policies.get(), i)->policyid);
    if (oid == oid_qcp_l) verdict.policy_qcp_l = true;
    if (oid == oid_qcp_l_qscd) verdict.policy_qcp_l_qscd = true;
  }
  if (verdict.missing_for(SealLevel::qualified_qscd).empty()) {
    verdict.level = SealLevel::qualified_qscd;
  } else if (verdict.missing_for(SealLevel::advanced_qcp_l).empty()) {
    verdict.level = SealLevel::advanced_qcp_l;
  }
  return verdict;
}

std::vector<std::string> SealVerdict::missing_for(SealLevel wanted) const {
  std::vector<std::string> missing;
  if (wanted == SealLevel::not_qualified) return missing;
  if (wanted == SealLevel::qualified_qscd && !policy_qcp_l_qscd) {
    missing.emplace_back("certificate policy QCP-l-qscd (0.4.0.194112.1.3)");
  }
  if (wanted == SealLevel::advanced_qcp_l && !policy_qcp_l && !policy_qcp_l_qscd) {
    missing.emplace_back("certificate policy QCP-l (0.4.0.194112.1.1) or QCP-l-qscd (0.4.0.194112.1.3)");
  }
  if (!qc.compliance) missing.emplace_back("qcStatement QcCompliance (0.4.0.1862.1.1)");
  if (wanted == SealLevel::qualified_qscd && !qc.sscd) missing.emplace_back("qcStatement QcSSCD (0.4.0.1862.1.4)");
  if (!qc.type_eseal) missing.emplace_back("qcStatement QcType eseal (0.4.0.1862.1.6.2)");
  return missing;
}

}  // namespace qscd::agent
