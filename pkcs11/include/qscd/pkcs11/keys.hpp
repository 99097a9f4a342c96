#pragma once
// Key pairs on the token: generation through the function list (libp11 0.4
// cannot generate EC keys nor set these attributes), reading the public half
// as an OpenSSL EVP_PKEY, and signing.
#include <openssl/evp.h>
#include <p11-kit/pkcs11.h>

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "qscd/pkcs11/attributes.hpp"
#include "qscd/pkcs11/login.hpp"
#include "qscd/pkcs11/session.hpp"

namespace qscd::p11 {

struct KeyType {
  enum class Algorithm { rsa, ec };
  Algorithm algorithm = Algorithm::rsa;
  CK_ULONG rsa_bits = 0;  // rsa: 2048, 3072 or 4096
  int curve_nid = 0;      // ec: NID_X9_62_prime256v1 or NID_secp384r1

  // The spelling parse_key_type accepts: "rsa:3072", "ec:p256".
  [[nodiscard]] std::string name() const;
};

// "rsa:2048|rsa:3072|rsa:4096|ec:p256|ec:p384"; throws InvalidArgument saying
// what is wrong (rsa:1024 is refused: too weak for a qualified certificate).
KeyType parse_key_type(std::string_view text);

// Hex (upper or lower case, optional ':' between bytes) to bytes, 1..64 bytes.
// Throws InvalidArgument.
Bytes parse_hex_id(std::string_view text);
std::string to_hex(std::span<const unsigned char> bytes);

struct KeyGenRequest {
  KeyType type;
  std::string label;
  // Default: SHA-1 of the public key value (RSA modulus, EC point), as NSS does.
  std::optional<Bytes> id;
  bool always_authenticate = false;
  // The caller found no object with `id` on the token in this session just before (a check it
  // made for its own reasons): generate_key_pair does not search again.
  bool id_checked = false;
};

struct EvpPkeyDeleter {
  void operator()(EVP_PKEY* key) const noexcept { EVP_PKEY_free(key); }
};
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;

struct KeyPair {
  ObjectHandle private_key = CK_INVALID_HANDLE;
  ObjectHandle public_key = CK_INVALID_HANDLE;
  Bytes id;
  std::string label;
  // The public key as the token gave it at generation (what public_key() would read from
  // `public_key` now), so the caller need not read it again.
  EvpPkeyPtr public_value;
};

// Generates the pair on the session's token (session read/write, user logged
// in). Throws InvalidArgument when `id` is already used by an object on the
// token (checked before generating), CallError when the token refuses.
// On a failure after generation, the half-made pair is destroyed.
// On a soft token (a slot without CKF_HW_SLOT, such as SoftHSM2's, where every key is in the
// host's memory anyway) that allows it, the pair is generated as session objects and copied onto
// the token, public half first (C_CopyObject keeps CKA_LOCAL, CKA_KEY_GEN_MECHANISM,
// CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE, and each copy is checked for them): SoftHSM2
// writes a pair that way in 6 file rewrites instead of 61. A hardware slot, a module without
// C_CopyObject, or one that refuses session keys or their copy, gets C_GenerateKeyPair of token
// objects; a module that makes token objects whatever CKA_TOKEN says keeps them. A crash between
// the two copies leaves the public half alone on the token.
KeyPair generate_key_pair(Session& session, const KeyGenRequest& request);

// Every object on the token with this CKA_ID (any class visible to the session).
std::vector<ObjectHandle> find_by_id(const Session& session, std::span<const unsigned char> id);

struct KeyDescription {
  CK_OBJECT_CLASS object_class = CKO_DATA;
  CK_KEY_TYPE key_type = CKK_RSA;
  Bytes id;
  std::string label;
  bool always_authenticate = false;  // CKA_ALWAYS_AUTHENTICATE, false when absent
};
KeyDescription describe_key(const Session& session, ObjectHandle key);

// "RSA 2048", "EC P-256", "EC P-384" from the key's own attributes (either half).
std::string key_algorithm_name(const Session& session, ObjectHandle key);

// The public-key object with the same CKA_ID and key type as `private_key`.
std::optional<ObjectHandle> find_public_key(const Session& session, ObjectHandle private_key);

// A token public-key object made again for `private_key` (same CKA_ID, label and key type, its
// modulus and exponent), for a pair that lost its public half. nullopt when the private key does
// not carry its public values: an RSA key usually does, an EC private key never holds its point.
std::optional<ObjectHandle> rebuild_public_key(Session& session, ObjectHandle private_key);

// The public key of a pair as an OpenSSL key, from CKA_MODULUS/CKA_PUBLIC_EXPONENT
// or CKA_EC_PARAMS/CKA_EC_POINT (a DER OCTET STRING-wrapped point is unwrapped).
// `key` may be the private or the public half; for a private key the public
// object with the same CKA_ID is read when the private one lacks the values.
EvpPkeyPtr public_key(const Session& session, ObjectHandle key);

// Signs `data` with `key`:
//   CKM_SHA256_RSA_PKCS      data = the message (the token hashes)
//   CKM_SHA256_RSA_PKCS_PSS  data = the message; SHA-256, MGF1-SHA-256, 32-byte salt
//   CKM_ECDSA                data = the caller's digest; returns raw r||s
// For a CKA_ALWAYS_AUTHENTICATE key, `context_pin` is sent with a
// context-specific login (same anti-lockout rules); without it, InvalidArgument.
// If that login fails, the signing operation begun by C_SignInit stays active
// (PKCS#11 2.40 has no way to cancel it): discard the session.
Bytes sign(Session& session, ObjectHandle key, CK_MECHANISM_TYPE mechanism, std::span<const unsigned char> data,
           std::optional<std::span<const unsigned char>> context_pin = std::nullopt,
           const LoginOptions& login_options = {});

}  // namespace qscd::p11
