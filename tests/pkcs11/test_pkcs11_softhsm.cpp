// The token layer against a real SoftHSM2 token: one token folder and one
// Module per test case (SoftHSM2 re-reads SOFTHSM2_CONF on every C_Initialize).
#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "process.hpp"
#include "qscd/pkcs11/admin.hpp"
#include "qscd/pkcs11/error.hpp"
#include "qscd/pkcs11/keys.hpp"
#include "qscd/pkcs11/login.hpp"
#include "qscd/pkcs11/module.hpp"
#include "qscd/pkcs11/session.hpp"
#include "qscd/pkcs11/token.hpp"
#include "qscd/pkcs11/uri.hpp"
#include "softhsm.hpp"

using namespace qscd::p11;
using qscd::test::ScopedEnv;
using qscd::test::SoftHsm;
using qscd::test::softhsm_module;

namespace {

std::span<const unsigned char> pin(const char* text) {
  return {reinterpret_cast<const unsigned char*>(text), std::strlen(text)};
}

Session logged_in(const Module& module, const TokenInfo& token, const char* user_pin = "123456") {
  Session session(module, token.slot, Session::Access::read_write);
  login(session, CKU_USER, pin(user_pin));
  return session;
}

std::string shim_path() {
  const char* path = std::getenv("QSCD_P11SHIM");
  REQUIRE(path != nullptr);
  return path;
}

int count_lines(const std::string& text, const std::string& line) {
  int n = 0;
  std::size_t at = 0;
  std::string needle = line + "\n";
  while ((at = text.find(needle, at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') ++n;
    at += needle.size();
  }
  return n;
}

}  // namespace

TEST_CASE("a Module per test case: SoftHSM2 reads the new config on every C_Initialize") {
  {
    SoftHsm hsm;
    hsm.add_token("first");
    Module module(softhsm_module);
    CHECK(select_token(module, std::nullopt).label == "first");
  }
  {
    SoftHsm hsm;
    hsm.add_token("second");
    Module module(softhsm_module);
    CHECK(select_token(module, std::nullopt).label == "second");
  }
}

TEST_CASE("token info: trimmed strings and the PIN state") {
  SoftHsm hsm;
  hsm.add_token("info");
  Module module(softhsm_module);
  TokenInfo token = select_token(module, "pkcs11:token=info");
  CHECK(token.label == "info");
  CHECK(token.manufacturer == "SoftHSM project");
  CHECK(token.model == "SoftHSM v2");
  CHECK(token.serial.size() == 16);
  CHECK(token.initialized);
  CHECK(token.user_pin_initialized);
  CHECK(token.user.ok());
}

TEST_CASE("every key type: generated on the token with the attributes of the contract") {
  SoftHsm hsm;
  hsm.add_token("keys");
  Module module(softhsm_module);
  TokenInfo token = select_token(module, std::nullopt);
  Session session = logged_in(module, token);
  for (const char* type_name : {"rsa:2048", "rsa:3072", "rsa:4096", "ec:p256", "ec:p384"}) {
    CAPTURE(type_name);
    KeyType type = parse_key_type(type_name);
    KeyPair pair = generate_key_pair(session, {type, std::string("key ") + type_name, std::nullopt, false});
    ObjectHandle priv = pair.private_key;
    ObjectHandle pub = pair.public_key;

    // A pair, not a structured binding: CAPTURE is a lambda, and clang 14 cannot capture a binding.
    for (const auto& check : std::initializer_list<std::pair<CK_ATTRIBUTE_TYPE, bool>>{
             {CKA_TOKEN, true}, {CKA_PRIVATE, true}, {CKA_SENSITIVE, true}, {CKA_EXTRACTABLE, false},
             {CKA_SIGN, true}, {CKA_DECRYPT, false}, {CKA_UNWRAP, false}, {CKA_DERIVE, false},
             {CKA_NEVER_EXTRACTABLE, true}, {CKA_ALWAYS_SENSITIVE, true}, {CKA_LOCAL, true}}) {
      const CK_ATTRIBUTE_TYPE attribute = check.first;
      CAPTURE(attribute);
      CHECK(session.flag(priv, attribute) == check.second);
    }
    CHECK(session.flag(pub, CKA_VERIFY) == true);
    CHECK(session.flag(pub, CKA_ENCRYPT) == false);
    CHECK(session.flag(pub, CKA_WRAP) == false);
    CHECK(session.flag(pub, CKA_TOKEN) == true);

    // Sensitive values cannot be read back.
    CHECK(session.attribute(priv, CKA_VALUE).state != Attribute::State::present);
    CHECK(session.attribute(priv, CKA_PRIVATE_EXPONENT).state != Attribute::State::present);
    if (type.algorithm == KeyType::Algorithm::rsa) {
      CHECK(session.attribute(priv, CKA_PRIVATE_EXPONENT).sensitive());
      CHECK(session.ulong(pub, CKA_MODULUS_BITS) == type.rsa_bits);
      CHECK(session.bytes(pub, CKA_PUBLIC_EXPONENT) == Bytes{0x01, 0x00, 0x01});
    } else {
      CHECK(session.attribute(priv, CKA_VALUE).sensitive());
    }

    // Same id and label on both; the id is the SHA-1 of the public value, as NSS.
    KeyDescription d_priv = describe_key(session, priv);
    KeyDescription d_pub = describe_key(session, pub);
    CHECK(d_priv.id == pair.id);
    CHECK(d_pub.id == pair.id);
    CHECK(d_priv.label == std::string("key ") + type_name);
    CHECK(d_pub.label == d_priv.label);
    CHECK_FALSE(d_priv.always_authenticate);

    EvpPkeyPtr key = public_key(session, priv);
    REQUIRE(key);
    if (type.algorithm == KeyType::Algorithm::rsa) {
      CHECK(EVP_PKEY_get_bits(key.get()) == static_cast<int>(type.rsa_bits));
      Bytes modulus = *session.bytes(pub, CKA_MODULUS);
      Bytes expected(SHA_DIGEST_LENGTH);
      SHA1(modulus.data(), modulus.size(), expected.data());
      CHECK(pair.id == expected);
    } else {
      CHECK(EVP_PKEY_get_bits(key.get()) == (type.curve_nid == NID_secp384r1 ? 384 : 256));
      unsigned char point[200];
      std::size_t point_size = 0;
      REQUIRE(EVP_PKEY_get_octet_string_param(key.get(), "pub", point, sizeof point, &point_size) == 1);
      Bytes expected(SHA_DIGEST_LENGTH);
      SHA1(point, point_size, expected.data());
      CHECK(pair.id == expected);
    }
  }
}

TEST_CASE("sign with every mechanism and verify with OpenSSL from the public key read back") {
  SoftHsm hsm;
  hsm.add_token("sign");
  Module module(softhsm_module);
  TokenInfo token = select_token(module, std::nullopt);
  Session session = logged_in(module, token);
  const unsigned char message[] = "to be signed";
  std::span<const unsigned char> data(message, sizeof message - 1);

  KeyPair rsa = generate_key_pair(session, {parse_key_type("rsa:2048"), "rsa", std::nullopt, false});
  EvpPkeyPtr rsa_public = public_key(session, rsa.public_key);
  for (CK_MECHANISM_TYPE mechanism : {CKM_SHA256_RSA_PKCS, CKM_SHA256_RSA_PKCS_PSS}) {
    Bytes signature = sign(session, rsa.private_key, mechanism, data);
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_PKEY_CTX* pctx = nullptr;
    REQUIRE(EVP_DigestVerifyInit(ctx.get(), &pctx, EVP_sha256(), nullptr, rsa_public.get()) == 1);
    if (mechanism == CKM_SHA256_RSA_PKCS_PSS) {
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
      EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32);
    }
    CHECK(EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), data.data(), data.size()) == 1);
  }

  KeyPair ec = generate_key_pair(session, {parse_key_type("ec:p256"), "ec", std::nullopt, false});
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(data.data(), data.size(), digest);
  Bytes raw = sign(session, ec.private_key, CKM_ECDSA, digest);
  CHECK(raw.size() == 64);  // r||s, as the token returns it
  CHECK_THROWS_AS(sign(session, ec.private_key, CKM_RSA_PKCS, digest), InvalidArgument);
}

