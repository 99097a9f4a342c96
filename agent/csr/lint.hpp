#pragma once
// The CSR rules engine. Each rule has a stable id (docs/csr.md lists them); a check returns every
// broken rule, never just the first. The same subject rules run on the subject built from the
// user's input (before the token is touched) and on any PKCS#10 request, whoever made it.
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <span>
#include <vector>

#include "csr/finding.hpp"
#include "base/ossl.hpp"
#include "csr/profile.hpp"

namespace qscd::agent::csr {

// X.509 limits (X509-*) and the profile's subject rules.
std::vector<Finding> lint_subject(Profile profile, const X509_NAME* name);

// The key types the profile allows (pkio-server: RSA 2048/3072/4096; be-ebox and pkio-eseal: those
// or EC P-256/P-384; generic: any).
std::vector<Finding> lint_key(Profile profile, const EVP_PKEY* key);
// The same for a key described as describe_key() describes one ("RSA 3072", "EC P-256"): a key
// that is still to be generated is checked before the token is touched.
std::vector<Finding> lint_key(Profile profile, const std::string& described);

// Everything: subject, key, version, a SHA-256 based signature algorithm (all profiles) and a
// self-signature that verifies with the request's own public key.
std::vector<Finding> lint_request(Profile profile, const X509_REQ* request);

// A PKCS#10 request from PEM ("CERTIFICATE REQUEST" or "NEW CERTIFICATE REQUEST") or DER bytes.
// UsageError(`origin`, ...) when it is neither.
ossl::X509ReqPtr parse_request(std::span<const unsigned char> bytes, const std::string& origin);

// "RSA 2048", "EC P-256", "EC secp521r1", "ED25519".
std::string describe_key(const EVP_PKEY* key);

}  // namespace qscd::agent::csr
