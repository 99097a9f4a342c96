// The post-issuance checks (certbundle.hpp: IssuanceExpectations, IssuanceReport): what the
// certificate CertCentral issued must be before it is written to the token.
#include "certs/certbundle.hpp"

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <array>
#include <ctime>
#include <map>

namespace qscd::agent {

namespace {

std::string asn1_time_iso(const ASN1_TIME* time) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(time, &tm) != 1) return "?";
  std::array<char, 32> text{};
  std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text.data();
}



using NameEntries = std::vector<std::pair<std::string, std::string>>;

NameEntries name_entries(const X509_NAME* name) {
  NameEntries entries;
  for (int i = 0; i < X509_NAME_entry_count(name); ++i) {
    const X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
    int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry));
    std::string attribute = nid != NID_undef ? OBJ_nid2sn(nid) : ossl::oid_text(X509_NAME_ENTRY_get_object(entry));
    unsigned char* utf8 = nullptr;
    int length = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
    std::string value = length >= 0 ? std::string(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(length)) : "?";
    OPENSSL_free(utf8);
    entries.emplace_back(attribute, value);
  }
  return entries;
}

void compare_subjects(const X509_NAME* csr, const X509_NAME* cert, IssuanceReport& report) {
  NameEntries from_csr = name_entries(csr);
  NameEntries from_cert = name_entries(cert);
  std::vector<std::string> attributes;  // in order of first appearance, CSR first
  std::map<std::string, std::pair<std::vector<std::string>, std::vector<std::string>>> values;
  for (const auto& [attribute, value] : from_csr) {
    if (!values.contains(attribute)) attributes.push_back(attribute);
    values[attribute].first.push_back(value);
  }
  for (const auto& [attribute, value] : from_cert) {
    if (!values.contains(attribute)) attributes.push_back(attribute);
    values[attribute].second.push_back(value);
  }
  auto join = [](const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& part : parts) out += (out.empty() ? "" : "; ") + part;
    return out;
  };
  for (const auto& attribute : attributes) {
    const auto& [in_csr, in_cert] = values[attribute];
    if (in_csr != in_cert) report.subject_differences.push_back({attribute, join(in_csr), join(in_cert)});
  }
  report.subject_order_differs = report.subject_differences.empty() && from_csr != from_cert;
}

bool has_non_repudiation(X509* cert) {
  uint32_t usage = X509_get_key_usage(cert);  // UINT32_MAX when the extension is absent
  return usage != UINT32_MAX && (usage & KU_NON_REPUDIATION) != 0;
}

}  // namespace

namespace {

std::optional<SealLevel> promised_by(const api::ProductRules& product) {
  if (!product.qualified_seal) return std::nullopt;
  if (product.only_provisioning_method == std::optional<std::string_view>("qscd")) return SealLevel::qualified_qscd;
  return SealLevel::advanced_qcp_l;
}

}  // namespace

IssuanceExpectations IssuanceExpectations::for_job(std::string_view profile, std::string_view product) {
  IssuanceExpectations expected;
  expected.seal_profile = !profile.empty() && csr::parse_profile(profile) == csr::Profile::pkio_eseal;
  expected.seal_level = promised_by(api::product_rules(product));
  return expected;
}

IssuanceExpectations IssuanceExpectations::for_job(csr::Profile profile, const api::ProductRules& product) {
  IssuanceExpectations expected;
  expected.seal_profile = profile == csr::Profile::pkio_eseal;
  expected.seal_level = promised_by(product);
  return expected;
}

void IssuanceExpectations::expect_at_least(SealLevel level) {
  if (!seal_level || *seal_level < level) seal_level = level;
}

IssuanceReport check_issued(X509* certificate, EVP_PKEY* token_key, const IssuanceExpectations& expected,
                            std::time_t now) {
  IssuanceReport report;
  report.key_matches = EVP_PKEY_eq(X509_get0_pubkey(certificate), token_key) == 1;
  report.not_before = asn1_time_iso(X509_get0_notBefore(certificate));
  report.not_after = asn1_time_iso(X509_get0_notAfter(certificate));
  report.valid_now = X509_cmp_time(X509_get0_notBefore(certificate), &now) < 0 &&
                     X509_cmp_time(X509_get0_notAfter(certificate), &now) > 0;
  if (expected.seal_profile) report.non_repudiation = has_non_repudiation(certificate);
  if (expected.seal_profile || expected.seal_level) report.seal = classify_seal(certificate);
  report.seal_expected = expected.seal_level;
  if (expected.csr != nullptr) {
    compare_subjects(X509_REQ_get_subject_name(expected.csr), X509_get_subject_name(certificate), report);
  }
  ERR_clear_error();
  return report;
}

