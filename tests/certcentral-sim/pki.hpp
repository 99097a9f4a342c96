#pragma once
// The simulator's CA hierarchy (persisted) and how it signs orders as CertCentral does, over
// the one test CA (tests/certs/test_ca.hpp, library qscd_test_ca).
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "test_ca.hpp"

namespace sim {

using qscd::test_ca::KeyPtr;
using qscd::test_ca::ReqPtr;
using qscd::test_ca::X509Ptr;

struct Authority {
  X509Ptr cert;
  KeyPtr key;
};

// The persisted hierarchy: a root that signs an issuing CA (which signs
// orders) and the TLS server certificate for 127.0.0.1/localhost. A foreign
// root and issuing CA (made fresh each start) serve --foreign-chain.
struct Hierarchy {
  Authority root;
  Authority issuing;
  Authority tls;
  Authority foreign_root;
  Authority foreign_issuing;
};

// Loads the hierarchy from `dir`, or makes and stores it on first start.
Hierarchy load_or_create(const std::filesystem::path& dir);

std::string to_pem(X509* cert);
ReqPtr parse_csr(const std::string& pem);  // nullptr when not a PEM CSR
X509Ptr parse_cert(const std::string& pem);

// seal: QCP-l (qualified certificate, key not on a QSCD); qualified_seal: QCP-l-qscd on a QSCD;
// unqualified_seal: nonRepudiation only, no policy or qcStatements.
enum class Usage { seal, qualified_seal, unqualified_seal, server };

struct IssueSpec {
  X509_REQ* csr = nullptr;
  EVP_PKEY* public_key = nullptr;  // the CSR's key, or another one for --wrong-key
  // The subject, built as CertCentral builds it (organization record + order), in this order of
  // (OpenSSL short or long name, value); the CSR's own subject is not used.
  std::vector<std::pair<std::string, std::string>> subject;
  std::vector<std::string> dns_names;
  Usage usage = Usage::server;
  int validity_days = 365;
  // Starts this many days in the past (renewal tests: a certificate near its end).
  int backdate_days = 0;
  bool rsassa_pss = false;
};

X509Ptr issue(const IssueSpec& spec, const Authority& issuer);
// Another key of the same kind as `like` (for --wrong-key).
KeyPtr other_key_like(EVP_PKEY* like);
// A PEM "PKCS7" certs-only bundle.
std::string p7b_pem(const std::vector<X509*>& certs);

// What the order info reports about certificates and keys.
std::string serial_hex(X509* cert);       // uppercase hex, as CertCentral shows serial_number
std::string thumbprint_hex(X509* cert);   // SHA-1 of the DER, uppercase hex
std::string common_name(X509_NAME* name);  // empty when there is none
struct KeyInfo {
  std::string type;  // "RSA", "EC", or OpenSSL's name for anything else
  int bits = 0;
  std::string curve;  // EC only, e.g. "prime256v1"
};
KeyInfo key_info(EVP_PKEY* key);
bool csr_self_signed(X509_REQ* req);  // the CSR's signature verifies with its own key

// A .zip of stored (uncompressed) files: the download formats that are archives.
std::string zip_store(const std::vector<std::pair<std::string, std::string>>& files);

}  // namespace sim
