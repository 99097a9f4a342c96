#include "qscd/pkcs11/keys.hpp"

// Key types and ids, finding and describing keys, their public values (EVP_PKEY), signing.

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>

#include <array>
#include <cctype>
#include <optional>
#include <utility>

#include "call.hpp"
#include "key_values.hpp"
#include "qscd/pkcs11/error.hpp"

namespace qscd::p11 {

namespace {

struct BnDeleter {
  void operator()(BIGNUM* bn) const noexcept { BN_free(bn); }
};
struct ParamBldDeleter {
  void operator()(OSSL_PARAM_BLD* bld) const noexcept { OSSL_PARAM_BLD_free(bld); }
};
struct ParamDeleter {
  void operator()(OSSL_PARAM* params) const noexcept { OSSL_PARAM_free(params); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* ctx) const noexcept { EVP_PKEY_CTX_free(ctx); }
};
struct Asn1ObjectDeleter {
  void operator()(ASN1_OBJECT* object) const noexcept { ASN1_OBJECT_free(object); }
};
struct OctetStringDeleter {
  void operator()(ASN1_OCTET_STRING* octets) const noexcept { ASN1_OCTET_STRING_free(octets); }
};

const char* curve_label(int nid) { return nid == NID_secp384r1 ? "p384" : "p256"; }

}  // namespace

std::string KeyType::name() const {
  if (algorithm == Algorithm::rsa) return "rsa:" + std::to_string(rsa_bits);
  return std::string("ec:") + curve_label(curve_nid);
}

KeyType parse_key_type(std::string_view text) {
  const std::string quoted = "'" + std::string(text) + "'";
  const char* allowed = "one of rsa:2048, rsa:3072, rsa:4096, ec:p256, ec:p384";
  auto colon = text.find(':');
  if (colon == std::string_view::npos) throw InvalidArgument(quoted + " is not a key type; use " + std::string(allowed));
  std::string_view algorithm = text.substr(0, colon);
  std::string_view size = text.substr(colon + 1);
  KeyType type;
  if (algorithm == "rsa") {
    type.algorithm = KeyType::Algorithm::rsa;
    if (size == "2048" || size == "3072" || size == "4096") {
      type.rsa_bits = std::stoul(std::string(size));
      return type;
    }
    throw InvalidArgument(quoted + ": RSA keys must be 2048, 3072 or 4096 bits (shorter keys are not accepted for "
                                   "qualified certificates)");
  }
  if (algorithm == "ec") {
    type.algorithm = KeyType::Algorithm::ec;
    if (size == "p256") {
      type.curve_nid = NID_X9_62_prime256v1;
      return type;
    }
    if (size == "p384") {
      type.curve_nid = NID_secp384r1;
      return type;
    }
    throw InvalidArgument(quoted + ": EC curves are p256 and p384");
  }
  throw InvalidArgument(quoted + " is not a key type; use " + std::string(allowed));
}

Bytes parse_hex_id(std::string_view text) {
  const std::string quoted = "'" + std::string(text) + "'";
  std::string digits;
  for (char c : text) {
    if (c == ':') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      throw InvalidArgument(quoted + " is not hexadecimal (digits 0-9, a-f, optionally ':' between bytes)");
    }
    digits += c;
  }
  if (digits.empty() || digits.size() % 2 != 0) throw InvalidArgument(quoted + " must have an even number of hex digits");
  if (digits.size() > 128) throw InvalidArgument(quoted + " is longer than 64 bytes");
  Bytes bytes;
  for (std::size_t i = 0; i < digits.size(); i += 2) {
    bytes.push_back(static_cast<unsigned char>(std::stoul(digits.substr(i, 2), nullptr, 16)));
  }
  return bytes;
}

std::string to_hex(std::span<const unsigned char> bytes) {
  static const char* const digits = "0123456789abcdef";
  std::string text;
  for (unsigned char byte : bytes) {
    text += digits[byte >> 4];
    text += digits[byte & 0x0f];
  }
  return text;
}

std::vector<ObjectHandle> find_by_id(const Session& session, std::span<const unsigned char> id) {
  AttributeTemplate query;
  query.id(id);
  return session.find(query);
}

