#pragma once
// The one test certificate authority, made in code with OpenSSL (extensions from config
// strings, no hand-made DER): what the simulator signs orders with (tests/certcentral-sim/pki)
// and what the certificate and install tests issue their chains with (test_pki.hpp).
// Library qscd_test_ca; depends on OpenSSL only.
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace qscd::test_ca {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;

// (OpenSSL short or long name, value), in order; entries with an empty value are left out.
using Name = std::vector<std::pair<std::string, std::string>>;

// An ECDSA P-256 key (made in a millisecond), or RSA of `bits`.
KeyPtr ec_key();
KeyPtr rsa_key(std::size_t bits);

// The qcStatements of an EN 319 412-5 qualified seal (QcCompliance, QcSSCD, QcType eseal), as
// an extension of CertSpec::extensions.
inline constexpr const char* qc_statements_oid = "1.3.6.1.5.5.7.1.3";
inline constexpr const char* qc_statements_value = "ASN1:SEQUENCE:qc_statements";
// QcCompliance and QcType eseal without QcSSCD: a qualified certificate whose key is not on a QSCD.
inline constexpr const char* qc_statements_no_sscd_value = "ASN1:SEQUENCE:qc_statements_no_sscd";
// certificatePolicies values: QCP-l-qscd and QCP-l (ETSI EN 319 411-2).
inline constexpr const char* policy_qcp_l_qscd = "0.4.0.194112.1.3";
inline constexpr const char* policy_qcp_l = "0.4.0.194112.1.1";

struct CertSpec {
  Name subject;
  EVP_PKEY* public_key = nullptr;
  // notBefore and notAfter, in seconds from now.
  long not_before = -60;
  long not_after = 365L * 86400;
  // A fixed serial, or 16 random bytes (positive), as CertCentral's.
  std::optional<long> serial;
  // (name, value) as for X509V3_EXT_nconf, added in this order.
  std::vector<std::pair<std::string, std::string>> extensions;
  // RSASSA-PSS (SHA-256, salt = digest length) when the issuer key is RSA; SHA-256 otherwise.
  bool rsassa_pss = false;
};

// A version 3 certificate for spec.public_key signed by `issuer_key`, its issuer name and
// authority key id taken from `issuer`; `issuer` null makes it self-signed.
// Throws std::runtime_error("test CA: ...").
X509Ptr issue(const CertSpec& spec, X509* issuer, EVP_PKEY* issuer_key);

// The extensions of a CA certificate: basicConstraints CA:TRUE, keyCertSign and cRLSign,
// subjectKeyIdentifier, and the authorityKeyIdentifier when it has an issuer.
std::vector<std::pair<std::string, std::string>> ca_extensions(bool has_issuer);

// A CSR for `key` with `subject`, signed with SHA-256.
ReqPtr make_csr(EVP_PKEY* key, const Name& subject);

std::string pem(X509* cert);
std::vector<unsigned char> der(X509* cert);
X509Ptr parse_cert(const std::string& pem);  // nullptr when not a PEM certificate
ReqPtr parse_csr(const std::string& pem);    // nullptr when not a PEM CSR
// A certs-only PKCS#7 (what a .p7b holds), PEM or DER.
std::string p7b(const std::vector<X509*>& certs, bool as_pem);

}  // namespace qscd::test_ca
