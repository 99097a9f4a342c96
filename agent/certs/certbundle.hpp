#pragma once
// Certificates as they come from the CA or a file, before they go on a token:
// reading PEM chains, DER and PKCS#7; picking the end-entity certificate of a
// given key; verifying its chain; the post-issuance checks and the evidence
// hashes. Pure OpenSSL: no token here.
#include <openssl/x509.h>

#include <ctime>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/errors.hpp"
#include "base/ossl.hpp"
#include "certs/seal_level.hpp"
#include "csr/profile.hpp"
#include "qscd/api/product.hpp"

namespace qscd::agent {

// An issued certificate that cannot go onto the token: nothing is written.
class CertificateError : public AgentError {
 public:
  explicit CertificateError(const std::string& message) : AgentError(message) {}
};

// No certificate in the input has the token key's public key.
class CertificateNotForKey : public CertificateError {
 public:
  explicit CertificateNotForKey(const std::string& message) : CertificateError(message) {}
};

// The chain does not lead to the trust anchors.
class ChainNotTrusted : public CertificateError {
 public:
  explicit ChainNotTrusted(const std::string& message) : CertificateError(message) {}
};

// A post-issuance check failed in a way that forbids installing.
class CertificateRejected : public CertificateError {
 public:
  CertificateRejected(const std::string& message, std::vector<std::string> findings)
      : CertificateError(message), findings_(std::move(findings)) {}
  // Every check's line (IssuanceReport::lines()), to show beside the refusal.
  [[nodiscard]] const std::vector<std::string>& findings() const noexcept { return findings_; }

 private:
  std::vector<std::string> findings_;
};

// Every certificate in `data`: PEM (any number of CERTIFICATE and PKCS7 blocks),
// one DER certificate, or DER PKCS#7 (.p7b), in the order given. `origin` names
// the input in errors. Throws UsageError(origin, ...) for anything else or an
// input without certificates.
std::vector<ossl::X509Ptr> read_certificates(std::span<const unsigned char> data, const std::string& origin);
std::vector<ossl::X509Ptr> read_certificates(std::string_view text, const std::string& origin);
std::vector<ossl::X509Ptr> read_certificate_file(const std::filesystem::path& file);

// A certificate and its chain from a file the user names (install --cert): at most
// max_bundle_certificates, and no issuer cycle among them. Throws UsageError(option, ...).
inline constexpr std::size_t max_bundle_certificates = 64;
std::vector<ossl::X509Ptr> read_bundle_file(const std::filesystem::path& file, const std::string& option);

// Trust anchors a user names (`option`: --trust, --ca-file, api.ca_file): a regular file holding
// at least one certificate; with `pem_only` (curl's CAINFO reads PEM only) every block is a PEM
// CERTIFICATE. Read and parsed before anything is touched; throws UsageError(option, ...).
std::vector<ossl::X509Ptr> read_trust_file(const std::filesystem::path& file, const std::string& option, bool pem_only = false);

// A PKCS#10 request from PEM (as the journal stores it). Throws UsageError(origin, ...).
ossl::X509ReqPtr read_csr(std::string_view pem, const std::string& origin);
ossl::X509ReqPtr read_csr_file(const std::filesystem::path& file);

// The end-entity certificate for a key and the other certificates that came with it.
struct CertBundle {
  ossl::X509Ptr end_entity;
  std::vector<ossl::X509Ptr> others;  // in input order, duplicates of the end entity removed
};

// Picks the certificate whose public key equals `key` (EVP_PKEY_eq). Throws
// CertificateNotForKey ("the certificate is not for this key: ...") when none does.
CertBundle select_for_key(std::vector<ossl::X509Ptr> certificates, EVP_PKEY* key);

// Builds and verifies the end entity's chain with X509_STORE_CTX from the
// bundle's other certificates to the anchors in `trust_file` (PEM, one or more
// certificates), or the system store when it is empty. Signatures and the path
// only: validity dates are a post-issuance check (check_issued). Returns the
// chain, end entity first, up to and including the anchor. Throws
// ChainNotTrusted naming OpenSSL's verify error and the certificate it failed on.
std::vector<ossl::X509Ptr> verify_chain(const CertBundle& bundle, const std::optional<std::filesystem::path>& trust_file);

// Without a trust decision: the end entity followed by its issuers found among
// the bundle's other certificates (by X509_check_issued), self-signed roots left out.
std::vector<ossl::X509Ptr> issuers_in_bundle(const CertBundle& bundle);

// The certificates to store on the token beside the end entity: the verified
// chain without the end entity and without self-signed roots.
std::vector<ossl::X509Ptr> intermediates_of(const std::vector<ossl::X509Ptr>& chain);

// What the certificate should have, from the job's profile and product.
struct IssuanceExpectations {
  bool seal_profile = false;         // key usage must include nonRepudiation
  // The least a seal certificate must be: an advanced e-seal (QCP-l) for the products whose rules
  // say qualified_seal, a qualified e-seal on a QSCD for those that take only the qscd
  // provisioning method, for an order placed with provisioning_method "qscd", or for
  // --expect qualified. Unset: no seal level is promised (the verdict is still reported for seals).
  std::optional<SealLevel> seal_level;
  const X509_REQ* csr = nullptr;     // compare subjects when given
  // From the profile and product names. An empty profile is none; an unknown one ->
  // UsageError("--profile", ...).
  static IssuanceExpectations for_job(std::string_view profile, std::string_view product);
  // The same for a job whose profile and product rules are already known.
  static IssuanceExpectations for_job(csr::Profile profile, const api::ProductRules& product);
  // Raises seal_level to `level` when it promises less.
  void expect_at_least(SealLevel level);
};

struct SubjectDifference {
  std::string attribute;    // short name, e.g. "O", "organizationIdentifier"
  std::string in_csr;       // values joined with "; ", empty when absent
  std::string in_certificate;
};

struct IssuanceReport {
  bool key_matches = false;
  std::string not_before;   // ISO 8601 UTC
  std::string not_after;
  bool valid_now = false;
  std::optional<bool> non_repudiation;       // set when the profile needs it
  std::optional<SealVerdict> seal;           // set for seal profiles and seal products
  std::optional<SealLevel> seal_expected;    // what the product, the order or --expect promise
  std::vector<SubjectDifference> subject_differences;
  bool subject_order_differs = false;        // same attributes, other order

