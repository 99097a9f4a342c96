#include "qscd/pkcs11/keys.hpp"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include <initializer_list>
#include <optional>
#include <utility>

#include "call.hpp"
#include "key_values.hpp"
#include "refusals.hpp"
#include "qscd/pkcs11/error.hpp"

// Key pair generation: the templates, on a soft token the session pair copied onto the token,
// otherwise the pair generated on the token; the default CKA_ID (SHA-1 of the public value).
namespace qscd::p11 {

namespace {

using detail::ec_params_der;
using detail::public_key_from_values;
using detail::public_value_types;
using detail::value_for_id;

Bytes sha1(std::span<const unsigned char> data) {
  Bytes digest(SHA_DIGEST_LENGTH);
  SHA1(data.data(), data.size(), digest.data());
  return digest;
}

Bytes random_id() {
  Bytes id(20);
  if (RAND_bytes(id.data(), static_cast<int>(id.size())) != 1) throw Error("RAND_bytes failed");
  return id;
}

bool is_rsa(const KeyGenRequest& request) { return request.type.algorithm == KeyType::Algorithm::rsa; }

AttributeTemplate public_key_template(const KeyGenRequest& request, std::span<const unsigned char> id, bool on_token) {
  static const unsigned char exponent_65537[] = {0x01, 0x00, 0x01};
  AttributeTemplate object;
  object.object_class(CKO_PUBLIC_KEY)
      .key_type(is_rsa(request) ? CKK_RSA : CKK_EC)
      .token(on_token)
      .private_(false)
      .verify(true)
      .add_bool(CKA_VERIFY_RECOVER, false)
      .encrypt(false)
      .wrap(false)
      .id(id)
      .label(request.label);
  if (is_rsa(request)) {
    object.modulus_bits(request.type.rsa_bits).public_exponent(exponent_65537);
  } else {
    object.ec_params(ec_params_der(request.type.curve_nid));
  }
  return object;
}

AttributeTemplate private_key_template(const KeyGenRequest& request, std::span<const unsigned char> id, bool on_token) {
  AttributeTemplate object;
  object.object_class(CKO_PRIVATE_KEY)
      .key_type(is_rsa(request) ? CKK_RSA : CKK_EC)
      .token(on_token)
      .private_(true)
      .sensitive(true)
      .extractable(false)
      .sign(true)
      .add_bool(CKA_SIGN_RECOVER, false)
      .decrypt(false)
      .unwrap(false)
      .derive(false)
      .id(id)
      .label(request.label);
  if (request.always_authenticate) object.always_authenticate(true);
  return object;
}

CK_MECHANISM keygen_mechanism(const KeyGenRequest& request) {
  return {is_rsa(request) ? CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, nullptr, 0};
}

// Best effort, through the noexcept funnel: a failure here must not replace the error being
// rethrown.
void destroy_quietly(Session& session, std::initializer_list<ObjectHandle> objects) noexcept {
  for (ObjectHandle object : objects) {
    if (object != CK_INVALID_HANDLE) QSCD_P11_CALL_NOEXCEPT(session.functions(), C_DestroyObject, session.handle(), object);
  }
}

// What generation gives a key and a copy keeps (PKCS#11 2.40 keeps CKA_LOCAL true for "a copy of
// a key which had its CKA_LOCAL attribute set to CK_TRUE"): the copy of a half must still say so.
void add_history(AttributeTemplate& expected, const KeyGenRequest& request, bool private_half) {
  expected.add_bool(CKA_LOCAL, true).add_ulong(CKA_KEY_GEN_MECHANISM, keygen_mechanism(request).mechanism);
  if (private_half) expected.add_bool(CKA_ALWAYS_SENSITIVE, true).add_bool(CKA_NEVER_EXTRACTABLE, true);
}

// On a soft token, the pair generated as session objects and copied onto the token: SoftHSM2's file store
// rewrites a new object's file once for every attribute it sets outside a transaction, 61 times
// for an EC pair generated on the token and 6 times for two copies (docs/performance.md). The
// public half goes first: a crash between the copies leaves a public key without its private
// one, which a resume can remove (the private key alone could not give the CSR its public key).
// nullopt when the module cannot do it this way before anything reached the token; then the
// caller generates on the token.
//
// Calls (each a round trip on a card): the staged public half is read once, for whether the
// module made token objects despite CKA_TOKEN false (OpenSC's card keys always are: then both
// halves are kept and given the id in place), its public values (the default id, the caller's
// public key, and the copy's check) and what generation gave it; each copy is checked in one read
// against its template, its public values or the history generation gives a private key.
std::optional<KeyPair> generate_by_copy(Session& session, const KeyGenRequest& request) {
  const CK_FUNCTION_LIST* functions = session.functions();
  if (functions->C_CopyObject == nullptr || functions->C_DestroyObject == nullptr) return std::nullopt;
  // Only on a soft token, where every key lives in the host's memory anyway. A hardware slot's
  // pair comes from one C_GenerateKeyPair of token objects: its middleware might keep a session
  // key outside the device, and the copy would then put on the device a key made elsewhere.
  if (session.hardware_slot()) return std::nullopt;
  // The default id is a hash of the public value, known only after generation; the copies get it.
  const Bytes staged_id = request.id ? *request.id : random_id();
  AttributeTemplate public_template = public_key_template(request, staged_id, false);
  AttributeTemplate private_template = private_key_template(request, staged_id, false);
  CK_MECHANISM mechanism = keygen_mechanism(request);
  ObjectHandle staged_public = CK_INVALID_HANDLE;
  ObjectHandle staged_private = CK_INVALID_HANDLE;
  CK_RV rv = QSCD_P11_CALL_RAW(functions, session.site(), C_GenerateKeyPair, session.handle(), &mechanism,
                               public_template.data(), public_template.size(), private_template.data(),
                               private_template.size(), &staged_public, &staged_private);
  if (rv != CKR_OK) {
    if (detail::refuses_session_object(rv)) return std::nullopt;
    throw CallError(rv, "C_GenerateKeyPair", session.site());
  }
  KeyPair pair;
  pair.label = request.label;
  // Each handle is given up (INVALID) as it is handed on or destroyed: what the catch destroys is
  // only what is still ours.
  ObjectHandle public_copy = CK_INVALID_HANDLE;
  try {
    const auto values = public_value_types(request.type);
    const CK_ATTRIBUTE_TYPE asked[] = {CKA_TOKEN, CKA_LOCAL, CKA_KEY_GEN_MECHANISM, values[0], values[1]};
    const std::vector<Attribute> read = session.attributes(staged_public, asked);
    const Bytes& first = read[3].present() ? read[3].value : Bytes{};
    const Bytes& second = read[4].present() ? read[4].value : Bytes{};
    pair.public_value = public_key_from_values(request.type, first, second);
    pair.id = request.id ? *request.id : sha1(value_for_id(request.type, first, second));
    const bool id_changes = !request.id;
    auto changes = [&] {
      AttributeTemplate id_change;
      if (id_changes) id_change.id(pair.id);
      return id_change;
    };
    if (read[0].present() && read[0].as_bool()) {
      // Token objects already, whatever the template said: kept, given the final id in place.
      if (id_changes) {
        session.set_attributes(staged_public, changes());
        session.set_attributes(staged_private, changes());
      }
      pair.public_key = std::exchange(staged_public, CK_INVALID_HANDLE);
      pair.private_key = std::exchange(staged_private, CK_INVALID_HANDLE);
      return pair;
    }
    AttributeTemplate public_expected = public_key_template(request, pair.id, true);
    for (std::size_t i = 1; i < 3; ++i) {
      if (read[i].present()) public_expected.add_bytes(asked[i], read[i].value);
    }
    public_expected.add_bytes(values[0], first).add_bytes(values[1], second);
    auto on_token = session.copy_onto_token(std::exchange(staged_public, CK_INVALID_HANDLE), changes(), public_expected);
    if (!on_token) {
      session.destroy(std::exchange(staged_private, CK_INVALID_HANDLE));
      return std::nullopt;
    }
    public_copy = *on_token;
    AttributeTemplate private_expected = private_key_template(request, pair.id, true);
    add_history(private_expected, request, true);
    on_token = session.copy_onto_token(std::exchange(staged_private, CK_INVALID_HANDLE), changes(), private_expected);
    if (!on_token) {
      session.destroy(std::exchange(public_copy, CK_INVALID_HANDLE));
      return std::nullopt;
    }
    pair.public_key = public_copy;
    pair.private_key = *on_token;
  } catch (...) {
    // A half already copied is an orphan nobody can link; the session objects go with the session
    // but are destroyed now all the same.
    destroy_quietly(session, {public_copy, staged_public, staged_private});
    throw;
  }
  return pair;
}

KeyPair generate_on_token(Session& session, const KeyGenRequest& request) {
  // The default id is a hash of the public value, known only after generation:
  // generate under a random temporary id (so the half-made pair never shares an
  // id with anything), then set the final id on both halves.
  const Bytes generation_id = request.id ? *request.id : random_id();
  AttributeTemplate public_template = public_key_template(request, generation_id, true);
  AttributeTemplate private_template = private_key_template(request, generation_id, true);
  CK_MECHANISM mechanism = keygen_mechanism(request);
  KeyPair pair;
  pair.label = request.label;
  QSCD_P11_CALL(session.functions(), session.site(), C_GenerateKeyPair, session.handle(), &mechanism,
                public_template.data(), public_template.size(), private_template.data(), private_template.size(),
                &pair.public_key, &pair.private_key);
  try {
    // One read: the caller's public key, and the default id.
    const auto values = public_value_types(request.type);
    const std::vector<Attribute> read = session.attributes(pair.public_key, values);
    const Bytes& first = read[0].present() ? read[0].value : Bytes{};
    const Bytes& second = read[1].present() ? read[1].value : Bytes{};
    pair.public_value = public_key_from_values(request.type, first, second);
    if (request.id) {
      pair.id = *request.id;
    } else {
      pair.id = sha1(value_for_id(request.type, first, second));
      AttributeTemplate final_id;
      final_id.id(pair.id);
      session.set_attributes(pair.public_key, final_id);
      session.set_attributes(pair.private_key, final_id);
    }
  } catch (...) {
    // A pair left under the temporary id is an orphan nobody can link.
    destroy_quietly(session, {pair.private_key, pair.public_key});
    throw;
  }
  return pair;
}

}  // namespace

KeyPair generate_key_pair(Session& session, const KeyGenRequest& request) {
  if (request.id && !request.id_checked && !find_by_id(session, *request.id).empty()) {
    throw InvalidArgument("id " + to_hex(*request.id) + " is already used by an object on token '" +
                          session.site().token_label + "'");
  }
  if (auto pair = generate_by_copy(session, request)) return std::move(*pair);
  return generate_on_token(session, request);
}
}  // namespace qscd::p11
