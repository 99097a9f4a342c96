#pragma once
// The subject profiles of product.md: which input fields each takes, how they become attributes
// (derived ones included) and the attribute order. The subject is built as an OpenSSL X509_NAME
// with every attribute's OID and string type fixed here.
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "csr/finding.hpp"
#include "base/ossl.hpp"

namespace qscd::agent::csr {

enum class Profile { be_ebox, pkio_server, pkio_eseal, generic };

// "be-ebox" etc.; UsageError("--profile", ...) for anything else.
Profile parse_profile(std::string_view name);
std::string_view profile_name(Profile profile);

// One subject attribute by its short name: C, O, OU, CN, L, ST, serialNumber, organizationIdentifier.
struct Attribute {
  std::string type;
  std::string value;
  friend bool operator==(const Attribute&, const Attribute&) = default;
};
using Subject = std::vector<Attribute>;

// The attributes this code writes: OID and string type (PrintableString for C and serialNumber,
// UTF8String otherwise) and the RFC 5280 upper bound in characters (0: none).
struct AttributeType {
  std::string_view name;
  int nid;
  int string_type;  // V_ASN1_PRINTABLESTRING or V_ASN1_UTF8STRING
  std::size_t upper_bound;
};
// nullptr when `name` is not one of the eight short names above.
const AttributeType* find_attribute_type(std::string_view name);
const AttributeType* find_attribute_type(int nid);

// What the user gave, in the order given: `--set name=value` options or a subject file.
using SubjectInput = std::vector<std::pair<std::string, std::string>>;

// Splits each "name=value" at its first '='. UsageError("--set", ...) when there is none or the
// name is empty.
SubjectInput parse_set_options(const std::vector<std::string>& options);

// A TOML subject file. Named profiles: top-level string keys (the field names). generic: the
// ordered array `subject = [["C", "NL"], ["O", "Example"], ["OU", "a"], ...]`, since TOML tables
// have no order. Values must be strings (a KvK number as an integer would lose its leading zeros).
SubjectInput read_subject_file(const std::filesystem::path& path, Profile profile);
SubjectInput parse_subject_toml(std::string_view text, const std::string& origin, Profile profile);

// The subject of `profile` from the input fields, in the profile's order, with derived fields
// (kvk -> NTRNL-<kvk> or the HRN) and normalisation (cbe_number loses dots and spaces) applied.
// Unknown, repeated or missing fields are a UsageError; a malformed kvk is a finding (KVK-FORMAT)
// added to `findings`, the rest is judged by lint_subject on the result.
Subject subject_from_input(Profile profile, const SubjectInput& input, std::vector<Finding>& findings);

// The X509_NAME of `subject`, one single-valued RDN per attribute in the given order, each with its
// OID and fixed string type. UsageError when a value is not valid UTF-8 or not printable where a
// PrintableString is required.
ossl::X509NamePtr make_name(const Subject& subject);

// The attributes of a name in order, values as UTF-8; unknown types by their OID short name or dotted text.
struct NameEntry {
  std::string type;
  std::string value;
  int nid;
  int string_type;
  int rdn;  // RDN index; two entries with one index are a multi-valued RDN
};
std::vector<NameEntry> name_entries(const X509_NAME* name);

}  // namespace qscd::agent::csr