  // The findings that forbid installing: key mismatch, outside validity, a seal without
  // nonRepudiation, a seal less than promised (seal_expected). Subject differences are reported only.
  [[nodiscard]] std::vector<std::string> blocking() const;
  // Lines for people: one per check, "ok"/"MISSING"/... first.
  [[nodiscard]] std::vector<std::string> lines() const;
  [[nodiscard]] nlohmann::json to_json() const;
};

IssuanceReport check_issued(X509* certificate, EVP_PKEY* token_key, const IssuanceExpectations& expected,
                            std::time_t now = std::time(nullptr));
// Throws CertificateRejected listing report.blocking() when it is not empty.
void require_installable(const IssuanceReport& report);

// Evidence: lowercase hex SHA-256 of the DER encodings.
std::string sha256_hex(std::span<const unsigned char> der);
std::string spki_sha256(EVP_PKEY* key);
std::string certificate_sha256(X509* certificate);
std::string csr_sha256(X509_REQ* csr);
// The serial number in uppercase hex, as CertCentral shows it.
std::string serial_hex(X509* certificate);
// A certs-only PKCS#7 (.p7b), DER.
std::vector<unsigned char> to_p7b(const std::vector<ossl::X509Ptr>& certificates);
// DER, and PEM text.
std::vector<unsigned char> to_der(X509* certificate);
std::string to_pem(X509* certificate);
// One line with short names and RFC 4514 escaping, in the certificate's own order, not RFC
// 4514's reversed one: "C=NL, O=..., CN=...". Every command prints subjects this way.
std::string subject_line(const X509_NAME* name);

}  // namespace qscd::agent