TEST_CASE("always-authenticate keys sign only with a context-specific PIN") {
  SoftHsm hsm;
  hsm.add_token("aa");
  Module module(softhsm_module);
  Session session = logged_in(module, select_token(module, std::nullopt));
  KeyPair pair = generate_key_pair(session, {parse_key_type("ec:p256"), "aa", parse_hex_id("aa01"), true});
  CHECK(pair.id == Bytes{0xaa, 0x01});
  CHECK(describe_key(session, pair.private_key).always_authenticate);
  unsigned char digest[32] = {1};
  CHECK_THROWS_WITH_AS(sign(session, pair.private_key, CKM_ECDSA, digest), doctest::Contains("CKA_ALWAYS_AUTHENTICATE"),
                       InvalidArgument);
  CHECK(sign(session, pair.private_key, CKM_ECDSA, digest, pin("123456")).size() == 64);
}

TEST_CASE("an id already on the token is refused before generating") {
  SoftHsm hsm;
  hsm.add_token("dup");
  Module module(softhsm_module);
  Session session = logged_in(module, select_token(module, std::nullopt));
  generate_key_pair(session, {parse_key_type("ec:p256"), "one", parse_hex_id("01"), false});
  std::size_t before = session.find(AttributeTemplate{}).size();
  CHECK_THROWS_WITH_AS(generate_key_pair(session, {parse_key_type("ec:p256"), "two", parse_hex_id("01"), false}),
                       doctest::Contains("id 01 is already used"), InvalidArgument);
  CHECK(session.find(AttributeTemplate{}).size() == before);
}

