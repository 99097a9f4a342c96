#pragma once
// What the client needs to know about a PKCS#10 request before it sends it.
#include <string>
#include <string_view>

namespace qscd::api {

struct CsrInfo {
  std::string key_type;  // "RSA", "EC", ... (OpenSSL's name)
  int key_bits = 0;
  std::string common_name;  // empty when the subject has no CN
  bool signature_valid = false;
};

// Parses a PEM CSR with OpenSSL. Throws ValidationError(field, ...) when it is
// not a PEM PKCS#10 request.
CsrInfo inspect_csr(std::string_view pem, const std::string& field = "certificate.csr");

}  // namespace qscd::api
