// Certificate bundles as the agent reads them from CertCentral or a file (agent/certs): PEM with
// any number of CERTIFICATE and PKCS7 blocks, one DER certificate, DER PKCS#7. What was read then
// goes through the steps before install that need no token: choosing the certificate for a key
// (the first certificate's own), its issuers in the bundle, and the post-issuance checks.
// Bad input must end in UsageError or a CertificateError, nothing else.
#include <cstddef>
#include <cstdint>
#include <span>

#include "base/errors.hpp"
#include "certs/certbundle.hpp"

using namespace qscd::agent;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    std::vector<ossl::X509Ptr> certificates = read_certificates(std::span<const unsigned char>(data, size), "fuzz input");
    EVP_PKEY* key = X509_get0_pubkey(certificates.front().get());
    if (key == nullptr) return 0;
    CertBundle bundle = select_for_key(std::move(certificates), key);
    (void)intermediates_of(issuers_in_bundle(bundle));
    for (bool seal : {false, true}) {
      IssuanceExpectations expected;
      expected.seal_profile = seal;
      if (seal) expected.seal_level = SealLevel::qualified_qscd;  // the seal verdict and its refusal
      IssuanceReport report = check_issued(bundle.end_entity.get(), key, expected, 1767225600);  // 2026-01-01
      (void)report.lines();
      (void)report.to_json().dump();
    }
  } catch (const AgentError&) {
  }
  return 0;
}
