#include <doctest/doctest.h>

#include <algorithm>

#include "csr/builder.hpp"
#include "csr/lint.hpp"
#include "csr_test_support.hpp"

#include <nlohmann/json.hpp>

using namespace qscd::agent::csr;
namespace ossl = qscd::agent::ossl;
using csr_test::quote;

namespace {

std::vector<std::string> rules(const std::vector<Finding>& findings) {
  std::vector<std::string> ids;
  for (const auto& finding : findings) ids.push_back(finding.rule);
  return ids;
}

std::vector<Finding> lint(Profile profile, const Subject& subject) {
  ossl::X509NamePtr name = make_name(subject);
  return lint_subject(profile, name.get());
}

Subject be_ebox() {
  return {{"C", "BE"},
          {"O", "SMALS"},
          {"OU", "Belgian Federal Government"},
          {"OU", "urn:be:fgov:kbo-bce:organization:cbe-number:0566988259"},
          {"OU", "PRD"},
          {"CN", "employment:job-attest:werkkaart"},
          {"L", "Sint-Gillis"},
          {"ST", "Brussel-Hoofdstad"}};
}

Subject pkio_server() {
  return {{"C", "NL"}, {"O", "Gemeente X"}, {"CN", "gemeente-x.qvtl.nl"}, {"serialNumber", "00000003123456780000"}};
}

Subject pkio_eseal() {
  return {{"C", "NL"}, {"O", "Org"}, {"organizationIdentifier", "NTRNL-12345678"}, {"CN", "Seal"}};
}

Subject with(Subject subject, std::size_t index, std::string value) {
  subject.at(index).value = std::move(value);
  return subject;
}

using Ids = std::vector<std::string>;

}  // namespace

TEST_CASE("clean subjects have no findings") {
  CHECK(lint(Profile::be_ebox, be_ebox()).empty());
  CHECK(lint(Profile::pkio_server, pkio_server()).empty());
  CHECK(lint(Profile::pkio_eseal, pkio_eseal()).empty());
  Subject with_oin = pkio_eseal();
  with_oin.push_back({"serialNumber", "00000001002220647000"});
  CHECK(lint(Profile::pkio_eseal, with_oin).empty());
  CHECK(lint(Profile::generic, {{"CN", "anything"}, {"OU", "b"}, {"OU", "a"}}).empty());
}

TEST_CASE("be-ebox rules") {
  CHECK(rules(lint(Profile::be_ebox, with(be_ebox(), 0, "NL"))) == Ids{"BE-EBOX-C"});
  CHECK(rules(lint(Profile::be_ebox, with(be_ebox(), 1, ""))) == Ids{"X509-EMPTY-VALUE", "BE-EBOX-O"});
  CHECK(rules(lint(Profile::be_ebox, with(be_ebox(), 2, "Federal Government"))) == Ids{"BE-EBOX-OU1-FEDERAL-GOVERNMENT"});
  CHECK(rules(lint(Profile::be_ebox, with(be_ebox(), 3, "urn:be:fgov:kbo-bce:organization:cbe-number:0566.988.259"))) ==
        Ids{"BE-EBOX-OU2-CBE-URN"});
  CHECK(rules(lint(Profile::be_ebox, with(be_ebox(), 3, "cbe-number:0566988259"))) == Ids{"BE-EBOX-OU2-CBE-URN"});
  const auto check = lint(Profile::be_ebox, with(be_ebox(), 3, "urn:be:fgov:kbo-bce:organization:cbe-number:0123456789"));
  REQUIRE(rules(check) == Ids{"BE-EBOX-OU2-CBE-CHECK"});
  CHECK(check[0].field == "OU#2");
  CHECK(check[0].found == "CBE number 0123456789");
  CHECK(check[0].expected.find("97 - (first eight digits mod 97)") != std::string::npos);
  CHECK(check[0].expected.find("must be 49, found 89") != std::string::npos);
  CHECK(rules(lint(Profile::be_ebox, with(be_ebox(), 4, "prd"))) == Ids{"BE-EBOX-OU3-ENVIRONMENT"});
  CHECK(rules(lint(Profile::be_ebox, with(be_ebox(), 5, "werkkaart"))) == Ids{"BE-EBOX-CN-APPLICATION-URN"});
  CHECK(rules(lint(Profile::be_ebox, with(be_ebox(), 5, "employment:job attest"))) == Ids{"BE-EBOX-CN-APPLICATION-URN"});
  CHECK(rules(lint(Profile::be_ebox, with(be_ebox(), 6, ""))) == Ids{"X509-EMPTY-VALUE", "BE-EBOX-L"});
  for (const char* region : {"BRU", "bru", "BE-BRU", "VLG", "WAL", "Bxl.", "Brux.", "ANTW", "OV"}) {
    CAPTURE(region);
    CHECK(rules(lint(Profile::be_ebox, with(be_ebox(), 7, region))) == Ids{"BE-EBOX-ST-WRITTEN-OUT"});
  }
  for (const char* region : {"Brussel-Hoofdstad", "Région de Bruxelles-Capitale", "Vlaanderen", "Liège", "Namur"}) {
    CAPTURE(region);
    CHECK(lint(Profile::be_ebox, with(be_ebox(), 7, region)).empty());
  }
}

