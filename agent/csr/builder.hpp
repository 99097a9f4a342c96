#pragma once
// Builds a PKCS#10 request with OpenSSL's X509_REQ and a Signer: the request info is encoded by
// OpenSSL (i2d_re_X509_REQ_tbs), signed by the signer (on the token), and the result is verified
// with the signer's public key and linted against the profile before anyone may write it.
#include <string>
#include <vector>

#include "csr/lint.hpp"
#include "csr/profile.hpp"
#include "csr/signer.hpp"

namespace qscd::agent::csr {

// The subject as an X509_NAME, refused with ProfileViolation (exit 2) when it breaks the profile
// or `input_findings` (from subject_from_input) is not empty. Needs no token: callers run it first.
ossl::X509NamePtr checked_subject(Profile profile, const Subject& subject, const std::vector<Finding>& input_findings = {});

// The subject for `profile` from the user's fields (subject_from_input), checked by
// checked_subject: everything the CLI and provisioning do before touching the token.
Subject prepare_subject(Profile profile, const SubjectInput& input);

// Refuses (ProfileViolation, UsageError) a key the profile does not allow or a scheme it cannot
// make, before anything is signed. Returns the scheme to sign with.
SignatureScheme checked_scheme(Profile profile, const EVP_PKEY* key, bool rsa_pss);
// The same refusals for a key still to be generated, described as describe_key() would.
void check_planned_key(Profile profile, const std::string& described, bool rsa_pss);

// The whole request: checked_subject, checked_scheme, build, sign, X509_REQ_verify with the
// signer's public key (TokenError when it fails), lint_request on the DER produced
// (ProfileViolation). Returns the request as parsed back from that DER.
ossl::X509ReqPtr build_request(Profile profile, const Subject& subject, Signer& signer, bool rsa_pss);

std::vector<unsigned char> request_der(const X509_REQ* request);
std::string request_pem(const X509_REQ* request);

// Writes the request (PEM, or DER when `der`) to `path` with write_file_atomically
// (files.hpp): a failure never leaves a partial file, no symlink is followed.
void write_request(const X509_REQ* request, const std::string& path, bool der);

}  // namespace qscd::agent::csr
