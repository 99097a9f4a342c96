#pragma once
// The key/certificate pairs on a token, as renewal sees them: a private key on the token and the
// end-entity certificate under its CKA_ID. Pairs a renewal kept (--keep-old, labelled
// "<label> (superseded)") are not renewed again.
#include <string>
#include <vector>

#include "base/ossl.hpp"
#include "csr/profile.hpp"
#include "qscd/pkcs11/keys.hpp"
#include "qscd/pkcs11/session.hpp"
#include "renew/due.hpp"

namespace qscd::agent {

// The label suffix of a pair a renewal replaced and kept.
inline constexpr std::string_view superseded_suffix = " (superseded)";

struct TokenPair {
  p11::ObjectHandle private_key = CK_INVALID_HANDLE;
  std::string id_hex;
  std::string label;
  ossl::X509Ptr certificate;  // the latest-ending one under the id
  std::string serial;         // hex, as certs/serial_hex prints it
  SystemTime not_before;
  SystemTime not_after;
  std::string key_type;  // the certificate key's, as parse_key_type spells it ("rsa:3072")
};

// Every pair on the token (the session must be logged in to see private keys), in label order.
std::vector<TokenPair> token_pairs(const p11::Session& session);

// The pair whose key has `id_hex` and whose certificate has serial `serial`, if it is still there.
std::optional<TokenPair> find_pair(const p11::Session& session, const std::string& id_hex, const std::string& serial);

// A certificate's subject as the CSR builder takes it, in the certificate's order. Throws
// UsageError naming the attribute when it holds one the builder cannot write.
csr::Subject subject_of(const X509* certificate);

SystemTime asn1_time(const ASN1_TIME* time);

}  // namespace qscd::agent
