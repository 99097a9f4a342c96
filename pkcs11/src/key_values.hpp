#pragma once
// The public values of token keys as OpenSSL wants them, shared by key lookup (keys.cpp) and
// key generation (keygen.cpp). Internal to pkcs11/.
#include <array>

#include "qscd/pkcs11/keys.hpp"
#include "qscd/pkcs11/session.hpp"

namespace qscd::p11::detail {

// DER of the named curve's OID (CKA_EC_PARAMS).
Bytes ec_params_der(int nid);
// The curve named by CKA_EC_PARAMS; Error when it is no named curve OpenSSL knows.
int curve_nid_from_params(const Bytes& params);
// The raw uncompressed point from CKA_EC_POINT, DER-wrapped (the standard) or raw (some modules).
Bytes ec_point_raw(const Bytes& stored, int nid);
// The value NSS hashes into CKA_ID: the modulus for RSA, the raw EC point.
Bytes public_value_for_id(const Session& session, ObjectHandle public_key, const KeyType& type);

// The two attributes that hold a public key of `type`: CKA_MODULUS and CKA_PUBLIC_EXPONENT, or
// CKA_EC_PARAMS and CKA_EC_POINT; the key from their values (Error naming an empty one); the
// value of the two that NSS hashes into CKA_ID.
std::array<CK_ATTRIBUTE_TYPE, 2> public_value_types(const KeyType& type);
EvpPkeyPtr public_key_from_values(const KeyType& type, const Bytes& first, const Bytes& second);
Bytes value_for_id(const KeyType& type, const Bytes& first, const Bytes& second);

}  // namespace qscd::p11::detail