TEST_CASE("several attributes in one read: each answered as a single read answers it") {
  SoftHsm hsm;
  hsm.add_token("batch");
  Module module(softhsm_module);
  Session session = logged_in(module, select_token(module, std::nullopt));
  KeyPair pair = generate_key_pair(session, {parse_key_type("ec:p256"), "batch", std::nullopt, false});
  const CK_ATTRIBUTE_TYPE types[] = {CKA_LABEL, CKA_VALUE, CKA_MODULUS, CKA_ID, CKA_SIGN};
  const std::vector<Attribute> read = session.attributes(pair.private_key, types);
  REQUIRE(read.size() == 5);
  CHECK(read[0].as_string() == "batch");
  CHECK(read[1].sensitive());                           // the EC private value
  CHECK(read[2].state == Attribute::State::absent);     // not an RSA key
  CHECK(read[3].value == pair.id);
  CHECK(read[4].as_bool());
  for (std::size_t i = 0; i < 5; ++i) {
    CAPTURE(i);
    const Attribute single = session.attribute(pair.private_key, types[i]);
    CHECK(static_cast<int>(single.state) == static_cast<int>(read[i].state));
    CHECK(single.value == read[i].value);
  }
  // An empty label reads as present and empty, not as missing.
  AttributeTemplate unlabelled;
  unlabelled.object_class(CKO_DATA).token(false).label("");
  const ObjectHandle object = session.create(unlabelled);
  const CK_ATTRIBUTE_TYPE label_only[] = {CKA_LABEL};
  const std::vector<Attribute> empty = session.attributes(object, label_only);
  CHECK(empty.front().present());
  CHECK(empty.front().value.empty());
}

TEST_CASE("attribute reads: one C_GetAttributeValue when the values fit the first guess, exact when longer") {
  SoftHsm hsm;
  hsm.add_token("reads");
  const std::string counts = (hsm.dir() / "calls").string();
  ScopedEnv count_calls("QSCD_SHIM_COUNT_FILE", counts);
  Module module(shim_path());
  Session session = logged_in(module, select_token(module, std::nullopt));
  auto reads = [&] { return count_lines(qscd::test::slurp(counts), "C_GetAttributeValue"); };
  // 1024 and 4096 bytes are the first guesses (CKA_VALUE the larger): one value exactly as long,
  // one longer.
  const Bytes full_guess(1024, 0xa5);
  const Bytes over_guess(5000, 0x5a);
  const Bytes full_value_guess(4096, 0x3c);
  AttributeTemplate data;
  data.object_class(CKO_DATA).token(false).label("reads").add_bytes(CKA_APPLICATION, full_guess).value(over_guess);
  const ObjectHandle object = session.create(data);
  AttributeTemplate exact;
  exact.object_class(CKO_DATA).token(false).value(full_value_guess);
  const ObjectHandle exact_object = session.create(exact);

  SUBCASE("present values that fit: one call for one, one call for several") {
    int before = reads();
    CHECK(session.attribute(object, CKA_LABEL).as_string() == "reads");
    CHECK(session.attribute(object, CKA_APPLICATION).value == full_guess);
    CHECK(session.attribute(exact_object, CKA_VALUE).value == full_value_guess);
    CHECK(reads() - before == 3);
    before = reads();
    const CK_ATTRIBUTE_TYPE types[] = {CKA_CLASS, CKA_TOKEN, CKA_LABEL, CKA_APPLICATION};
    const std::vector<Attribute> read = session.attributes(object, types);
    CHECK(reads() - before == 1);
    CHECK(read[0].as_ulong() == CKO_DATA);
    CHECK_FALSE(read[1].as_bool());
    CHECK(read[2].as_string() == "reads");
    CHECK(read[3].value == full_guess);
  }
  SUBCASE("a value longer than the guess is read by its size, alone and among others") {
    int before = reads();
    CHECK(session.attribute(object, CKA_VALUE).value == over_guess);
    CHECK(reads() - before == 3);  // the guess, the size, the value
    const CK_ATTRIBUTE_TYPE types[] = {CKA_LABEL, CKA_VALUE, CKA_APPLICATION, CKA_MODULUS, CKA_TOKEN};
    before = reads();
    const std::vector<Attribute> read = session.attributes(object, types);
    // The batch, CKA_VALUE by its size (3), and alone: CKA_MODULUS (absent or sensitive?) and
    // CKA_APPLICATION, whose length equals its buffer after an error (read, or left untouched?).
    CHECK(reads() - before == 6);
    CHECK(read[0].as_string() == "reads");
    CHECK(read[1].value == over_guess);
    CHECK(read[2].value == full_guess);  // as long as its buffer, after an error: read again alone
    CHECK(read[3].state == Attribute::State::absent);
    CHECK_FALSE(read[4].as_bool());
  }
  SUBCASE("an absent attribute costs one more call, to tell absent from sensitive") {
    const int before = reads();
    const CK_ATTRIBUTE_TYPE types[] = {CKA_LABEL, CKA_MODULUS};
    const std::vector<Attribute> read = session.attributes(object, types);
    CHECK(reads() - before == 2);
    CHECK(read[0].as_string() == "reads");
    CHECK(read[1].state == Attribute::State::absent);
  }
  SUBCASE("a signature is one C_Sign") {
    KeyPair pair = generate_key_pair(session, {parse_key_type("ec:p256"), "signer", std::nullopt, false});
    const unsigned char digest[32] = {1};
    const int before = count_lines(qscd::test::slurp(counts), "C_Sign");
    CHECK(sign(session, pair.private_key, CKM_ECDSA, digest).size() == 64);
    CHECK(count_lines(qscd::test::slurp(counts), "C_Sign") - before == 1);
  }
}

