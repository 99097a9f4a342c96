#pragma once
// The Signer for a private key on a PKCS#11 token: the public key is read from the token, the
// signature made by the token (CKM_SHA256_RSA_PKCS, CKM_SHA256_RSA_PKCS_PSS, or CKM_ECDSA over a
// SHA-256 digest computed here, its r || s turned into DER).
#include <optional>
#include <span>

#include "csr/signer.hpp"
#include "qscd/pkcs11/keys.hpp"
#include "qscd/pkcs11/login.hpp"
#include "qscd/pkcs11/session.hpp"

namespace qscd::agent::csr {

class TokenSigner final : public Signer {
 public:
  // `session` must stay open (and logged in where the key needs it) while this lives. A key with
  // CKA_ALWAYS_AUTHENTICATE signs after a context-specific login with `context_pin` (borrowed, not
  // copied); without one, signing it is refused. Reads the public key now (p11::public_key).
  TokenSigner(p11::Session& session, p11::ObjectHandle private_key,
              std::optional<std::span<const unsigned char>> context_pin, p11::LoginOptions login_options = {});
  // The same with the public key already read (shared, not copied).
  TokenSigner(p11::Session& session, p11::ObjectHandle private_key, EVP_PKEY* public_key,
              std::optional<std::span<const unsigned char>> context_pin, p11::LoginOptions login_options = {});

  [[nodiscard]] const EVP_PKEY* public_key() const override { return public_key_.get(); }
  std::vector<unsigned char> sign(SignatureScheme scheme, std::span<const unsigned char> tbs) override;

 private:
  p11::Session* session_;
  p11::ObjectHandle key_;
  std::optional<std::span<const unsigned char>> context_pin_;
  p11::LoginOptions login_options_;
  ossl::EvpPkeyPtr public_key_;
};

}  // namespace qscd::agent::csr
