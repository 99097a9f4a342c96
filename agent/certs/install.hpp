#pragma once
// Putting an issued certificate and its chain onto the token next to the key,
// idempotently, and reading it back. docs/install.md explains the choices.
#include <optional>
#include <string>
#include <vector>

#include "certs/certbundle.hpp"
#include "qscd/pkcs11/session.hpp"
#include "qscd/pkcs11/uri.hpp"

namespace qscd::agent {

// The key a certificate belongs to, as found on the token.
struct TokenKey {
  p11::ObjectHandle handle = CK_INVALID_HANDLE;  // the public key, or the private key when logged in and no public one
  p11::Bytes id;                                 // CKA_ID
  std::string label;                             // CKA_LABEL
  ossl::EvpPkeyPtr public_key;
};

// The key named by the object part of `key_uri` (id and/or object label):
// its public half, which needs no login, else its private half. Throws
// p11::NotFound / p11::Ambiguous as select_object does, UsageError when the
// key has no CKA_ID (a certificate is tied to its key by the id).
TokenKey find_token_key(const p11::Session& session, const p11::Uri& key_uri);

// What will go on the token, decided before anything is written.
struct PreparedInstall {
  ossl::X509Ptr end_entity;
  std::vector<ossl::X509Ptr> intermediates;  // issuer order, no self-signed roots
  bool chain_verified = false;
  std::string chain_warning;  // why the chain was not verified (only without a trust file)
  IssuanceReport report;
  // The end entity then the intermediates, PEM (the journal's chain_pem).
  [[nodiscard]] std::string chain_pem() const;
};

// Everything before writing: picks the end entity for `token_key`
// (CertificateNotForKey), verifies its chain against `trust_file`
// (ChainNotTrusted) or, without one, tries the system store and on failure
// keeps the bundle's own issuers and says why in chain_warning; runs the
// post-issuance checks and refuses blocking findings (CertificateRejected).
// All three are CertificateErrors: nothing written.
PreparedInstall prepare_install(std::vector<ossl::X509Ptr> certificates, EVP_PKEY* token_key,
                                const std::optional<std::filesystem::path>& trust_file,
                                const IssuanceExpectations& expected);

struct InstalledCertificate {
  std::string subject;
  std::string serial_hex;
  bool created = false;  // false: an identical object was already on the token
};

struct InstallResult {
  InstalledCertificate end_entity;
  std::vector<InstalledCertificate> intermediates;
  std::size_t replaced = 0;  // older certificates with the key's CKA_ID, removed
};

// Writes `end_entity` as CKO_CERTIFICATE/CKC_X_509 with the key's CKA_ID and
// CKA_LABEL, CKA_SUBJECT, CKA_ISSUER, CKA_SERIAL_NUMBER (DER INTEGER), CKA_VALUE,
// CKA_CERTIFICATE_CATEGORY 1, CKA_TOKEN true, CKA_PRIVATE false; each of
// `intermediates` the same way with category 2 and its subject CN as label,
// unless a certificate with its issuer and serial is already there. The end
// entity is not written twice either; another certificate under the key's id
// (an earlier issuance) is removed once the new one is written. Then reads
// everything back (read_back). The session must be read/write.
// Throws CertificateNotForKey when `end_entity` is not for `key` (nothing written).
InstallResult install_certificates(p11::Session& session, const TokenKey& key, X509* end_entity,
                                   const std::vector<ossl::X509Ptr>& intermediates);

// Checks what install_certificates wrote: exactly one certificate with the
// key's CKA_ID, whose CKA_VALUE is `end_entity` and whose public key is the
// token key's; exactly one certificate per intermediate (issuer + serial) with
// the same value. Throws p11::Error describing the first difference.
void read_back(const p11::Session& session, const TokenKey& key, X509* end_entity,
               const std::vector<ossl::X509Ptr>& intermediates);

// The chain stored on the token for the key: the certificate with its CKA_ID,
// then its issuers found by CKA_SUBJECT, as far as the token has them. Throws
// p11::NotFound when the key has no certificate.
std::vector<ossl::X509Ptr> stored_chain(const p11::Session& session, const TokenKey& key);

}  // namespace qscd::agent
