#include "csr/token_signer.hpp"

#include <openssl/evp.h>

#include <stdexcept>

namespace qscd::agent::csr {

TokenSigner::TokenSigner(p11::Session& session, p11::ObjectHandle private_key,
                         std::optional<std::span<const unsigned char>> context_pin, p11::LoginOptions login_options)
    : session_(&session),
      key_(private_key),
      context_pin_(context_pin),
      login_options_(login_options),
      public_key_(p11::public_key(session, private_key).release()) {}

TokenSigner::TokenSigner(p11::Session& session, p11::ObjectHandle private_key, EVP_PKEY* public_key,
                         std::optional<std::span<const unsigned char>> context_pin, p11::LoginOptions login_options)
    : session_(&session), key_(private_key), context_pin_(context_pin), login_options_(login_options) {
  if (public_key == nullptr || EVP_PKEY_up_ref(public_key) != 1) throw std::invalid_argument("TokenSigner: no public key");
  public_key_.reset(public_key);
}

std::vector<unsigned char> TokenSigner::sign(SignatureScheme scheme, std::span<const unsigned char> tbs) {
  switch (scheme) {
    case SignatureScheme::rsa_pkcs1_sha256:
      return p11::sign(*session_, key_, CKM_SHA256_RSA_PKCS, tbs, context_pin_, login_options_);
    case SignatureScheme::rsa_pss_sha256:
      return p11::sign(*session_, key_, CKM_SHA256_RSA_PKCS_PSS, tbs, context_pin_, login_options_);
    case SignatureScheme::ecdsa_sha256:
      break;
  }
  // CKM_ECDSA signs a digest the caller made; CKM_ECDSA_SHA256 is not on every token.
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(tbs.data(), tbs.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256 of the request info: " + ossl::error_text());
  }
  return ecdsa_raw_to_der(
      p11::sign(*session_, key_, CKM_ECDSA, std::span<const unsigned char>(digest, length), context_pin_, login_options_));
}

}  // namespace qscd::agent::csr