namespace detail {

Bytes ec_params_der(int nid) {
  ASN1_OBJECT* object = OBJ_nid2obj(nid);  // static table entry, not freed
  int size = i2d_ASN1_OBJECT(object, nullptr);
  if (size <= 0) throw Error("cannot encode the EC curve OID");
  Bytes der(static_cast<std::size_t>(size));
  unsigned char* out = der.data();
  i2d_ASN1_OBJECT(object, &out);
  return der;
}

namespace {

// Bytes of the uncompressed point for a curve of `degree` bits.
std::size_t uncompressed_point_size(int degree) { return 1 + 2 * ((static_cast<std::size_t>(degree) + 7) / 8); }

}  // namespace

int curve_nid_from_params(const Bytes& params) {
  const unsigned char* in = params.data();
  std::unique_ptr<ASN1_OBJECT, Asn1ObjectDeleter> object(d2i_ASN1_OBJECT(nullptr, &in, static_cast<long>(params.size())));
  if (!object) throw Error("CKA_EC_PARAMS is not a named-curve OID");
  int nid = OBJ_obj2nid(object.get());
  if (nid == NID_undef) throw Error("CKA_EC_PARAMS names a curve OpenSSL does not know");
  return nid;
}

// CKA_EC_POINT is a DER OCTET STRING per the standard, but some modules store
// the raw point. A raw uncompressed point starts with 0x04 too, so accept the
// unwrapped form only when it parses completely and has the curve's point size.
Bytes ec_point_raw(const Bytes& stored, int nid) {
  std::unique_ptr<EC_GROUP, decltype(&EC_GROUP_free)> group(EC_GROUP_new_by_curve_name(nid), EC_GROUP_free);
  if (!group) throw Error("unknown EC curve");
  std::size_t expected = uncompressed_point_size(EC_GROUP_get_degree(group.get()));
  const unsigned char* in = stored.data();
  std::unique_ptr<ASN1_OCTET_STRING, OctetStringDeleter> octets(
      d2i_ASN1_OCTET_STRING(nullptr, &in, static_cast<long>(stored.size())));
  if (octets && in == stored.data() + stored.size() &&
      static_cast<std::size_t>(ASN1_STRING_length(octets.get())) == expected) {
    const unsigned char* data = ASN1_STRING_get0_data(octets.get());
    return Bytes(data, data + expected);
  }
  if (stored.size() == expected && stored[0] == 0x04) return stored;
  throw Error("CKA_EC_POINT is neither a DER OCTET STRING nor a raw uncompressed point of the curve");
}

namespace {

Bytes required(const Session& session, ObjectHandle object, CK_ATTRIBUTE_TYPE type, const char* name) {
  auto value = session.bytes(object, type);
  if (!value || value->empty()) throw Error(std::string("the key has no readable ") + name);
  return std::move(*value);
}

}  // namespace

// The value NSS hashes into CKA_ID: the modulus for RSA, the raw EC point.
Bytes public_value_for_id(const Session& session, ObjectHandle public_key, const KeyType& type) {
  if (type.algorithm == KeyType::Algorithm::rsa) return required(session, public_key, CKA_MODULUS, "CKA_MODULUS");
  return ec_point_raw(required(session, public_key, CKA_EC_POINT, "CKA_EC_POINT"), type.curve_nid);
}

}  // namespace detail

using detail::curve_nid_from_params;
using detail::ec_point_raw;

KeyDescription describe_key(const Session& session, ObjectHandle key) {
  static constexpr CK_ATTRIBUTE_TYPE types[] = {CKA_CLASS, CKA_KEY_TYPE, CKA_ID, CKA_LABEL};
  const std::vector<Attribute> read = session.attributes(key, types);
  KeyDescription description;
  description.object_class = read[0].present() ? read[0].as_ulong() : CKO_DATA;
  description.key_type = read[1].present() ? read[1].as_ulong() : CK_UNAVAILABLE_INFORMATION;
  if (read[2].present()) description.id = read[2].value;
  if (read[3].present()) description.label = read[3].as_string();
  // A private key attribute: in the batch, a public key's answer would make it a second read anyway.
  if (description.object_class == CKO_PRIVATE_KEY) {
    description.always_authenticate = session.flag(key, CKA_ALWAYS_AUTHENTICATE).value_or(false);
  }
  return description;
}

std::string key_algorithm_name(const Session& session, ObjectHandle key) {
  CK_KEY_TYPE type = session.ulong(key, CKA_KEY_TYPE).value_or(CK_UNAVAILABLE_INFORMATION);
  if (type == CKK_RSA) {
    if (auto bits = session.ulong(key, CKA_MODULUS_BITS)) return "RSA " + std::to_string(*bits);
    if (auto modulus = session.bytes(key, CKA_MODULUS)) return "RSA " + std::to_string(modulus->size() * 8);
    return "RSA";
  }
  if (type == CKK_EC) {
    auto params = session.bytes(key, CKA_EC_PARAMS);
    if (!params) return "EC";
    int nid = curve_nid_from_params(*params);
    if (nid == NID_X9_62_prime256v1) return "EC P-256";
    if (nid == NID_secp384r1) return "EC P-384";
    return std::string("EC ") + OBJ_nid2sn(nid);
  }
  return "key type " + std::to_string(type);
}

