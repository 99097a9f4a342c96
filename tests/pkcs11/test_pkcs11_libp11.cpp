// An independent reader: libp11 (what OpenSSL's pkcs11 engine uses) must find
// the keys our layer generated under the same CKA_ID and label, with the same
// public key our layer reads back.
#include <doctest/doctest.h>
#include <libp11.h>
#include <openssl/x509.h>

#include <map>
#include <string>

#include "qscd/pkcs11/keys.hpp"
#include "qscd/pkcs11/login.hpp"
#include "qscd/pkcs11/module.hpp"
#include "qscd/pkcs11/uri.hpp"
#include "softhsm.hpp"

using namespace qscd::p11;

namespace {

Bytes spki_der(EVP_PKEY* key) {
  int size = i2d_PUBKEY(key, nullptr);
  REQUIRE(size > 0);
  Bytes der(static_cast<std::size_t>(size));
  unsigned char* out = der.data();
  i2d_PUBKEY(key, &out);
  return der;
}

}  // namespace

TEST_CASE("libp11 sees our keys under the same id and label, with the same public key") {
  qscd::test::SoftHsm hsm;
  hsm.add_token("cross");
  std::map<Bytes, std::pair<std::string, Bytes>> ours;  // id -> label, SubjectPublicKeyInfo
  {
    Module module(qscd::test::softhsm_module);
    Session session(module, select_token(module, std::nullopt).slot, Session::Access::read_write);
    const unsigned char pin[] = {'1', '2', '3', '4', '5', '6'};
    login(session, CKU_USER, pin);
    for (const char* type : {"rsa:2048", "ec:p256", "ec:p384"}) {
      KeyPair pair = generate_key_pair(session, {parse_key_type(type), type, std::nullopt, false});
      ours[pair.id] = {type, spki_der(public_key(session, pair.private_key).get())};
    }
  }  // our Module is finalised before libp11 initialises the module itself

  PKCS11_CTX* ctx = PKCS11_CTX_new();
  REQUIRE(ctx != nullptr);
  REQUIRE(PKCS11_CTX_load(ctx, qscd::test::softhsm_module) == 0);
  PKCS11_SLOT* slots = nullptr;
  unsigned int slot_count = 0;
  REQUIRE(PKCS11_enumerate_slots(ctx, &slots, &slot_count) == 0);
  PKCS11_SLOT* slot = PKCS11_find_token(ctx, slots, slot_count);
  REQUIRE(slot != nullptr);
  REQUIRE(std::string(slot->token->label) == "cross");
  REQUIRE(PKCS11_login(slot, 0, "123456") == 0);
  PKCS11_KEY* keys = nullptr;
  unsigned int key_count = 0;
  REQUIRE(PKCS11_enumerate_keys(slot->token, &keys, &key_count) == 0);
  CHECK(key_count == ours.size());
  for (unsigned int i = 0; i < key_count; ++i) {
    Bytes id(keys[i].id, keys[i].id + keys[i].id_len);
    auto found = ours.find(id);
    REQUIRE_MESSAGE(found != ours.end(), "libp11 found a key with an id we did not make: " << to_hex(id));
    CHECK(std::string(keys[i].label) == found->second.first);
    EVP_PKEY* theirs = PKCS11_get_public_key(&keys[i]);
    REQUIRE(theirs != nullptr);
    CHECK(spki_der(theirs) == found->second.second);
    EVP_PKEY_free(theirs);
  }
  PKCS11_release_all_slots(ctx, slots, slot_count);
  PKCS11_CTX_unload(ctx);
  PKCS11_CTX_free(ctx);
}
