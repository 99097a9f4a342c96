#include "csr/signer.hpp"

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/rsa.h>

#include <stdexcept>

#include "base/errors.hpp"

namespace qscd::agent::csr {

namespace {

constexpr int pss_salt_length = 32;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what + ": " + ossl::error_text()); }

}  // namespace

std::string_view scheme_name(SignatureScheme scheme) {
  switch (scheme) {
    case SignatureScheme::rsa_pkcs1_sha256:
      return "sha256WithRSAEncryption";
    case SignatureScheme::rsa_pss_sha256:
      return "RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32)";
    case SignatureScheme::ecdsa_sha256:
      break;
  }
  return "ecdsa-with-SHA256";
}

void apply_scheme(EVP_PKEY_CTX* context, SignatureScheme scheme) {
  if (scheme != SignatureScheme::rsa_pss_sha256) return;
  if (EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_PSS_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_pss_saltlen(context, pss_salt_length) != 1 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(context, EVP_sha256()) != 1) {
    fail("setting RSASSA-PSS parameters");
  }
}

SignatureScheme choose_scheme(const EVP_PKEY* key, bool rsa_pss) {
  const int type = EVP_PKEY_get_base_id(key);
  if (type == EVP_PKEY_RSA) return rsa_pss ? SignatureScheme::rsa_pss_sha256 : SignatureScheme::rsa_pkcs1_sha256;
  if (rsa_pss) throw UsageError("--rsa-pss", "needs an RSA key");
  if (type == EVP_PKEY_EC) return SignatureScheme::ecdsa_sha256;
  throw UsageError("--key", "an RSA or EC key is needed to sign a CSR");
}

ossl::X509AlgorPtr signature_algorithm(const EVP_PKEY* key, SignatureScheme scheme) {
  ossl::EvpMdCtxPtr digest(EVP_MD_CTX_new());
  EVP_PKEY_CTX* context = nullptr;  // owned by `digest`
  if (!digest || EVP_DigestVerifyInit_ex(digest.get(), &context, "SHA256", nullptr, nullptr,
                                         const_cast<EVP_PKEY*>(key), nullptr) != 1) {
    fail("EVP_DigestVerifyInit_ex");
  }
  apply_scheme(context, scheme);
  unsigned char encoded[256];
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, encoded, sizeof encoded),
                         OSSL_PARAM_construct_end()};
  if (EVP_PKEY_CTX_get_params(context, params) != 1 || !OSSL_PARAM_modified(&params[0])) {
    fail("reading the signature AlgorithmIdentifier");
  }
  const unsigned char* data = encoded;
  ossl::X509AlgorPtr algorithm(d2i_X509_ALGOR(nullptr, &data, static_cast<long>(params[0].return_size)));
  if (!algorithm) fail("decoding the signature AlgorithmIdentifier");
  return algorithm;
}

std::vector<unsigned char> SoftwareSigner::sign(SignatureScheme scheme, std::span<const unsigned char> tbs) {
  ossl::EvpMdCtxPtr digest(EVP_MD_CTX_new());
  EVP_PKEY_CTX* context = nullptr;
  if (!digest || EVP_DigestSignInit_ex(digest.get(), &context, "SHA256", nullptr, nullptr, key_.get(), nullptr) != 1) {
    fail("EVP_DigestSignInit_ex");
  }
  apply_scheme(context, scheme);
  std::size_t length = 0;
  if (EVP_DigestSign(digest.get(), nullptr, &length, tbs.data(), tbs.size()) != 1) fail("EVP_DigestSign");
  std::vector<unsigned char> signature(length);
  if (EVP_DigestSign(digest.get(), signature.data(), &length, tbs.data(), tbs.size()) != 1) fail("EVP_DigestSign");
  signature.resize(length);
  return signature;
}

std::vector<unsigned char> ecdsa_raw_to_der(std::span<const unsigned char> raw) {
  if (raw.empty() || raw.size() % 2 != 0) {
    throw std::runtime_error("an ECDSA signature from the token is r || s of even length, got " +
                             std::to_string(raw.size()) + " bytes");
  }
  const int half = static_cast<int>(raw.size() / 2);
  ossl::BignumPtr r(BN_bin2bn(raw.data(), half, nullptr));
  ossl::BignumPtr s(BN_bin2bn(raw.data() + half, half, nullptr));
  ossl::EcdsaSigPtr signature(ECDSA_SIG_new());
  if (!r || !s || !signature || ECDSA_SIG_set0(signature.get(), r.get(), s.get()) != 1) fail("ECDSA_SIG_set0");
  (void)r.release();  // owned by `signature` now
  (void)s.release();
  unsigned char* der = nullptr;
  const int length = i2d_ECDSA_SIG(signature.get(), &der);
  if (length <= 0) fail("i2d_ECDSA_SIG");
  std::vector<unsigned char> out(der, der + length);
  OPENSSL_free(der);
  return out;
}

}  // namespace qscd::agent::csr