TEST_CASE("objects: create, find, set, destroy") {
  SoftHsm hsm;
  hsm.add_token("objects");
  Module module(softhsm_module);
  Session session = logged_in(module, select_token(module, std::nullopt));
  const unsigned char payload[] = {1, 2, 3};
  AttributeTemplate data;
  data.object_class(CKO_DATA).token(true).private_(false).label("note").value(payload);
  ObjectHandle object = session.create(data);
  AttributeTemplate query;
  query.object_class(CKO_DATA).label("note");
  CHECK(session.find(query) == std::vector<ObjectHandle>{object});
  AttributeTemplate relabel;
  relabel.label("renamed");
  session.set_attributes(object, relabel);
  CHECK(session.attribute(object, CKA_LABEL).as_string() == "renamed");
  // holds: every attribute of the template, with exactly its value.
  AttributeTemplate same;
  same.object_class(CKO_DATA).token(true).label("renamed").value(payload);
  CHECK(session.holds(object, same));
  AttributeTemplate old_label;
  old_label.label("note");
  CHECK_FALSE(session.holds(object, old_label));
  AttributeTemplate shorter;
  shorter.value(std::span<const unsigned char>(payload, 2));
  CHECK_FALSE(session.holds(object, shorter));
  const unsigned char longer[] = {1, 2, 3, 4};
  AttributeTemplate longer_value;
  longer_value.value(longer);
  CHECK_FALSE(session.holds(object, longer_value));
  AttributeTemplate other_class;
  other_class.object_class(CKO_CERTIFICATE);
  CHECK_FALSE(session.holds(object, other_class));
  AttributeTemplate not_there;
  not_there.add_bytes(CKA_MODULUS, payload);
  CHECK_FALSE(session.holds(object, not_there));
  CHECK(session.bytes(object, CKA_VALUE) == Bytes{1, 2, 3});
  CHECK(session.attribute(object, CKA_MODULUS).state == Attribute::State::absent);
  session.destroy(object);
  CHECK(session.find(AttributeTemplate{}).empty());
}