std::vector<std::string> IssuanceReport::blocking() const {
  std::vector<std::string> problems;
  if (!key_matches) problems.emplace_back("the certificate's public key is not the token key's");
  if (!valid_now) problems.push_back("the certificate is not valid now (" + not_before + " to " + not_after + ")");
  if (non_repudiation == false) problems.emplace_back("a seal certificate without key usage nonRepudiation");
  if (seal && seal_expected && seal->level < *seal_expected) {
    std::string lacks;
    for (const std::string& what : seal->missing_for(*seal_expected)) lacks += (lacks.empty() ? "" : ", ") + what;
    problems.push_back("the certificate is " + std::string(describe(seal->level)) + ", less than the " +
                       std::string(describe(*seal_expected)) + " the order promises; it lacks " + lacks);
  }
  return problems;
}

std::vector<std::string> IssuanceReport::lines() const {
  std::vector<std::string> out;
  out.push_back(std::string(key_matches ? "ok" : "FAILED") + ": public key is the token key's");
  out.push_back(std::string(valid_now ? "ok" : "FAILED") + ": valid from " + not_before + " to " + not_after);
  if (non_repudiation) out.push_back(std::string(*non_repudiation ? "ok" : "FAILED") + ": key usage nonRepudiation");
  if (seal) {
    const bool enough = !seal_expected || seal->level >= *seal_expected;
    out.push_back(std::string(enough ? "ok" : "FAILED") + ": the certificate is " + std::string(describe(seal->level)) +
                  (seal_expected ? "; promised: " + std::string(describe(*seal_expected)) : std::string()));
    auto line = [&out](bool present, const std::string& what) {
      out.push_back(std::string(present ? "present" : "absent") + ": " + what);
    };
    line(seal->policy_qcp_l_qscd || seal->policy_qcp_l, std::string("certificate policy ") +
                                                             (seal->policy_qcp_l_qscd ? "QCP-l-qscd (0.4.0.194112.1.3)" : "QCP-l (0.4.0.194112.1.1)"));
    line(seal->qc.compliance, "qcStatement QcCompliance (0.4.0.1862.1.1)");
    line(seal->qc.sscd, "qcStatement QcSSCD (0.4.0.1862.1.4)");
    line(seal->qc.type_eseal, "qcStatement QcType eseal (0.4.0.1862.1.6.2)");
  }
  for (const auto& difference : subject_differences) {
    out.push_back("subject differs: " + difference.attribute + " in CSR \"" + difference.in_csr +
                  "\", in certificate \"" + difference.in_certificate + "\"");
  }
  if (subject_order_differs) out.emplace_back("subject differs: same attributes in another order");
  return out;
}

nlohmann::json IssuanceReport::to_json() const {
  nlohmann::json doc = {{"key_matches", key_matches},
                        {"not_before", not_before},
                        {"not_after", not_after},
                        {"valid_now", valid_now},
                        {"subject_order_differs", subject_order_differs},
                        {"blocking", blocking()}};
  if (non_repudiation) doc["non_repudiation"] = *non_repudiation;
  if (seal) {
    const QcStatementsReport& qc = seal->qc;
    doc["qc_statements"] = {{"qc_compliance", qc.compliance}, {"qc_sscd", qc.sscd}, {"qc_type_eseal", qc.type_eseal}};
    doc["seal"] = {{"level", std::string(to_string(seal->level))},
                   {"description", std::string(describe(seal->level))},
                   {"promised", seal_expected ? nlohmann::json(std::string(to_string(*seal_expected))) : nlohmann::json(nullptr)},
                   {"policy_qcp_l", seal->policy_qcp_l},
                   {"policy_qcp_l_qscd", seal->policy_qcp_l_qscd}};
  }
  doc["subject_differences"] = nlohmann::json::array();
  for (const auto& d : subject_differences) {
    doc["subject_differences"].push_back({{"attribute", d.attribute}, {"csr", d.in_csr}, {"certificate", d.in_certificate}});
  }
  return doc;
}

void require_installable(const IssuanceReport& report) {
  auto problems = report.blocking();
  if (problems.empty()) return;
  std::string message = "the certificate cannot be installed: ";
  for (std::size_t i = 0; i < problems.size(); ++i) message += (i == 0 ? "" : "; ") + problems[i];
  throw CertificateRejected(message, report.lines());
}

}  // namespace qscd::agent