TEST_CASE("be-ebox: OUs out of order break each positional rule; other layouts break ORDER / NO-EXTRA") {
  Subject swapped = be_ebox();
  std::rotate(swapped.begin() + 2, swapped.begin() + 4, swapped.begin() + 5);  // OU=PRD first
  CHECK(rules(lint(Profile::be_ebox, swapped)) ==
        Ids{"BE-EBOX-OU1-FEDERAL-GOVERNMENT", "BE-EBOX-OU2-CBE-URN", "BE-EBOX-OU3-ENVIRONMENT"});

  Subject reordered = be_ebox();
  std::swap(reordered[6], reordered[7]);
  const auto order = lint(Profile::be_ebox, reordered);
  REQUIRE(rules(order) == Ids{"BE-EBOX-ORDER"});
  CHECK(order[0].found == "C, O, OU, OU, OU, CN, ST, L");

  Subject extra = be_ebox();
  extra.push_back({"serialNumber", "1"});
  CHECK(rules(lint(Profile::be_ebox, extra)) == Ids{"BE-EBOX-NO-EXTRA"});

  Subject missing = be_ebox();
  missing.pop_back();
  CHECK(rules(lint(Profile::be_ebox, missing)) == Ids{"BE-EBOX-ST"});
}

TEST_CASE("pkio-server rules") {
  CHECK(rules(lint(Profile::pkio_server, with(pkio_server(), 0, "BE"))) == Ids{"PKIO-SERVER-C"});
  for (const char* cn : {"localhost", "*.example.nl", "192.168.1.1", "exa mple.nl", "-x.nl", "Gemeente X"}) {
    CAPTURE(cn);
    CHECK(rules(lint(Profile::pkio_server, with(pkio_server(), 2, cn))) == Ids{"PKIO-SERVER-CN-DNS-NAME"});
  }
  CHECK(lint(Profile::pkio_server, with(pkio_server(), 2, "www.Example-1.nl")).empty());
  CHECK(rules(lint(Profile::pkio_server, with(pkio_server(), 3, "00000003123456789000"))) ==
        Ids{"PKIO-SERVER-SERIALNUMBER-OIN"});
  Subject no_serial = pkio_server();
  no_serial.pop_back();
  CHECK(rules(lint(Profile::pkio_server, no_serial)) == Ids{"PKIO-SERVER-SERIALNUMBER-OIN"});
}

TEST_CASE("pkio-eseal rules") {
  CHECK(rules(lint(Profile::pkio_eseal, with(pkio_eseal(), 2, "NTRNL-1234567"))) == Ids{"PKIO-ESEAL-ORGID-NTRNL"});
  CHECK(rules(lint(Profile::pkio_eseal, with(pkio_eseal(), 2, "KVKNL-12345678"))) == Ids{"PKIO-ESEAL-ORGID-NTRNL"});
  Subject same = with(pkio_eseal(), 1, "NTRNL-12345678");
  CHECK(rules(lint(Profile::pkio_eseal, same)) == Ids{"PKIO-ESEAL-ORGID-DIFFERS-FROM-O"});
  Subject missing{{"C", "NL"}, {"O", "Org"}, {"CN", "Seal"}};
  const auto findings = lint(Profile::pkio_eseal, missing);
  REQUIRE(rules(findings) == Ids{"PKIO-ESEAL-ORGID-NTRNL"});
  CHECK(findings[0].found == "(absent)");
  Subject bad_oin = pkio_eseal();
  bad_oin.push_back({"serialNumber", "12345"});
  CHECK(rules(lint(Profile::pkio_eseal, bad_oin)) == Ids{"PKIO-ESEAL-SERIALNUMBER-OIN"});
}