TEST_CASE("create_on_token: a session object copied onto the token; refusals fall back, failures throw") {
  SoftHsm hsm;
  hsm.add_token("copies");
  const std::string counts = (hsm.dir() / "calls").string();
  ScopedEnv count_calls("QSCD_SHIM_COUNT_FILE", counts);
  const unsigned char payload[] = {7, 8, 9};
  auto make = [&](Session& session) {
    AttributeTemplate data;
    data.object_class(CKO_DATA).token(true).private_(false).label("staged").value(payload);
    ObjectHandle object = session.create_on_token(data);
    auto token_flag = std::find_if(data.attributes().begin(), data.attributes().end(),
                                   [](const CK_ATTRIBUTE& a) { return a.type == CKA_TOKEN; });
    REQUIRE(token_flag != data.attributes().end());
    CHECK(*static_cast<const CK_BBOOL*>(token_flag->pValue) == CK_TRUE);
    return object;
  };
  // After the writing session: exactly one object, on the token, with the template's values.
  auto check_on_token = [&](const Module& module) {
    Session reader(module, select_token(module, std::nullopt).slot, Session::Access::read_only);
    std::vector<ObjectHandle> all = reader.find(AttributeTemplate{});
    REQUIRE(all.size() == 1);
    CHECK(reader.flag(all[0], CKA_TOKEN) == true);
    CHECK(reader.attribute(all[0], CKA_LABEL).as_string() == "staged");
    CHECK(reader.bytes(all[0], CKA_VALUE) == Bytes{7, 8, 9});
  };
  // Inside the writing session, where a leftover session object would still be seen.
  auto no_session_objects = [](const Session& session) {
    AttributeTemplate session_objects;
    session_objects.token(false);
    CHECK(session.find(session_objects).empty());
  };
  auto calls = [&](const char* name) { return count_lines(qscd::test::slurp(counts), name); };

  // One write with the shim set as `variable`=`value` says (nothing when null); then the token
  // holds the one object and the module saw that many C_CreateObject, C_CopyObject, C_DestroyObject.
  struct Calls {
    int create, copy, destroy;
  };
  auto write_under = [&](const char* variable, const char* value, Calls expected) {
    std::optional<ScopedEnv> shim_setting;
    if (variable != nullptr) shim_setting.emplace(variable, value);
    Module module(shim_path());
    {
      Session session = logged_in(module, select_token(module, std::nullopt));
      make(session);
      no_session_objects(session);
    }
    check_on_token(module);
    CHECK(calls("C_CreateObject") == expected.create);
    CHECK(calls("C_CopyObject") == expected.copy);
    CHECK(calls("C_DestroyObject") == expected.destroy);
  };

  SUBCASE("SoftHSM2 copies: one C_CopyObject, the session object destroyed") { write_under(nullptr, "", {1, 1, 1}); }
  SUBCASE("a module without C_CopyObject (NULL in its list) gets C_CreateObject, nothing staged") {
    write_under("QSCD_SHIM_ABSENT", "C_CopyObject", {1, 0, 0});
  }
  SUBCASE("a copy refused with CKR_FUNCTION_NOT_SUPPORTED: C_CreateObject of the token object") {
    write_under("QSCD_SHIM_FAIL", "C_CopyObject:CKR_FUNCTION_NOT_SUPPORTED", {2, 1, 1});
  }
  SUBCASE("a copy that stays a session object does not hold the template: destroyed, C_CreateObject") {
    write_under("QSCD_SHIM_SET_TOKEN", "C_CopyObject:false", {2, 1, 2});
  }
  SUBCASE("a module that puts the staged object on the token anyway: kept, not copied") {
    write_under("QSCD_SHIM_SET_TOKEN", "C_CreateObject:true", {1, 0, 0});
  }
  SUBCASE("a module that refuses the session object gets C_CreateObject too (which it then also refuses)") {
    Module module(shim_path());
    ScopedEnv refuse("QSCD_SHIM_FAIL", "C_CreateObject:CKR_TEMPLATE_INCONSISTENT");
    Session session = logged_in(module, select_token(module, std::nullopt));
    CHECK_THROWS_WITH_AS(make(session), doctest::Contains("C_CreateObject failed with CKR_TEMPLATE_INCONSISTENT"),
                         CallError);
    CHECK(calls("C_CreateObject") == 2);
    CHECK(calls("C_CopyObject") == 0);
  }
  SUBCASE("a removed token, or a failed write, is a failure, not a refusal: it throws, no second write") {
    const char* failure = "C_CopyObject:CKR_DEVICE_REMOVED";
    SUBCASE("CKR_DEVICE_REMOVED") {}
    SUBCASE("CKR_FUNCTION_FAILED") { failure = "C_CopyObject:CKR_FUNCTION_FAILED"; }
    Module module(shim_path());
    ScopedEnv fail("QSCD_SHIM_FAIL", failure);
    Session session = logged_in(module, select_token(module, std::nullopt));
    CHECK_THROWS_WITH_AS(make(session), doctest::Contains("C_CopyObject failed with"), CallError);
    CHECK(session.find(AttributeTemplate{}).empty());
    CHECK(calls("C_CreateObject") == 1);
  }
}

TEST_CASE("URI selection: token label, serial, slot; key id and object label; missing and ambiguous") {
  SoftHsm hsm;
  hsm.add_token("alpha");
  hsm.add_token("beta");
  Module module(softhsm_module);
  TokenInfo alpha = select_token(module, "pkcs11:token=alpha");
  CHECK(alpha.label == "alpha");
  CHECK(select_token(module, "pkcs11:serial=" + alpha.serial).slot == alpha.slot);
  CHECK(select_token(module, "pkcs11:slot-id=" + std::to_string(alpha.slot)).label == "alpha");
  CHECK(select_token(module, token_uri(alpha)).slot == alpha.slot);
  CHECK_THROWS_WITH_AS(select_token(module, "pkcs11:token=gamma"), "no token matches pkcs11:token=gamma", NotFound);
  CHECK_THROWS_WITH_AS(select_token(module, std::nullopt), doctest::Contains("2 tokens are present; name one with --token"),
                       Ambiguous);
  try {
    (void)select_token(module, "pkcs11:model=SoftHSM%20v2");
    FAIL("expected Ambiguous");
  } catch (const Ambiguous& e) {
    CHECK(e.candidates().size() == 2);
    CHECK(std::string(e.what()).find("token=alpha") != std::string::npos);
    CHECK(std::string(e.what()).find("token=beta") != std::string::npos);
  }
  // The blank slot SoftHSM2 always offers is what `token init` picks by default.
  CHECK_FALSE(select_token(module, std::nullopt, TokenScope::uninitialized).initialized);

  Session session = logged_in(module, alpha);
  generate_key_pair(session, {parse_key_type("ec:p256"), "seal", parse_hex_id("01"), false});
  KeyPair other = generate_key_pair(session, {parse_key_type("ec:p256"), "seal", parse_hex_id("02"), false});
  generate_key_pair(session, {parse_key_type("ec:p256"), "tls", parse_hex_id("03"), false});
  CHECK(select_object(session, Uri::parse("pkcs11:token=alpha;id=%02"), CKO_PRIVATE_KEY) == other.private_key);
  CHECK(select_object(session, Uri::parse("pkcs11:object=seal;id=%02"), CKO_PUBLIC_KEY) == other.public_key);
  CHECK(describe_key(session, select_object(session, Uri::parse("pkcs11:object=tls"), CKO_PRIVATE_KEY)).id ==
        Bytes{0x03});
  CHECK_THROWS_WITH_AS(select_object(session, Uri::parse("pkcs11:id=%09"), CKO_PRIVATE_KEY),
                       "no private key on token 'alpha' matches pkcs11:id=%09", NotFound);
  CHECK_THROWS_WITH_AS(select_object(session, Uri::parse("pkcs11:object=seal"), CKO_PRIVATE_KEY),
                       doctest::Contains("matches 2 private keys"), Ambiguous);
  CHECK(select_object(session, Uri::parse("pkcs11:id=%03;type=private"), CKO_PRIVATE_KEY) != CK_INVALID_HANDLE);
  CHECK_THROWS_WITH_AS(select_object(session, Uri::parse("pkcs11:id=%03;type=cert"), CKO_PRIVATE_KEY),
                       "pkcs11:id=%03;type=cert names a certificate, but a private key is needed here", InvalidArgument);
}

