// The pure parts of the token layer: no module, no token.
#include <doctest/doctest.h>
#include <openssl/obj_mac.h>

#include <cstring>

#include "qscd/pkcs11/attributes.hpp"
#include "qscd/pkcs11/error.hpp"
#include "qscd/pkcs11/keys.hpp"
#include "qscd/pkcs11/login.hpp"
#include "qscd/pkcs11/token.hpp"
#include "qscd/pkcs11/uri.hpp"

using namespace qscd::p11;

TEST_CASE("key types: the five accepted, everything else refused with the reason") {
  CHECK(parse_key_type("rsa:2048").rsa_bits == 2048);
  CHECK(parse_key_type("rsa:4096").name() == "rsa:4096");
  CHECK(parse_key_type("ec:p256").curve_nid == NID_X9_62_prime256v1);
  CHECK(parse_key_type("ec:p384").curve_nid == NID_secp384r1);
  CHECK_THROWS_WITH_AS(parse_key_type("rsa:1024"), doctest::Contains("2048, 3072 or 4096"), InvalidArgument);
  CHECK_THROWS_WITH_AS(parse_key_type("ec:p521"), doctest::Contains("p256 and p384"), InvalidArgument);
  CHECK_THROWS_WITH_AS(parse_key_type("dsa:2048"), doctest::Contains("is not a key type"), InvalidArgument);
  CHECK_THROWS_AS(parse_key_type("rsa"), InvalidArgument);
}

TEST_CASE("hex ids") {
  CHECK(parse_hex_id("0aFF") == Bytes{0x0a, 0xff});
  CHECK(parse_hex_id("01:02") == Bytes{0x01, 0x02});
  CHECK(to_hex(Bytes{0x00, 0xab}) == "00ab");
  CHECK_THROWS_WITH_AS(parse_hex_id("xyz"), doctest::Contains("not hexadecimal"), InvalidArgument);
  CHECK_THROWS_WITH_AS(parse_hex_id("abc"), doctest::Contains("even number"), InvalidArgument);
  CHECK_THROWS_AS(parse_hex_id(""), InvalidArgument);
}

TEST_CASE("attribute templates keep their values at stable addresses and replace duplicates") {
  AttributeTemplate t;
  t.token(true).label("first");
  const CK_ATTRIBUTE* label_before = nullptr;
  for (const auto& a : t.attributes()) if (a.type == CKA_LABEL) label_before = &a;
  REQUIRE(label_before != nullptr);
  const void* value_before = label_before->pValue;
  for (int i = 0; i < 100; ++i) t.add_ulong(0x80000000UL + static_cast<CK_ULONG>(i), static_cast<CK_ULONG>(i));
  t.label("second");
  CHECK(t.size() == 102);
  int labels = 0;
  for (const auto& a : t.attributes()) {
    if (a.type == CKA_LABEL) {
      ++labels;
      CHECK(std::string(static_cast<const char*>(a.pValue), a.ulValueLen) == "second");
    }
    if (a.type == CKA_TOKEN) CHECK(*static_cast<const CK_BBOOL*>(a.pValue) == CK_TRUE);
  }
  CHECK(labels == 1);
  CHECK(std::memcmp(value_before, "first", 5) == 0);  // the old value is still alive, unused
}

TEST_CASE("attribute values: sensitive and absent are answers, typed views check size") {
  Attribute sensitive{Attribute::State::sensitive, {}};
  CHECK(sensitive.sensitive());
  CHECK_THROWS_WITH_AS((void)sensitive.as_bool(), "attribute is sensitive", Error);
  Attribute flag{Attribute::State::present, {CK_TRUE}};
  CHECK(flag.as_bool());
  CHECK_THROWS_AS((void)flag.as_ulong(), Error);
}

TEST_CASE("PIN states from token flags") {
  CHECK(user_pin_state(0).describe() == "ok");
  CHECK(user_pin_state(CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY).describe() == "final try, count low");
  CHECK(user_pin_state(CKF_SO_PIN_LOCKED).ok());
  CHECK(so_pin_state(CKF_SO_PIN_LOCKED).locked);
  CHECK(user_pin_state(CKF_USER_PIN_TO_BE_CHANGED).describe() == "to be changed");
}