TEST_CASE("X.509 limits apply to every profile, counted in characters") {
  CHECK(lint(Profile::generic, {{"CN", std::string(64, 'x')}}).empty());
  std::string umlauts;
  for (int i = 0; i < 64; ++i) umlauts += "ë";
  CHECK(lint(Profile::generic, {{"O", umlauts}}).empty());
  const auto long_cn = lint(Profile::generic, {{"CN", std::string(65, 'x')}});
  REQUIRE(rules(long_cn) == Ids{"X509-UPPER-BOUND"});
  CHECK(long_cn[0].expected == "at most 64 characters (RFC 5280 upper bound)");
  CHECK(lint(Profile::generic, {{"L", std::string(128, 'x')}}).empty());
  CHECK(rules(lint(Profile::generic, {{"ST", std::string(129, 'x')}})) == Ids{"X509-UPPER-BOUND"});
  CHECK(rules(lint(Profile::generic, {{"C", "nl"}})) == Ids{"X509-COUNTRY-CODE"});
  CHECK(rules(lint(Profile::generic, {{"C", "NLD"}})) == Ids{"X509-UPPER-BOUND", "X509-COUNTRY-CODE"});
}

TEST_CASE("the key rules") {
  ossl::EvpPkeyPtr ec(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  ossl::EvpPkeyPtr rsa(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
  ossl::EvpPkeyPtr small(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024}));
  ossl::EvpPkeyPtr p521(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-521"));
  const auto ec_findings = lint_key(Profile::pkio_server, ec.get());
  REQUIRE(rules(ec_findings) == Ids{"PKIO-SERVER-KEY-RSA"});
  CHECK(ec_findings[0].found == "EC P-256");
  CHECK(ec_findings[0].expected == "RSA 2048/3072/4096 is required");
  CHECK(lint_key(Profile::pkio_server, rsa.get()).empty());
  CHECK(rules(lint_key(Profile::pkio_server, small.get())) == Ids{"PKIO-SERVER-KEY-RSA"});
  CHECK(lint_key(Profile::pkio_eseal, ec.get()).empty());
  CHECK(rules(lint_key(Profile::pkio_eseal, p521.get())) == Ids{"PKIO-ESEAL-KEY"});
  CHECK(rules(lint_key(Profile::be_ebox, small.get())) == Ids{"BE-EBOX-KEY"});
  CHECK(lint_key(Profile::generic, small.get()).empty());
}

TEST_CASE("csr check on CSRs made by openssl req reports each problem by rule id") {
  csr_test::TempDir dir;
  const auto rsa_key = dir / "rsa.pem";
  const auto ec_key = dir / "ec.pem";
  REQUIRE(csr_test::run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " + quote(rsa_key)).exit == 0);
  REQUIRE(csr_test::run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " + quote(ec_key)).exit == 0);
  auto make = [&dir](const std::filesystem::path& config, const std::filesystem::path& key, const std::string& extra = "") {
    const auto out = dir / (config.stem().string() + key.stem().string() + ".csr");
    const auto made = csr_test::run("openssl req -new -sha256 " + extra + " -key " + quote(key) + " -config " +
                                    quote(config) + " -out " + quote(out));
    REQUIRE_MESSAGE(made.exit == 0, made.err);
    return parse_request(csr_test::read_bytes(out), out.string());
  };
  const auto check = csr_test::data_dir() / "check";
  const auto golden = csr_test::data_dir() / "golden";

  CHECK(lint_request(Profile::be_ebox, make(golden / "be-ebox.cnf", rsa_key).get()).empty());
  CHECK(lint_request(Profile::be_ebox, make(golden / "be-ebox.cnf", ec_key).get()).empty());
  CHECK(lint_request(Profile::pkio_eseal, make(golden / "pkio-eseal.cnf", rsa_key).get()).empty());
  CHECK(lint_request(Profile::pkio_server, make(golden / "pkio-server.cnf", rsa_key).get()).empty());

  CHECK(rules(lint_request(Profile::be_ebox, make(check / "be-ebox-ou-order.cnf", rsa_key).get())) ==
        Ids{"BE-EBOX-OU1-FEDERAL-GOVERNMENT", "BE-EBOX-OU2-CBE-URN", "BE-EBOX-OU3-ENVIRONMENT"});
  CHECK(rules(lint_request(Profile::be_ebox, make(check / "be-ebox-st-bru.cnf", rsa_key).get())) ==
        Ids{"BE-EBOX-ST-WRITTEN-OUT"});
  CHECK(rules(lint_request(Profile::be_ebox, make(check / "be-ebox-cbe-check.cnf", rsa_key).get())) ==
        Ids{"BE-EBOX-OU2-CBE-CHECK"});
  CHECK(rules(lint_request(Profile::pkio_server, make(golden / "pkio-server.cnf", ec_key).get())) ==
        Ids{"PKIO-SERVER-KEY-RSA"});
  CHECK(rules(lint_request(Profile::pkio_eseal, make(check / "pkio-eseal-no-orgid.cnf", rsa_key).get())) ==
        Ids{"PKIO-ESEAL-ORGID-NTRNL"});
  CHECK(rules(lint_request(Profile::generic, make(golden / "generic.cnf", rsa_key, "-sha1").get())) ==
        Ids{"CSR-SIGNATURE-SHA256"});
  CHECK(lint_request(Profile::generic,
                     make(golden / "generic.cnf", rsa_key,
                          "-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 -sigopt rsa_mgf1_md:sha256")
                         .get())
            .empty());
}

TEST_CASE("a tampered request fails CSR-SIGNATURE-VALID; garbage is not a request") {
  ossl::EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  SoftwareSigner signer(std::move(key));
  ossl::X509ReqPtr request = build_request(Profile::generic, {{"CN", "original"}}, signer, false);
  std::vector<unsigned char> der = request_der(request.get());
  const auto at = std::search(der.begin(), der.end(), std::begin("original"), std::end("original") - 1);
  REQUIRE(at != der.end());
  *at = 'O';
  ossl::X509ReqPtr tampered = parse_request(der, "tampered");
  CHECK(rules(lint_request(Profile::generic, tampered.get())) == Ids{"CSR-SIGNATURE-VALID"});
  const std::string junk = "not a csr";
  CHECK_THROWS_WITH_AS(parse_request({reinterpret_cast<const unsigned char*>(junk.data()), junk.size()}, "junk.csr"),
                       "junk.csr: not a PKCS#10 certificate request (PEM or DER)", qscd::agent::UsageError);
}

TEST_CASE("qscd-agent csr check: text and --json, PEM and DER, exit 2 on any broken rule") {
  csr_test::TempDir dir;
  const char* agent = std::getenv("QSCD_AGENT_BIN");
  REQUIRE(agent != nullptr);
  const auto key = dir / "rsa.pem";
  const auto pem = dir / "bru.csr";
  const auto der = dir / "bru.der";
  REQUIRE(csr_test::run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " + quote(key)).exit == 0);
  REQUIRE(csr_test::run("openssl req -new -sha256 -key " + quote(key) + " -config " +
                        quote(csr_test::data_dir() / "check" / "be-ebox-st-bru.cnf") + " -out " + quote(pem))
              .exit == 0);
  REQUIRE(csr_test::run("openssl req -in " + quote(pem) + " -outform DER -out " + quote(der)).exit == 0);

  auto text = csr_test::run(std::string(agent) + " csr check " + quote(pem) + " --profile be-ebox");
  CHECK(text.exit == 2);
  CHECK(text.out.find("1 broken rule of profile be-ebox") != std::string::npos);
  CHECK(text.out.find("BE-EBOX-ST-WRITTEN-OUT ST: found \"BRU\"; expected the region written out") != std::string::npos);

  auto json = csr_test::run(std::string(agent) + " --json csr check " + quote(der) + " --profile be-ebox");
  CHECK(json.exit == 2);
  const auto report = nlohmann::json::parse(json.out);
  REQUIRE(report["findings"].size() == 1);
  CHECK(report["findings"][0]["rule"] == "BE-EBOX-ST-WRITTEN-OUT");
  CHECK(report["findings"][0]["field"] == "ST");

  auto clean = csr_test::run(std::string(agent) + " csr check " + quote(der) + " --profile generic");
  CHECK(clean.exit == 0);
  CHECK(clean.out.find("meets profile generic") != std::string::npos);

  auto garbage = csr_test::run(std::string(agent) + " csr check " + quote(key) + " --profile generic");
  CHECK(garbage.exit == 2);
  CHECK(garbage.err.find("not a PKCS#10 certificate request") != std::string::npos);
}

TEST_CASE("names made by others: multi-valued RDNs and string types") {
  ossl::X509NamePtr name(X509_NAME_new());
  const auto* text = reinterpret_cast<const unsigned char*>("NL");
  REQUIRE(X509_NAME_add_entry_by_txt(name.get(), "C", V_ASN1_UTF8STRING, text, 2, -1, 0) == 1);
  const auto* bmp = reinterpret_cast<const unsigned char*>("\0O\0r\0g");
  REQUIRE(X509_NAME_add_entry_by_txt(name.get(), "O", V_ASN1_BMPSTRING, bmp, 6, -1, 0) == 1);
  const auto* cn = reinterpret_cast<const unsigned char*>("a");
  REQUIRE(X509_NAME_add_entry_by_txt(name.get(), "CN", V_ASN1_UTF8STRING, cn, 1, -1, -1) == 1);  // joins O's RDN
  const auto findings = lint_subject(Profile::generic, name.get());
  CHECK(rules(findings) ==
        Ids{"X509-STRING-TYPE", "X509-SINGLE-VALUED-RDN", "X509-STRING-TYPE", "X509-SINGLE-VALUED-RDN"});
  CHECK(findings[0].field == "C");
  CHECK(findings[0].expected == "PrintableString");
  CHECK(findings[2].field == "O");
  CHECK(findings[2].found == "BMPSTRING");
}