namespace {

std::optional<ObjectHandle> find_public_key(const Session& session, const KeyDescription& description) {
  AttributeTemplate query;
  query.object_class(CKO_PUBLIC_KEY).key_type(description.key_type).id(description.id);
  std::vector<ObjectHandle> found = session.find(query);
  if (found.empty()) return std::nullopt;
  return found.front();
}

}  // namespace

std::optional<ObjectHandle> find_public_key(const Session& session, ObjectHandle private_key) {
  return find_public_key(session, describe_key(session, private_key));
}

std::optional<ObjectHandle> rebuild_public_key(Session& session, ObjectHandle private_key) {
  const KeyDescription description = describe_key(session, private_key);
  if (description.object_class != CKO_PRIVATE_KEY || description.key_type != CKK_RSA) return std::nullopt;
  static constexpr CK_ATTRIBUTE_TYPE values[] = {CKA_MODULUS, CKA_PUBLIC_EXPONENT};
  const std::vector<Attribute> read = session.attributes(private_key, values);
  if (!read[0].present() || read[0].value.empty() || !read[1].present() || read[1].value.empty()) return std::nullopt;
  // The usage flags keygen.cpp gives a public half.
  AttributeTemplate object;
  object.object_class(CKO_PUBLIC_KEY)
      .key_type(CKK_RSA)
      .token(true)
      .private_(false)
      .verify(true)
      .add_bool(CKA_VERIFY_RECOVER, false)
      .encrypt(false)
      .wrap(false)
      .id(description.id)
      .label(description.label)
      .add_bytes(CKA_MODULUS, read[0].value)
      .add_bytes(CKA_PUBLIC_EXPONENT, read[1].value);
  return session.create_on_token(object);
}

namespace {

EvpPkeyPtr from_params(const char* type, OSSL_PARAM_BLD* builder) {
  std::unique_ptr<OSSL_PARAM, ParamDeleter> params(OSSL_PARAM_BLD_to_param(builder));
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0) {
    throw Error(std::string("OpenSSL refused the token's ") + type + " public key");
  }
  return EvpPkeyPtr(key);
}

// Both values of a key in one read; Error naming the first one missing.
std::array<Bytes, 2> required_pair(const Session& session, ObjectHandle key, CK_ATTRIBUTE_TYPE first,
                                   const char* first_name, CK_ATTRIBUTE_TYPE second, const char* second_name) {
  const CK_ATTRIBUTE_TYPE types[] = {first, second};
  std::vector<Attribute> read = session.attributes(key, types);
  if (!read[0].present() || read[0].value.empty()) throw Error(std::string("the key has no readable ") + first_name);
  if (!read[1].present() || read[1].value.empty()) throw Error(std::string("the key has no readable ") + second_name);
  return {std::move(read[0].value), std::move(read[1].value)};
}

EvpPkeyPtr rsa_from_values(const Bytes& modulus, const Bytes& exponent) {
  std::unique_ptr<BIGNUM, BnDeleter> n(BN_bin2bn(modulus.data(), static_cast<int>(modulus.size()), nullptr));
  std::unique_ptr<BIGNUM, BnDeleter> e(BN_bin2bn(exponent.data(), static_cast<int>(exponent.size()), nullptr));
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldDeleter> builder(OSSL_PARAM_BLD_new());
  if (!n || !e || !builder || !OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) ||
      !OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_E, e.get())) {
    throw Error("cannot build the RSA public key");
  }
  return from_params("RSA", builder.get());
}

EvpPkeyPtr ec_from_values(const Bytes& params, const Bytes& encoded_point) {
  int nid = curve_nid_from_params(params);
  Bytes point = ec_point_raw(encoded_point, nid);
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldDeleter> builder(OSSL_PARAM_BLD_new());
  if (!builder || !OSSL_PARAM_BLD_push_utf8_string(builder.get(), OSSL_PKEY_PARAM_GROUP_NAME, OBJ_nid2sn(nid), 0) ||
      !OSSL_PARAM_BLD_push_octet_string(builder.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size())) {
    throw Error("cannot build the EC public key");
  }
  return from_params("EC", builder.get());
}

EvpPkeyPtr rsa_public_key(const Session& session, ObjectHandle key) {
  auto [modulus, exponent] = required_pair(session, key, CKA_MODULUS, "CKA_MODULUS", CKA_PUBLIC_EXPONENT, "CKA_PUBLIC_EXPONENT");
  return rsa_from_values(modulus, exponent);
}

EvpPkeyPtr ec_public_key(const Session& session, ObjectHandle key) {
  auto [params, encoded_point] = required_pair(session, key, CKA_EC_PARAMS, "CKA_EC_PARAMS", CKA_EC_POINT, "CKA_EC_POINT");
  return ec_from_values(params, encoded_point);
}

}  // namespace