TEST_CASE("anti-lockout rules of check_pin_flags") {
  TokenInfo token;
  token.label = "t";
  token.user_pin_initialized = true;
  CHECK_NOTHROW(check_pin_flags(token, CKU_USER, {}));

  token.user = user_pin_state(CKF_USER_PIN_LOCKED);
  CHECK_THROWS_WITH_AS(check_pin_flags(token, CKU_USER, {true, true}), doctest::Contains("is locked"), PinError);

  token.user = user_pin_state(CKF_USER_PIN_FINAL_TRY);
  CHECK_THROWS_WITH_AS(check_pin_flags(token, CKU_USER, {}), doctest::Contains("--allow-final-try"), PinError);
  CHECK_NOTHROW(check_pin_flags(token, CKU_USER, {.allow_final_try = true}));
  CHECK_NOTHROW(check_pin_flags(token, CKU_SO, {}));  // the SO PIN has its own flags

  token.user = user_pin_state(CKF_USER_PIN_TO_BE_CHANGED);
  CHECK_THROWS_WITH_AS(check_pin_flags(token, CKU_USER, {}), doctest::Contains("token change-pin"), PinError);
  CHECK_NOTHROW(check_pin_flags(token, CKU_USER, {.allow_to_be_changed = true}));

  token.user = {};
  token.user_pin_initialized = false;
  CHECK_THROWS_WITH_AS(check_pin_flags(token, CKU_USER, {}), doctest::Contains("never set"), PinError);

  token.so = so_pin_state(CKF_SO_PIN_LOCKED);
  CHECK_THROWS_WITH_AS(check_pin_flags(token, CKU_SO, {}), doctest::Contains("SO PIN is locked"), PinError);
}

TEST_CASE("URIs are parsed by p11-kit; bad ones refused naming the text") {
  CHECK_THROWS_WITH_AS(Uri::parse("https://example"), doctest::Contains("'https://example' is not a PKCS#11 URI"),
                       InvalidArgument);
  CHECK_THROWS_WITH_AS(Uri::parse("pkcs11:tokn=x"), doctest::Contains("does not know"), InvalidArgument);
  Uri uri = Uri::parse("pkcs11:token=qscd1;id=%01%02;object=seal");
  CHECK(uri.names_object());
  AttributeTemplate query = uri.object_template();
  CHECK(query.size() == 2);

  TokenInfo token;
  token.slot = 7;
  std::memset(&token.raw, ' ', sizeof token.raw);
  std::memcpy(token.raw.label, "qscd1", 5);
  CHECK(uri.matches(token));
  CHECK_FALSE(Uri::parse("pkcs11:token=qscd2").matches(token));
  CHECK(Uri::parse("pkcs11:slot-id=7").matches(token));
  CHECK_FALSE(Uri::parse("pkcs11:slot-id=8").matches(token));
}

TEST_CASE("URIs with a PIN inside are refused without repeating the PIN") {
  for (const char* text : {"pkcs11:token=qscd1?pin-value=8264193", "pkcs11:token=qscd1;id=%01?pin-source=file:/8264193",
                           "pkcs11:token=qscd1?pin-value=8264193&bogus%zz"}) {
    CAPTURE(text);
    try {
      (void)Uri::parse(text);
      FAIL("accepted");
    } catch (const InvalidArgument& e) {
      CHECK(std::string(e.what()).find("8264193") == std::string::npos);
      CHECK(std::string(e.what()).find("qscd1") == std::string::npos);
    }
  }
  CHECK_THROWS_WITH_AS(Uri::parse("pkcs11:token=qscd1?pin-value=8264193"),
                       "PINs are not accepted inside a PKCS#11 URI; use --pin-source", InvalidArgument);
}

TEST_CASE("URIs with library-* or slot-description/slot-manufacturer parts are refused naming them") {
  CHECK_THROWS_WITH_AS(Uri::parse("pkcs11:library-description=SoftHSM;token=qscd1"),
                       doctest::Contains("has library-description, which this agent does not match"), InvalidArgument);
  CHECK_THROWS_WITH_AS(Uri::parse("pkcs11:library-manufacturer=x;library-version=2.6"),
                       doctest::Contains("has library-manufacturer, library-version,"), InvalidArgument);
  CHECK_THROWS_WITH_AS(Uri::parse("pkcs11:slot-description=a;slot-manufacturer=b"),
                       doctest::Contains("has slot-description, slot-manufacturer,"), InvalidArgument);
  CHECK(Uri::parse("pkcs11:slot-id=3;token=qscd1").text() == "pkcs11:slot-id=3;token=qscd1");
}

TEST_CASE("object URIs are percent-encoded by p11-kit") {
  TokenInfo token;
  std::memset(&token.raw, ' ', sizeof token.raw);
  std::memcpy(token.raw.label, "my token", 8);
  std::memcpy(token.raw.serialNumber, "abc", 3);
  std::string uri = object_uri(token, Bytes{0x01, 0xab}, "seal key");
  CHECK(uri.find("token=my%20token") != std::string::npos);
  CHECK(uri.find("id=%01%AB") != std::string::npos);
  CHECK(uri.find("object=seal%20key") != std::string::npos);
  CHECK(uri.find("serial=abc") != std::string::npos);
  // And it parses back to something matching the same token.
  TokenInfo again = token;
  CHECK(Uri::parse(uri).matches(again));
}

TEST_CASE("return value names both ways") {
  CHECK(rv_name(CKR_PIN_INCORRECT) == "CKR_PIN_INCORRECT");
  CHECK(rv_from_name("CKR_DEVICE_REMOVED") == CKR_DEVICE_REMOVED);
  CHECK(rv_from_name("0x32") == CKR_DEVICE_REMOVED);
  CHECK_FALSE(rv_from_name("CKR_NONSENSE").has_value());
}
