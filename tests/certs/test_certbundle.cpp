#include <doctest/doctest.h>

#include <fstream>

#include "cli/exit_code.hpp"
#include "../unit/scratch_dir.hpp"
#include "certs/certbundle.hpp"
#include "test_pki.hpp"

using namespace qscd::agent;
using test_pki::Ca;
using test_pki::CertOptions;

namespace {

const test_pki::Subject seal_subject{{{"C", "NL"}, {"O", "Gemeente Testdorp"}, {"organizationIdentifier", "NTRNL-12345678"},
                                      {"CN", "Testdorp seal"}}};

std::filesystem::path write(const ScratchDir& dir, const std::string& name, const std::string& content) {
  auto path = dir.path() / name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

struct Fixture {
  Ca ca{"Test PKI"};
  ossl::EvpPkeyPtr key = test_pki::ec_key();
  ossl::X509Ptr leaf = ca.leaf(key.get(), CertOptions{seal_subject, false, "critical,nonRepudiation", true, -1, 365, 77});
};

}  // namespace

TEST_CASE("a PEM chain, DER, and PKCS#7 in PEM and DER all read") {
  Fixture f;
  std::string chain = test_pki::pem(f.leaf.get()) + test_pki::pem(f.ca.intermediate.get());
  CHECK(read_certificates(chain, "chain.pem").size() == 2);

  auto der = test_pki::der(f.leaf.get());
  auto from_der = read_certificates(std::span<const unsigned char>(der), "cert.der");
  REQUIRE(from_der.size() == 1);
  CHECK(X509_cmp(from_der[0].get(), f.leaf.get()) == 0);

  for (bool as_pem : {true, false}) {
    CAPTURE(as_pem);
    std::string p7 = test_pki::p7b({f.ca.root.get(), f.ca.intermediate.get(), f.leaf.get()}, as_pem);
    auto certs = read_certificates(p7, "chain.p7b");
    REQUIRE(certs.size() == 3);
    CHECK(X509_cmp(certs[2].get(), f.leaf.get()) == 0);
  }
}

TEST_CASE("inputs that hold no certificate are refused with the input's name") {
  CHECK_THROWS_WITH_AS(read_certificates(std::string_view("hello"), "x.crt"),
                       "x.crt: neither PEM nor a DER certificate nor DER PKCS#7", UsageError);
  Fixture f;
  auto req = test_pki::make_csr(f.key.get(), seal_subject);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_REQ(bio, req.get());
  char* data = nullptr;
  long length = BIO_get_mem_data(bio, &data);
  std::string csr_pem(data, static_cast<std::size_t>(length));
  BIO_free(bio);
  CHECK_THROWS_WITH_AS(read_certificates(csr_pem, "req.pem"),
                       "req.pem: unexpected PEM block 'CERTIFICATE REQUEST' (expected CERTIFICATE or PKCS7)", UsageError);
  CHECK_THROWS_WITH_AS(read_certificate_file("/nonexistent/cert.pem"), "/nonexistent/cert.pem: cannot read /nonexistent/cert.pem: No such file or directory",
                       UsageError);
  CHECK(read_csr(csr_pem, "job 1") != nullptr);
}

TEST_CASE("the end entity is the certificate with the token key, wherever it is in the input") {
  Fixture f;
  std::vector<ossl::X509Ptr> certs;
  certs.push_back(ossl::share(f.ca.root.get()));
  certs.push_back(ossl::share(f.leaf.get()));
  certs.push_back(ossl::share(f.ca.intermediate.get()));
  certs.push_back(ossl::share(f.leaf.get()));  // a duplicate is dropped
  CertBundle bundle = select_for_key(std::move(certs), f.key.get());
  CHECK(X509_cmp(bundle.end_entity.get(), f.leaf.get()) == 0);
  CHECK(bundle.others.size() == 2);
}

TEST_CASE("a certificate for another key is refused as CertificateNotForKey (exit 4)") {
  Fixture f;
  auto other_key = test_pki::ec_key();
  std::vector<ossl::X509Ptr> certs;
  certs.push_back(ossl::share(f.leaf.get()));
  CHECK_THROWS_WITH_AS(select_for_key(std::move(certs), other_key.get()),
                       "the certificate is not for this key: none of 1 certificate(s) "
                       "(C=NL, O=Gemeente Testdorp, organizationIdentifier=NTRNL-12345678, CN=Testdorp seal) "
                       "has the token key's public key",
                       CertificateNotForKey);
  CHECK(failure_for(std::make_exception_ptr(CertificateNotForKey("x"))).code == ExitCode::ca);
}

TEST_CASE("the chain verifies to its own root, and a foreign root is refused") {
  Fixture f;
  ScratchDir dir;
  auto trust = write(dir, "root.pem", test_pki::pem(f.ca.root.get()));
  std::vector<ossl::X509Ptr> certs;
  certs.push_back(ossl::share(f.leaf.get()));
  certs.push_back(ossl::share(f.ca.intermediate.get()));
  CertBundle bundle = select_for_key(std::move(certs), f.key.get());

  auto chain = verify_chain(bundle, trust);
  REQUIRE(chain.size() == 3);
  CHECK(X509_cmp(chain[2].get(), f.ca.root.get()) == 0);
  auto intermediates = intermediates_of(chain);
  REQUIRE(intermediates.size() == 1);
  CHECK(X509_cmp(intermediates[0].get(), f.ca.intermediate.get()) == 0);

  Ca foreign("Foreign PKI");
  auto foreign_trust = write(dir, "foreign.pem", test_pki::pem(foreign.root.get()));
  CHECK_THROWS_WITH_AS(verify_chain(bundle, foreign_trust),
                       ("the certificate chain does not lead to the trust anchors in " + foreign_trust.string() +
                        ": unable to get local issuer certificate at C=NL, O=Test PKI, CN=Test PKI Issuing CA")
                           .c_str(),
                       ChainNotTrusted);
  // The same chain with its own root in the bundle is still not trusted by a foreign anchor.
  CertBundle with_root{ossl::share(f.leaf.get()), {}};
  with_root.others.push_back(ossl::share(f.ca.intermediate.get()));
  with_root.others.push_back(ossl::share(f.ca.root.get()));
  CHECK_THROWS_AS(verify_chain(with_root, foreign_trust), ChainNotTrusted);
  // Without the intermediate there is no path.
  CertBundle alone{ossl::share(f.leaf.get()), {}};
  CHECK_THROWS_AS(verify_chain(alone, trust), ChainNotTrusted);
  // The system store does not know the test root.
  CHECK_THROWS_AS(verify_chain(bundle, std::nullopt), ChainNotTrusted);
}

TEST_CASE("post-issuance checks: a good qualified seal") {
  Fixture f;
  auto csr = test_pki::make_csr(f.key.get(), seal_subject);
  auto expected = IssuanceExpectations::for_job("pkio-eseal", "pkio_qualified_organisation_services");
  CHECK(expected.seal_profile);
  CHECK(expected.seal_level == SealLevel::qualified_qscd);
  expected.csr = csr.get();
  IssuanceReport report = check_issued(f.leaf.get(), f.key.get(), expected);
  CHECK(report.key_matches);
  CHECK(report.valid_now);
  CHECK(report.non_repudiation == true);
  REQUIRE(report.seal.has_value());
  CHECK(report.seal->level == SealLevel::qualified_qscd);
  CHECK(report.seal->policy_qcp_l_qscd);
  CHECK(report.seal->qc.compliance);
  CHECK(report.seal->qc.sscd);
  CHECK(report.seal->qc.type_eseal);
  CHECK(report.subject_differences.empty());
  CHECK_FALSE(report.subject_order_differs);
  CHECK(report.blocking().empty());
  CHECK_NOTHROW(require_installable(report));
  CHECK(report.to_json()["qc_statements"]["qc_sscd"] == true);
  CHECK(report.to_json()["seal"]["level"] == "qualified_qscd");
  const auto lines = report.lines();
  CHECK(std::find(lines.begin(), lines.end(),
                  "ok: the certificate is qualified e-seal on a QSCD (QCP-l-qscd); promised: qualified e-seal on a QSCD (QCP-l-qscd)") !=
        lines.end());
}

TEST_CASE("an advanced e-seal (QCP-l, no QcSSCD): enough for eu_eseal, refused where a QSCD seal is promised") {
  Fixture f;
  CertOptions options{seal_subject, false, "critical,nonRepudiation", true};
  options.qcp_l_only = true;
  auto advanced = f.ca.leaf(f.key.get(), options);
  auto expected = IssuanceExpectations::for_job("pkio-eseal", "eu_eseal");
  CHECK(expected.seal_level == SealLevel::advanced_qcp_l);
  IssuanceReport report = check_issued(advanced.get(), f.key.get(), expected);
  REQUIRE(report.seal.has_value());
  CHECK(report.seal->level == SealLevel::advanced_qcp_l);
  CHECK(report.blocking().empty());

  expected.expect_at_least(SealLevel::qualified_qscd);  // --expect qualified
  report = check_issued(advanced.get(), f.key.get(), expected);
  CHECK(report.blocking() ==
        std::vector<std::string>{"the certificate is advanced e-seal (QCP-l: a qualified certificate, the key not certified on a "
                                 "QSCD), less than the qualified e-seal on a QSCD (QCP-l-qscd) the order promises; it lacks "
                                 "certificate policy QCP-l-qscd (0.4.0.194112.1.3), qcStatement QcSSCD (0.4.0.1862.1.4)"});
  CHECK_THROWS_AS(require_installable(report), CertificateRejected);
  // --expect advanced never lowers what the product promises.
  expected = IssuanceExpectations::for_job("pkio-eseal", "pkio_qualified_organisation_services");
  expected.expect_at_least(SealLevel::advanced_qcp_l);
  CHECK(expected.seal_level == SealLevel::qualified_qscd);
  CHECK(parse_expected_seal("qualified", "--expect") == SealLevel::qualified_qscd);
  CHECK_THROWS_WITH_AS(parse_expected_seal("qscd", "--expect"),
                       "--expect: 'qscd' is not a seal level: give qualified (a qualified e-seal on a QSCD, QCP-l-qscd) or "
                       "advanced (QCP-l)",
                       UsageError);
}

TEST_CASE("post-issuance checks: missing QC statements and nonRepudiation, subject rebuilt by the CA, expired") {
  Fixture f;
  test_pki::Subject from_org_record{{{"C", "NL"}, {"O", "Gemeente Testdorp B.V."}, {"CN", "Testdorp seal"},
                                     {"organizationIdentifier", "NTRNL-12345678"}}};
  auto plain = f.ca.leaf(f.key.get(), CertOptions{from_org_record, false, "critical,digitalSignature", false, -400, -35, 5});
  auto csr = test_pki::make_csr(f.key.get(), seal_subject);
  auto expected = IssuanceExpectations::for_job("pkio-eseal", "eu_eseal");
  expected.csr = csr.get();
  IssuanceReport report = check_issued(plain.get(), f.key.get(), expected);
  CHECK(report.key_matches);
  CHECK_FALSE(report.valid_now);
  CHECK(report.non_repudiation == false);
  REQUIRE(report.seal.has_value());
  CHECK(report.seal->level == SealLevel::not_qualified);
  CHECK_FALSE(report.seal->qc.compliance);
  CHECK_FALSE(report.seal->qc.type_eseal);
  REQUIRE(report.subject_differences.size() == 1);
  CHECK(report.subject_differences[0].attribute == "O");
  CHECK(report.subject_differences[0].in_csr == "Gemeente Testdorp");
  CHECK(report.subject_differences[0].in_certificate == "Gemeente Testdorp B.V.");
  auto lines = report.lines();
  CHECK(std::find(lines.begin(), lines.end(), "absent: qcStatement QcSSCD (0.4.0.1862.1.4)") != lines.end());
  CHECK(std::find(lines.begin(), lines.end(),
                  "subject differs: O in CSR \"Gemeente Testdorp\", in certificate \"Gemeente Testdorp B.V.\"") !=
        lines.end());
  CHECK_THROWS_WITH_AS(require_installable(report),
                       ("the certificate cannot be installed: the certificate is not valid now (" + report.not_before +
                        " to " + report.not_after + "); a seal certificate without key usage nonRepudiation; the "
                        "certificate is not a qualified seal certificate (no QCP-l or QCP-l-qscd policy with QcCompliance "
                        "and QcType eseal), less than the advanced e-seal (QCP-l: a qualified certificate, the key not "
                        "certified on a QSCD) the order promises; it lacks certificate policy QCP-l (0.4.0.194112.1.1) or "
                        "QCP-l-qscd (0.4.0.194112.1.3), qcStatement QcCompliance (0.4.0.1862.1.1), qcStatement QcType "
                        "eseal (0.4.0.1862.1.6.2)")
                           .c_str(),
                       CertificateRejected);

  // Only the order differs.
  test_pki::Subject reordered{{{"CN", "Testdorp seal"}, {"organizationIdentifier", "NTRNL-12345678"},
                               {"O", "Gemeente Testdorp"}, {"C", "NL"}}};
  auto other_order = f.ca.leaf(f.key.get(), CertOptions{reordered});
  CHECK(check_issued(other_order.get(), f.key.get(), expected).subject_order_differs);
}

TEST_CASE("a server profile does not ask for nonRepudiation or QC statements; a wrong key blocks") {
  Fixture f;
  auto other_key = test_pki::ec_key();
  auto expected = IssuanceExpectations::for_job("pkio-server", "pkio_private_services_server");
  IssuanceReport report = check_issued(f.leaf.get(), other_key.get(), expected);
  CHECK_FALSE(report.non_repudiation.has_value());
  CHECK_FALSE(report.seal.has_value());
  CHECK(report.blocking() == std::vector<std::string>{"the certificate's public key is not the token key's"});
}

TEST_CASE("evidence hashes are SHA-256 of the DER encodings") {
  Fixture f;
  auto der = test_pki::der(f.leaf.get());
  CHECK(certificate_sha256(f.leaf.get()) == sha256_hex(der));
  CHECK(certificate_sha256(f.leaf.get()).size() == 64);
  // The certificate's SPKI is the key's.
  X509_PUBKEY* spki = X509_get_X509_PUBKEY(f.leaf.get());
  int length = i2d_X509_PUBKEY(spki, nullptr);
  std::vector<unsigned char> spki_der(static_cast<std::size_t>(length));
  unsigned char* p = spki_der.data();
  i2d_X509_PUBKEY(spki, &p);
  CHECK(spki_sha256(f.key.get()) == sha256_hex(spki_der));
  CHECK(sha256_hex(std::span<const unsigned char>()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  auto csr = test_pki::make_csr(f.key.get(), seal_subject);
  CHECK(csr_sha256(csr.get()).size() == 64);
  CHECK(serial_hex(f.leaf.get()) == "4D");  // 77
  CHECK(to_pem(f.leaf.get()) == test_pki::pem(f.leaf.get()));
}
