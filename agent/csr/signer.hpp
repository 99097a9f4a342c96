#pragma once
// Who makes the CSR's signature: a small interface so the builder runs the same with a software
// key (tests) and with a key on a token (token_signer.hpp).
#include <openssl/evp.h>

#include <span>
#include <string_view>
#include <vector>

#include "base/ossl.hpp"

namespace qscd::agent::csr {

// The SHA-256 signature schemes a CSR may carry.
enum class SignatureScheme {
  rsa_pkcs1_sha256,  // sha256WithRSAEncryption, CKM_SHA256_RSA_PKCS
  rsa_pss_sha256,    // RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32; CKM_SHA256_RSA_PKCS_PSS
  ecdsa_sha256,      // ecdsa-with-SHA256; CKM_ECDSA over a SHA-256 digest
};
std::string_view scheme_name(SignatureScheme scheme);

class Signer {
 public:
  virtual ~Signer() = default;
  // The public half of the signing key, read from where the private half lives.
  [[nodiscard]] virtual const EVP_PKEY* public_key() const = 0;
  // Signs `tbs` (the DER CertificationRequestInfo) and returns the signature as X.509 carries it:
  // the PKCS#1 signature for RSA, a DER ECDSA-Sig-Value for ECDSA.
  virtual std::vector<unsigned char> sign(SignatureScheme scheme, std::span<const unsigned char> tbs) = 0;
};

// A key in memory (tests, and any caller holding an EVP_PKEY with its private half).
class SoftwareSigner final : public Signer {
 public:
  explicit SoftwareSigner(ossl::EvpPkeyPtr key) : key_(std::move(key)) {}
  [[nodiscard]] const EVP_PKEY* public_key() const override { return key_.get(); }
  std::vector<unsigned char> sign(SignatureScheme scheme, std::span<const unsigned char> tbs) override;

 private:
  ossl::EvpPkeyPtr key_;
};

// rsa_pss_sha256 when `rsa_pss` (RSA keys only), else the key's PKCS#1 v1.5 or ECDSA scheme.
// UsageError for --rsa-pss with a non-RSA key and for key types that are neither RSA nor EC.
SignatureScheme choose_scheme(const EVP_PKEY* key, bool rsa_pss);

// The AlgorithmIdentifier of `scheme` for `key`, as OpenSSL's provider encodes it
// (OSSL_SIGNATURE_PARAM_ALGORITHM_ID of a verify operation with the scheme's parameters).
ossl::X509AlgorPtr signature_algorithm(const EVP_PKEY* key, SignatureScheme scheme);

// Sets up `context` (EVP_DigestSign/VerifyInit already done) for the scheme's padding and salt.
void apply_scheme(EVP_PKEY_CTX* context, SignatureScheme scheme);

// PKCS#11 CKM_ECDSA gives r || s, each half of the output; X.509 wants DER ECDSA-Sig-Value.
std::vector<unsigned char> ecdsa_raw_to_der(std::span<const unsigned char> raw);

}  // namespace qscd::agent::csr