TEST_CASE("login: a wrong PIN is sent once and reported with the PIN state read afterwards") {
  SoftHsm hsm;
  hsm.add_token("pin");
  std::string counts = (hsm.dir() / "calls").string();
  ::setenv("QSCD_SHIM_COUNT_FILE", counts.c_str(), 1);
  {
    Module module(shim_path());
    Session session(module, select_token(module, std::nullopt).slot, Session::Access::read_only);
    CHECK_THROWS_WITH_AS(login(session, CKU_USER, pin("000000")),
                         doctest::Contains("user PIN is wrong; PIN state now: count low. The PIN was not retried"), PinError);
    CHECK_FALSE(session.logged_in().has_value());
  }
  ::unsetenv("QSCD_SHIM_COUNT_FILE");
  CHECK(count_lines(qscd::test::slurp(counts), "C_Login") == 1);
}

TEST_CASE("login: locked and final-try PINs are refused without any C_Login") {
  SoftHsm hsm;
  hsm.add_token("locked");
  std::string counts = (hsm.dir() / "calls").string();
  ::setenv("QSCD_SHIM_COUNT_FILE", counts.c_str(), 1);
  {
    Module module(shim_path());
    CK_SLOT_ID slot = select_token(module, std::nullopt).slot;
    Session session(module, slot, Session::Access::read_only);
    ::setenv("QSCD_SHIM_TOKEN_FLAGS_OR", "CKF_USER_PIN_LOCKED", 1);
    CHECK_THROWS_WITH_AS(login(session, CKU_USER, pin("123456")), doctest::Contains("user PIN is locked"), PinError);
    ::setenv("QSCD_SHIM_TOKEN_FLAGS_OR", "CKF_USER_PIN_FINAL_TRY|CKF_USER_PIN_COUNT_LOW", 1);
    CHECK_THROWS_WITH_AS(login(session, CKU_USER, pin("123456")), doctest::Contains("final try"), PinError);
    ::setenv("QSCD_SHIM_TOKEN_FLAGS_OR", "CKF_USER_PIN_TO_BE_CHANGED", 1);
    CHECK_THROWS_WITH_AS(login(session, CKU_USER, pin("123456")), doctest::Contains("token change-pin"), PinError);
    CHECK(count_lines(qscd::test::slurp(counts), "C_Login") == 0);
    ::setenv("QSCD_SHIM_TOKEN_FLAGS_OR", "CKF_USER_PIN_FINAL_TRY", 1);
    login(session, CKU_USER, pin("123456"), {.allow_final_try = true});
    CHECK(session.logged_in() == CKU_USER);
    ::unsetenv("QSCD_SHIM_TOKEN_FLAGS_OR");
  }
  ::unsetenv("QSCD_SHIM_COUNT_FILE");
  CHECK(count_lines(qscd::test::slurp(counts), "C_Login") == 1);
  // The slot's last session closed: that ends the login (PKCS#11 C_CloseSession), no C_Logout.
  CHECK(count_lines(qscd::test::slurp(counts), "C_Logout") == 0);
}

TEST_CASE("closing a logged-in session logs out only while the slot has other sessions: the last one's close ends the login") {
  SoftHsm hsm;
  hsm.add_token("logout");
  std::string counts = (hsm.dir() / "calls").string();
  ScopedEnv count_calls("QSCD_SHIM_COUNT_FILE", counts);
  Module module(shim_path());
  const TokenInfo token = select_token(module, std::nullopt);
  auto state_of_a_new_session = [&] {
    Session probe(module, token, Session::Access::read_only);
    CK_SESSION_INFO info{};
    REQUIRE(module.functions()->C_GetSessionInfo(probe.handle(), &info) == CKR_OK);
    return info.state;
  };
  {
    Session other(module, token, Session::Access::read_only);
    {
      Session session(module, token, Session::Access::read_only);
      login(session, CKU_USER, pin("123456"));
    }
    CHECK(count_lines(qscd::test::slurp(counts), "C_Logout") == 1);  // `other` is still open
  }
  {
    Session session(module, token, Session::Access::read_only);
    login(session, CKU_USER, pin("123456"));
  }
  CHECK(count_lines(qscd::test::slurp(counts), "C_Logout") == 1);
  CHECK(state_of_a_new_session() == CKS_RO_PUBLIC_SESSION);
}

