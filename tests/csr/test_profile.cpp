#include <doctest/doctest.h>

#include <algorithm>

#include "csr/builder.hpp"
#include "csr/profile.hpp"
#include "csr_test_support.hpp"
#include "base/errors.hpp"

using namespace qscd::agent::csr;
namespace ossl = qscd::agent::ossl;
using qscd::agent::UsageError;

namespace {

Subject subject_of(Profile profile, const SubjectInput& input) {
  std::vector<Finding> findings;
  Subject subject = subject_from_input(profile, input, findings);
  REQUIRE(findings.empty());
  return subject;
}

std::vector<unsigned char> name_der(const X509_NAME* name) {
  unsigned char* der = nullptr;
  const int length = i2d_X509_NAME(name, &der);
  REQUIRE(length > 0);
  std::vector<unsigned char> out(der, der + length);
  OPENSSL_free(der);
  return out;
}

}  // namespace

TEST_CASE("profile names") {
  CHECK(parse_profile("be-ebox") == Profile::be_ebox);
  CHECK(parse_profile("pkio-server") == Profile::pkio_server);
  CHECK(parse_profile("pkio-eseal") == Profile::pkio_eseal);
  CHECK(parse_profile("generic") == Profile::generic);
  CHECK_THROWS_WITH_AS(parse_profile("pkio"), "--profile: one of be-ebox, pkio-server, pkio-eseal, generic (got \"pkio\")",
                       UsageError);
}

TEST_CASE("--set splits at the first = and keeps the order") {
  const auto input = parse_set_options({"OU=b", "CN=x=y", "OU=a"});
  REQUIRE(input.size() == 3);
  CHECK(input[1] == std::pair<std::string, std::string>{"CN", "x=y"});
  CHECK(input[2].second == "a");
  CHECK_THROWS_WITH_AS(parse_set_options({"organization"}), "--set: name=value, got \"organization\"", UsageError);
  CHECK_THROWS_WITH_AS(parse_set_options({"=x"}), "--set: name=value, got \"=x\"", UsageError);
}

TEST_CASE("be-ebox: fields become C, O, three OUs, CN, L, ST with the CBE number normalised") {
  const Subject subject = subject_of(Profile::be_ebox, parse_set_options({
                                                           "state=Brussel-Hoofdstad",
                                                           "organization=SMALS",
                                                           "cbe_number=0566.988.259",
                                                           "environment=PRD",
                                                           "application=employment:job-attest:werkkaart",
                                                           "locality=Sint-Gillis",
                                                       }));
  const Subject expected{{"C", "BE"},
                         {"O", "SMALS"},
                         {"OU", "Belgian Federal Government"},
                         {"OU", "urn:be:fgov:kbo-bce:organization:cbe-number:0566988259"},
                         {"OU", "PRD"},
                         {"CN", "employment:job-attest:werkkaart"},
                         {"L", "Sint-Gillis"},
                         {"ST", "Brussel-Hoofdstad"}};
  CHECK(subject == expected);
}

TEST_CASE("pkio-server: kvk becomes the HRN, oin is taken as is, exactly one of them") {
  Subject subject = subject_of(Profile::pkio_server,
                               parse_set_options({"organization=Gemeente X", "common_name=x.qvtl.nl", "kvk=12345678"}));
  CHECK(subject.back() == Attribute{"serialNumber", "00000003123456780000"});
  subject = subject_of(Profile::pkio_server, parse_set_options({"organization=Gemeente X", "common_name=x.qvtl.nl",
                                                                "oin=00000001002220647000"}));
  CHECK(subject.back() == Attribute{"serialNumber", "00000001002220647000"});
  std::vector<Finding> findings;
  CHECK_THROWS_WITH_AS(subject_from_input(Profile::pkio_server,
                                          parse_set_options({"organization=X", "common_name=x.nl", "kvk=12345678",
                                                             "oin=00000003123456780000"}),
                                          findings),
                       "subject: profile pkio-server needs exactly one of oin (20 digits) and kvk (8 digits)", UsageError);
  CHECK_THROWS_WITH_AS(
      subject_from_input(Profile::pkio_server, parse_set_options({"organization=X", "common_name=x.nl"}), findings),
      "subject: profile pkio-server needs exactly one of oin (20 digits) and kvk (8 digits)", UsageError);
}

TEST_CASE("pkio-eseal: kvk becomes NTRNL-<kvk>, oin is optional; a bad kvk is a finding") {
  Subject subject = subject_of(Profile::pkio_eseal,
                               parse_set_options({"organization=Org", "common_name=Seal", "kvk=12345678"}));
  const Subject expected{{"C", "NL"}, {"O", "Org"}, {"organizationIdentifier", "NTRNL-12345678"}, {"CN", "Seal"}};
  CHECK(subject == expected);
  std::vector<Finding> findings;
  subject_from_input(Profile::pkio_eseal, parse_set_options({"organization=Org", "common_name=Seal", "kvk=1234"}),
                     findings);
  REQUIRE(findings.size() == 1);
  CHECK(findings[0].rule == "KVK-FORMAT");
  CHECK(findings[0].field == "kvk");
}

