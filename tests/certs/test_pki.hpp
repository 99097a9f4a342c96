#pragma once
// The test CA (test_ca.hpp, library qscd_test_ca) as the certificate and install tests use it:
// root -> intermediate -> end entity, in the agent's OpenSSL owner types. It includes the
// OpenSSL headers its users read certificates with.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <string>
#include <utility>
#include <vector>

#include "base/ossl.hpp"
#include "test_ca.hpp"

namespace test_pki {

using qscd::agent::ossl::EvpPkeyPtr;
using qscd::agent::ossl::X509Ptr;
using qscd::agent::ossl::X509ReqPtr;

inline EvpPkeyPtr ec_key() { return EvpPkeyPtr(qscd::test_ca::ec_key().release()); }

struct Subject {
  qscd::test_ca::Name entries;
};

struct CertOptions {
  Subject subject;
  bool ca = false;
  std::string key_usage = "critical,digitalSignature,nonRepudiation";
  bool qc_statements = false;  // policy QCP-l-qscd; QcCompliance, QcSSCD, QcType eseal
  long not_before_days = -1;
  long not_after_days = 365;
  long serial = 1;
  bool qcp_l_only = false;  // with qc_statements: policy QCP-l and no QcSSCD (an advanced e-seal)
};

// Issues a certificate for `subject_key` signed by `issuer_key`; `issuer` null
// makes it self-signed.
inline X509Ptr issue(const CertOptions& options, EVP_PKEY* subject_key, X509* issuer, EVP_PKEY* issuer_key) {
  qscd::test_ca::CertSpec spec;
  spec.subject = options.subject.entries;
  spec.public_key = subject_key;
  spec.not_before = options.not_before_days * 86400;
  spec.not_after = options.not_after_days * 86400;
  spec.serial = options.serial;
  spec.extensions = {{"basicConstraints", options.ca ? "critical,CA:TRUE" : "critical,CA:FALSE"},
                     {"keyUsage", options.ca ? "critical,keyCertSign,cRLSign" : options.key_usage},
                     {"subjectKeyIdentifier", "hash"}};
  if (issuer != nullptr) spec.extensions.emplace_back("authorityKeyIdentifier", "keyid:always");
  if (options.qc_statements) {
    spec.extensions.emplace_back("certificatePolicies",
                                 options.qcp_l_only ? qscd::test_ca::policy_qcp_l : qscd::test_ca::policy_qcp_l_qscd);
    spec.extensions.emplace_back(qscd::test_ca::qc_statements_oid, options.qcp_l_only ? qscd::test_ca::qc_statements_no_sscd_value
                                                                                       : qscd::test_ca::qc_statements_value);
  }
  return X509Ptr(qscd::test_ca::issue(spec, issuer, issuer_key).release());
}

inline X509ReqPtr make_csr(EVP_PKEY* key, const Subject& subject) {
  return X509ReqPtr(qscd::test_ca::make_csr(key, subject.entries).release());
}

// Root -> intermediate, ready to issue end entities.
struct Ca {
  explicit Ca(const std::string& name) : root_key(ec_key()), intermediate_key(ec_key()) {
    CertOptions root_options{{{{"C", "NL"}, {"O", name}, {"CN", name + " Root"}}}, true};
    root_options.not_after_days = 3650;
    root = issue(root_options, root_key.get(), nullptr, root_key.get());
    CertOptions intermediate_options{{{{"C", "NL"}, {"O", name}, {"CN", name + " Issuing CA"}}}, true};
    intermediate_options.serial = 2;
    intermediate = issue(intermediate_options, intermediate_key.get(), root.get(), root_key.get());
  }
  X509Ptr leaf(EVP_PKEY* key, CertOptions options) const {
    return issue(options, key, intermediate.get(), intermediate_key.get());
  }
  EvpPkeyPtr root_key;
  EvpPkeyPtr intermediate_key;
  X509Ptr root;
  X509Ptr intermediate;
};

inline std::string pem(X509* cert) { return qscd::test_ca::pem(cert); }
inline std::vector<unsigned char> der(X509* cert) { return qscd::test_ca::der(cert); }
// A certs-only PKCS#7 (what a .p7b holds), DER or PEM.
inline std::string p7b(const std::vector<X509*>& certs, bool as_pem) { return qscd::test_ca::p7b(certs, as_pem); }

}  // namespace test_pki