TEST_CASE("the shim fails a chosen function; the funnel names it, the slot and the token") {
  SoftHsm hsm;
  hsm.add_token("faulty");
  Module module(shim_path());
  Session session = logged_in(module, select_token(module, std::nullopt));
  KeyPair pair = generate_key_pair(session, {parse_key_type("ec:p256"), "k", std::nullopt, false});
  ::setenv("QSCD_SHIM_FAIL", "C_Sign:CKR_DEVICE_REMOVED", 1);
  unsigned char digest[32] = {};
  CHECK_THROWS_WITH_AS(sign(session, pair.private_key, CKM_ECDSA, digest),
                       doctest::Contains("C_Sign failed with CKR_DEVICE_REMOVED (slot "), CallError);
  CHECK_THROWS_WITH_AS(sign(session, pair.private_key, CKM_ECDSA, digest), doctest::Contains("token 'faulty')"),
                       CallError);
  ::unsetenv("QSCD_SHIM_FAIL");
}

TEST_CASE("a failure after generation destroys the half-made pair") {
  SoftHsm hsm;
  hsm.add_token("cleanup");
  std::optional<ScopedEnv> no_copy;
  const char* failure = nullptr;
  const char* expected = nullptr;
  SUBCASE("generated on the token: setting the final id fails") {
    no_copy.emplace("QSCD_SHIM_ABSENT", "C_CopyObject");
    failure = "C_SetAttributeValue:CKR_DEVICE_ERROR";
    expected = "C_SetAttributeValue failed with CKR_DEVICE_ERROR";
  }
  SUBCASE("generated as session objects: the private half's copy fails after the public one's") {
    failure = "C_CopyObject@2:CKR_DEVICE_ERROR";
    expected = "C_CopyObject failed with CKR_DEVICE_ERROR";
  }
  Module module(shim_path());
  Session session = logged_in(module, select_token(module, std::nullopt));
  {
    ScopedEnv fail("QSCD_SHIM_FAIL", failure);
    CHECK_THROWS_WITH_AS(generate_key_pair(session, {parse_key_type("ec:p256"), "orphan", std::nullopt, false}),
                         doctest::Contains(expected), CallError);
  }
  CHECK(session.find(AttributeTemplate{}).empty());
}