TEST_CASE("unknown, repeated and missing fields are usage errors") {
  std::vector<Finding> findings;
  CHECK_THROWS_WITH_AS(subject_from_input(Profile::pkio_eseal, parse_set_options({"org=X"}), findings),
                       "subject field org: profile pkio-eseal takes organization, common_name, kvk, oin", UsageError);
  CHECK_THROWS_WITH_AS(
      subject_from_input(Profile::pkio_eseal, parse_set_options({"kvk=12345678", "kvk=12345678"}), findings),
      "subject field kvk: given more than once", UsageError);
  CHECK_THROWS_WITH_AS(subject_from_input(Profile::be_ebox, parse_set_options({"organization=X"}), findings),
                       "subject: profile be-ebox needs cbe_number, environment, application, locality, state",
                       UsageError);
  CHECK_THROWS_WITH_AS(subject_from_input(Profile::generic, parse_set_options({"E=x@example.org"}), findings),
                       "subject field E: the generic profile takes C, O, OU, CN, L, ST, serialNumber, "
                       "organizationIdentifier",
                       UsageError);
}

TEST_CASE("subject files: top-level strings, and the ordered array for generic") {
  auto input = parse_subject_toml("organization = \"X\"\nkvk = \"01234567\"\n", "s.toml", Profile::pkio_eseal);
  CHECK(input.size() == 2);
  CHECK_THROWS_WITH_AS(parse_subject_toml("kvk = 1234567\n", "s.toml", Profile::pkio_eseal),
                       "s.toml:1: kvk: must be a string (quote numbers: leading zeros count)", UsageError);
  CHECK_THROWS_WITH_AS(parse_subject_toml("organization = \"X\"\norganisation_name = \"Y\"\n", "s.toml", Profile::be_ebox),
                       doctest::Contains("s.toml:2: organisation_name: is not a field of profile be-ebox ("), UsageError);
  CHECK_THROWS_WITH_AS(parse_subject_toml("organisation = \"X\"\n", "s.toml", Profile::pkio_eseal),
                       doctest::Contains("did you mean organization?"), UsageError);
  input = parse_subject_toml("subject = [[\"OU\", \"b\"], [\"C\", \"NL\"], [\"OU\", \"a\"]]\n", "g.toml", Profile::generic);
  REQUIRE(input.size() == 3);
  CHECK(input[0].first == "OU");
  CHECK(input[2].second == "a");
  CHECK_THROWS_AS(parse_subject_toml("C = \"NL\"\n", "g.toml", Profile::generic), UsageError);
  CHECK_THROWS_AS(parse_subject_toml("subject = [[\"C\"]]\n", "g.toml", Profile::generic), UsageError);
  CHECK_THROWS_AS(parse_subject_toml("subject = [\n", "g.toml", Profile::generic), UsageError);
}

TEST_CASE("make_name: PrintableString for C and serialNumber, UTF8String for the rest, one RDN each") {
  ossl::X509NamePtr name = make_name({{"C", "NL"}, {"O", "Zoë"}, {"serialNumber", "00000003123456780000"},
                               {"organizationIdentifier", "NTRNL-12345678"}});
  const auto entries = name_entries(name.get());
  REQUIRE(entries.size() == 4);
  CHECK(entries[0].string_type == V_ASN1_PRINTABLESTRING);
  CHECK(entries[1].string_type == V_ASN1_UTF8STRING);
  CHECK(entries[1].value == "Zoë");
  CHECK(entries[2].string_type == V_ASN1_PRINTABLESTRING);
  CHECK(entries[3].string_type == V_ASN1_UTF8STRING);
  CHECK(entries[3].nid == NID_organizationIdentifier);
  CHECK(entries[3].rdn == 3);
  CHECK_THROWS_WITH_AS(make_name({{"serialNumber", "12_34"}}),
                       "subject attribute serialNumber: PrintableString characters only (A-Z a-z 0-9 space ' ( ) + , - "
                       ". / : = ?), got \"12_34\"",
                       UsageError);
  CHECK_THROWS_AS(make_name({{"O", "\xff\xfe"}}), UsageError);
}

TEST_CASE("golden subjects: the DER equals what openssl req made from the hand-checked config") {
  for (const char* profile : {"be-ebox", "pkio-server", "pkio-eseal", "generic"}) {
    CAPTURE(profile);
    const auto dir = csr_test::data_dir() / "golden";
    const Profile parsed = parse_profile(profile);
    const Subject subject = subject_of(parsed, read_subject_file(dir / (std::string(profile) + ".toml"), parsed));
    ossl::X509NamePtr name = checked_subject(parsed, subject);
    CHECK(name_der(name.get()) == csr_test::read_bytes(dir / (std::string(profile) + ".subject.der")));
  }
}