namespace detail {

std::array<CK_ATTRIBUTE_TYPE, 2> public_value_types(const KeyType& type) {
  if (type.algorithm == KeyType::Algorithm::rsa) return {CKA_MODULUS, CKA_PUBLIC_EXPONENT};
  return {CKA_EC_PARAMS, CKA_EC_POINT};
}

EvpPkeyPtr public_key_from_values(const KeyType& type, const Bytes& first, const Bytes& second) {
  const bool rsa = type.algorithm == KeyType::Algorithm::rsa;
  if (first.empty()) throw Error(std::string("the key has no readable ") + (rsa ? "CKA_MODULUS" : "CKA_EC_PARAMS"));
  if (second.empty()) throw Error(std::string("the key has no readable ") + (rsa ? "CKA_PUBLIC_EXPONENT" : "CKA_EC_POINT"));
  return rsa ? rsa_from_values(first, second) : ec_from_values(first, second);
}

Bytes value_for_id(const KeyType& type, const Bytes& first, const Bytes& second) {
  if (type.algorithm == KeyType::Algorithm::rsa) return first;
  return ec_point_raw(second, type.curve_nid);
}

}  // namespace detail

EvpPkeyPtr public_key(const Session& session, ObjectHandle key) {
  KeyDescription description = describe_key(session, key);
  ObjectHandle source = key;
  if (description.object_class == CKO_PRIVATE_KEY) {
    // RSA private keys usually carry the modulus; EC private keys never carry the point.
    auto has_values = [&] {
      return description.key_type == CKK_RSA && session.attribute(key, CKA_MODULUS).present() &&
             session.attribute(key, CKA_PUBLIC_EXPONENT).present();
    };
    if (auto public_half = find_public_key(session, description)) {
      source = *public_half;
    } else if (!has_values()) {
      throw Error("no public key object with id " + to_hex(description.id) + " on token '" +
                  session.site().token_label + "'");
    }
  } else if (description.object_class != CKO_PUBLIC_KEY) {
    throw InvalidArgument("object is not a key");
  }
  if (description.key_type == CKK_RSA) return rsa_public_key(session, source);
  if (description.key_type == CKK_EC) return ec_public_key(session, source);
  throw Error("unsupported key type " + std::to_string(description.key_type));
}

Bytes sign(Session& session, ObjectHandle key, CK_MECHANISM_TYPE mechanism_type, std::span<const unsigned char> data,
           std::optional<std::span<const unsigned char>> context_pin, const LoginOptions& login_options) {
  CK_RSA_PKCS_PSS_PARAMS pss{CKM_SHA256, CKG_MGF1_SHA256, 32};
  CK_MECHANISM mechanism{mechanism_type, nullptr, 0};
  switch (mechanism_type) {
    case CKM_SHA256_RSA_PKCS:
    case CKM_ECDSA:
      break;
    case CKM_SHA256_RSA_PKCS_PSS:
      mechanism.pParameter = &pss;
      mechanism.ulParameterLen = sizeof pss;
      break;
    default:
      throw InvalidArgument("signing mechanism " + std::to_string(mechanism_type) +
                            " is not one of CKM_SHA256_RSA_PKCS, CKM_SHA256_RSA_PKCS_PSS, CKM_ECDSA");
  }
  bool always_authenticate = session.flag(key, CKA_ALWAYS_AUTHENTICATE).value_or(false);
  if (always_authenticate && !context_pin) {
    throw InvalidArgument("the key has CKA_ALWAYS_AUTHENTICATE: it needs the PIN again for every signature");
  }
  QSCD_P11_CALL(session.functions(), session.site(), C_SignInit, session.handle(), &mechanism, key);
  if (always_authenticate) login_context_specific(session, *context_pin, login_options);
  CK_BYTE_PTR input = const_cast<CK_BYTE_PTR>(data.data());
  // A buffer for any signature of these mechanisms up to RSA-8192 makes it one C_Sign instead of
  // a size query and the signature; CKR_BUFFER_TOO_SMALL leaves the operation active, with the size.
  Bytes signature(1024);
  CK_ULONG size = signature.size();
  CK_RV rv = QSCD_P11_CALL_RAW(session.functions(), session.site(), C_Sign, session.handle(), input,
                               static_cast<CK_ULONG>(data.size()), signature.data(), &size);
  if (rv == CKR_BUFFER_TOO_SMALL) {
    signature.resize(size);
    rv = QSCD_P11_CALL_RAW(session.functions(), session.site(), C_Sign, session.handle(), input,
                           static_cast<CK_ULONG>(data.size()), signature.data(), &size);
  }
  if (rv != CKR_OK) throw CallError(rv, "C_Sign", session.site());
  signature.resize(size);
  return signature;
}

}  // namespace qscd::p11