TEST_CASE("generate_key_pair: a session pair copied onto the token, public half first; refusals fall back") {
  SoftHsm hsm;
  hsm.add_token("pairs");
  const std::string counts = (hsm.dir() / "calls").string();
  ScopedEnv count_calls("QSCD_SHIM_COUNT_FILE", counts);
  auto calls = [&](const char* name) { return count_lines(qscd::test::slurp(counts), name); };
  std::optional<Bytes> id;
  SUBCASE("default id (SHA-1 of the point)") {}
  SUBCASE("given id") { id = Bytes{0x42}; }

  // One generation with the shim set as `variable`=`value` says (nothing when null); then the token
  // holds one pair, as a key generated there would be, and the module saw that many
  // C_GenerateKeyPair and C_CopyObject calls.
  auto generate_under = [&](const char* variable, const char* value, int generations, int copies) {
    std::optional<ScopedEnv> shim_setting;
    if (variable != nullptr) shim_setting.emplace(variable, value);
    Module module(shim_path());
    Session session = logged_in(module, select_token(module, std::nullopt));
    const KeyPair pair = generate_key_pair(session, {parse_key_type("ec:p256"), "pair", id, false});
    if (id) CHECK(pair.id == *id);
    AttributeTemplate session_objects;
    session_objects.token(false);
    CHECK(session.find(session_objects).empty());
    const std::vector<ObjectHandle> all = session.find(AttributeTemplate{});
    REQUIRE(all.size() == 2);
    for (ObjectHandle object : all) {
      CHECK(session.flag(object, CKA_TOKEN) == true);
      CHECK(session.bytes(object, CKA_ID) == pair.id);
      CHECK(session.attribute(object, CKA_LABEL).as_string() == "pair");
      CHECK(session.flag(object, CKA_LOCAL) == true);
      CHECK(session.ulong(object, CKA_KEY_GEN_MECHANISM) == CKM_EC_KEY_PAIR_GEN);
    }
    CHECK(session.flag(pair.private_key, CKA_ALWAYS_SENSITIVE) == true);
    CHECK(session.flag(pair.private_key, CKA_NEVER_EXTRACTABLE) == true);
    CHECK(session.flag(pair.private_key, CKA_EXTRACTABLE) == false);
    CHECK(find_public_key(session, pair.private_key) == pair.public_key);
    if (!id) {
      EvpPkeyPtr key = public_key(session, pair.public_key);
      unsigned char* encoded = nullptr;
      const std::size_t size = EVP_PKEY_get1_encoded_public_key(key.get(), &encoded);
      Bytes digest(SHA_DIGEST_LENGTH);
      SHA1(encoded, size, digest.data());
      OPENSSL_free(encoded);
      CHECK(pair.id == digest);
    }
    unsigned char message[32] = {};
    CHECK(sign(session, pair.private_key, CKM_ECDSA, message).size() == 64);
    CHECK(calls("C_GenerateKeyPair") == generations);
    CHECK(calls("C_CopyObject") == copies);
  };

  struct Case {
    const char* name;
    const char* variable;  // the shim setting, none when null
    const char* value;
    int generations, copies;
  };
  const Case cases[] = {
      {"SoftHSM2 copies both halves", nullptr, "", 1, 2},
      {"a hardware slot: generated on the token, never copied", "QSCD_SHIM_SLOT_FLAGS_OR", "CKF_HW_SLOT", 1, 0},
      {"a module without C_CopyObject: generated on the token", "QSCD_SHIM_ABSENT", "C_CopyObject", 1, 0},
      {"session keys refused: generated on the token", "QSCD_SHIM_FAIL", "C_GenerateKeyPair@1:CKR_TEMPLATE_INCONSISTENT", 2, 0},
      {"the public half's copy refused: generated on the token", "QSCD_SHIM_FAIL", "C_CopyObject@1:CKR_FUNCTION_NOT_SUPPORTED", 2, 1},
      {"the private half's copy refused: the public copy destroyed, generated on the token", "QSCD_SHIM_FAIL",
       "C_CopyObject@2:CKR_ACTION_PROHIBITED", 2, 2},
      {"a copy that stays a session object is not the key: destroyed, generated on the token", "QSCD_SHIM_SET_TOKEN",
       "C_CopyObject:false", 2, 1},
      {"a module that makes token keys whatever CKA_TOKEN says: kept, not copied", "QSCD_SHIM_SET_TOKEN",
       "C_GenerateKeyPair:true", 1, 0},
  };
  for (const Case& c : cases) {
    SUBCASE(c.name) { generate_under(c.variable, c.value, c.generations, c.copies); }
  }
}

TEST_CASE("token admin: init a blank token, change both PINs, unblock") {
  SoftHsm hsm;
  Module module(softhsm_module);
  TokenInfo blank = select_token(module, std::nullopt, TokenScope::uninitialized);
  CHECK(count_public_objects(module, blank.slot) == 0);
  init_token(module, blank.slot, pin("so-secret"), "fresh", pin("1111"));
  TokenInfo fresh = select_token(module, "pkcs11:token=fresh");
  CHECK(fresh.user_pin_initialized);
  {
    Session session(module, fresh.slot, Session::Access::read_write);
    change_pin(session, CKU_USER, pin("1111"), pin("2222"));
  }
  {
    Session session(module, fresh.slot, Session::Access::read_write);
    CHECK_THROWS_AS(login(session, CKU_USER, pin("1111")), PinError);
    login(session, CKU_USER, pin("2222"));
  }
  {
    Session session(module, fresh.slot, Session::Access::read_write);
    change_pin(session, CKU_SO, pin("so-secret"), pin("so-other"));
  }
  {
    Session session(module, fresh.slot, Session::Access::read_write);
    unblock_user_pin(session, pin("so-other"), pin("3333"));
  }
  Session session = logged_in(module, fresh, "3333");
  CHECK(session.logged_in() == CKU_USER);
  CHECK_THROWS_WITH_AS(init_token(module, fresh.slot, pin("so-other"), std::string(33, 'x'), pin("1")),
                       doctest::Contains("1 to 32 bytes"), InvalidArgument);
}

TEST_CASE("a login that was already there (CKR_USER_ALREADY_LOGGED_IN) is not logged out when its session closes") {
  SoftHsm hsm;
  hsm.add_token("shared");
  Module module(softhsm_module);
  TokenInfo token = select_token(module, std::nullopt);
  Session first = logged_in(module, token);
  KeyGenRequest request;
  request.type = parse_key_type("ec:p256");
  request.label = "shared";
  request.id = parse_hex_id("01");
  generate_key_pair(first, request);
  AttributeTemplate private_keys;
  private_keys.object_class(CKO_PRIVATE_KEY);
  REQUIRE(first.find(private_keys).size() == 1);
  {
    Session second = logged_in(module, token);  // C_Login answers CKR_USER_ALREADY_LOGGED_IN
    CHECK(second.logged_in() == CKU_USER);
  }
  // The login belongs to `first`; `second` closing must not have logged the application out.
  CHECK(first.find(private_keys).size() == 1);
}
