#include <doctest/doctest.h>

#include <openssl/ecdsa.h>

#include "cli/exit_code.hpp"
#include "csr/builder.hpp"
#include "csr_test_support.hpp"
#include "base/errors.hpp"

using namespace qscd::agent::csr;
namespace ossl = qscd::agent::ossl;
using csr_test::quote;

namespace {

ossl::EvpPkeyPtr generate(const std::string& type) {
  if (type.starts_with("rsa:")) {
    return ossl::EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(std::stoul(type.substr(4)))));
  }
  return ossl::EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", type.substr(3).c_str()));
}

const Subject eseal{{"C", "NL"},
                    {"O", "Stichting Voorbeeld Zegel"},
                    {"organizationIdentifier", "NTRNL-99999991"},
                    {"CN", "Voorbeeld Zegel"},
                    {"serialNumber", "00000099999999910000"}};

// Gives back whatever it is told to: a signature of the wrong data.
class WrongSigner final : public Signer {
 public:
  explicit WrongSigner(ossl::EvpPkeyPtr key) : inner_(std::move(key)) {}
  [[nodiscard]] const EVP_PKEY* public_key() const override { return inner_.public_key(); }
  std::vector<unsigned char> sign(SignatureScheme scheme, std::span<const unsigned char>) override {
    const unsigned char other[] = "something else";
    return inner_.sign(scheme, other);
  }

 private:
  SoftwareSigner inner_;
};

}  // namespace

TEST_CASE("CSRs from software keys verify with openssl req and show the subject OIDs in order") {
  struct Case {
    const char* key;
    bool pss;
    int signature_nid;
  };
  const Case cases[] = {
      {"rsa:2048", false, NID_sha256WithRSAEncryption}, {"rsa:3072", false, NID_sha256WithRSAEncryption},
      {"rsa:4096", false, NID_sha256WithRSAEncryption}, {"rsa:2048", true, NID_rsassaPss},
      {"ec:P-256", false, NID_ecdsa_with_SHA256},       {"ec:P-384", false, NID_ecdsa_with_SHA256},
  };
  csr_test::TempDir dir;
  for (const auto& c : cases) {
    CAPTURE(c.key);
    CAPTURE(c.pss);
    SoftwareSigner signer(generate(c.key));
    ossl::X509ReqPtr request = build_request(Profile::pkio_eseal, eseal, signer, c.pss);
    CHECK(X509_REQ_get_signature_nid(request.get()) == c.signature_nid);
    for (bool der : {false, true}) {
      const auto path = dir / (std::string(der ? "req.der" : "req.pem"));
      write_request(request.get(), path.string(), der);
      const auto verified = csr_test::run("openssl req -verify -noout -inform " + std::string(der ? "DER" : "PEM") +
                                          " -in " + quote(path));
      CHECK_MESSAGE(verified.exit == 0, verified.err);
    }
    const auto path = dir / "req.pem";
    CHECK(csr_test::subject_oids_by_asn1parse(path) ==
          std::vector<std::string>{"countryName", "organizationName", "organizationIdentifier", "commonName",
                                   "serialNumber"});
    if (c.pss) {
      const auto text = csr_test::run("openssl req -noout -text -in " + quote(path));
      CHECK(text.out.find("Hash Algorithm: sha256") != std::string::npos);
      CHECK(text.out.find("Mask Algorithm: mgf1 with sha256") != std::string::npos);
      CHECK(text.out.find("Salt Length: 0x20") != std::string::npos);
    }
  }
}

TEST_CASE("the request's subject DER is the golden one") {
  SoftwareSigner signer(generate("ec:P-256"));
  ossl::X509ReqPtr request = build_request(Profile::pkio_eseal, eseal, signer, false);
  unsigned char* der = nullptr;
  const int length = i2d_X509_NAME(X509_REQ_get_subject_name(request.get()), &der);
  REQUIRE(length > 0);
  const std::vector<unsigned char> subject(der, der + length);
  OPENSSL_free(der);
  CHECK(subject == csr_test::read_bytes(csr_test::data_dir() / "golden" / "pkio-eseal.subject.der"));
}

TEST_CASE("refusals come before signing: profile rules, key type, --rsa-pss on EC") {
  SoftwareSigner ec(generate("ec:P-256"));
  const Subject server{{"C", "NL"}, {"O", "Gemeente X"}, {"CN", "x.qvtl.nl"}, {"serialNumber", "00000003123456780000"}};
  CHECK_THROWS_WITH_AS(build_request(Profile::pkio_server, server, ec, false),
                       "breaks profile pkio-server (1 rule):\n  PKIO-SERVER-KEY-RSA public key: found EC P-256; expected "
                       "RSA 2048/3072/4096 is required",
                       ProfileViolation);
  CHECK_THROWS_WITH_AS(build_request(Profile::pkio_eseal, eseal, ec, true), "--rsa-pss: needs an RSA key",
                       qscd::agent::UsageError);
  Subject bad = eseal;
  bad[2].value = "NTRNL-1";
  try {
    build_request(Profile::pkio_eseal, bad, ec, false);
    FAIL("no refusal");
  } catch (const ProfileViolation& violation) {
    REQUIRE(violation.findings().size() == 1);
    CHECK(violation.findings()[0].rule == "PKIO-ESEAL-ORGID-NTRNL");
    CHECK(qscd::agent::failure_for(std::make_exception_ptr(violation)).code == qscd::agent::ExitCode::usage);
  }
}

TEST_CASE("a signature that does not verify is refused and nothing is returned to write") {
  WrongSigner signer(generate("rsa:2048"));
  CHECK_THROWS_AS(build_request(Profile::pkio_eseal, eseal, signer, false), qscd::agent::TokenError);
}

TEST_CASE("ECDSA r || s from a token becomes the DER ECDSA-Sig-Value X.509 wants") {
  for (const char* curve : {"ec:P-256", "ec:P-384"}) {
    CAPTURE(curve);
    SoftwareSigner signer(generate(curve));
    const unsigned char data[] = "to be signed";
    for (int round = 0; round < 20; ++round) {  // some r or s with a leading zero byte or high bit
      const auto der = signer.sign(SignatureScheme::ecdsa_sha256, data);
      const unsigned char* p = der.data();
      ossl::EcdsaSigPtr parsed(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
      REQUIRE(parsed);
      const int half = EVP_PKEY_get_bits(signer.public_key()) / 8;
      std::vector<unsigned char> raw(static_cast<std::size_t>(2 * half));
      REQUIRE(BN_bn2binpad(ECDSA_SIG_get0_r(parsed.get()), raw.data(), half) == half);
      REQUIRE(BN_bn2binpad(ECDSA_SIG_get0_s(parsed.get()), raw.data() + half, half) == half);
      CHECK(ecdsa_raw_to_der(raw) == der);
    }
  }
  const unsigned char odd[3] = {1, 2, 3};
  CHECK_THROWS_AS(ecdsa_raw_to_der(odd), std::runtime_error);
}
