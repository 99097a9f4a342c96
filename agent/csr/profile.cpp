#include "csr/profile.hpp"

#include <cstdio>

#include "base/files.hpp"
#include "base/toml_text.hpp"

#include <openssl/asn1.h>
#include <openssl/crypto.h>
#include <openssl/objects.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <map>
#include <sstream>
#include <toml++/toml.h>

#include "csr/identifiers.hpp"
#include "base/errors.hpp"
#include "base/text.hpp"

namespace qscd::agent::csr {

namespace {

constexpr std::array attribute_types{
    AttributeType{"C", NID_countryName, V_ASN1_PRINTABLESTRING, 2},
    AttributeType{"O", NID_organizationName, V_ASN1_UTF8STRING, 64},
    AttributeType{"OU", NID_organizationalUnitName, V_ASN1_UTF8STRING, 64},
    AttributeType{"CN", NID_commonName, V_ASN1_UTF8STRING, 64},
    AttributeType{"L", NID_localityName, V_ASN1_UTF8STRING, 128},
    AttributeType{"ST", NID_stateOrProvinceName, V_ASN1_UTF8STRING, 128},
    AttributeType{"serialNumber", NID_serialNumber, V_ASN1_PRINTABLESTRING, 64},
    // No upper bound in RFC 5280 or EN 319 412-1.
    AttributeType{"organizationIdentifier", NID_organizationIdentifier, V_ASN1_UTF8STRING, 0},
};

struct Field {
  std::string_view name;
  bool required;
};

std::vector<Field> profile_fields(Profile profile) {
  switch (profile) {
    case Profile::be_ebox:
      return {{"organization", true}, {"cbe_number", true}, {"environment", true},
              {"application", true},  {"locality", true},   {"state", true}};
    case Profile::pkio_server:
      // oin or kvk: checked separately, exactly one of them.
      return {{"organization", true}, {"common_name", true}, {"oin", false}, {"kvk", false}};
    case Profile::pkio_eseal:
      return {{"organization", true}, {"common_name", true}, {"kvk", true}, {"oin", false}};
    case Profile::generic:
      break;
  }
  return {};
}

std::string joined_field_names(Profile profile) {
  std::string names;
  if (profile == Profile::generic) {
    for (const auto& type : attribute_types) names += (names.empty() ? "" : ", ") + std::string(type.name);
  } else {
    for (const auto& field : profile_fields(profile)) names += (names.empty() ? "" : ", ") + std::string(field.name);
  }
  return names;
}

}  // namespace

Profile parse_profile(std::string_view name) {
  if (name == "be-ebox") return Profile::be_ebox;
  if (name == "pkio-server") return Profile::pkio_server;
  if (name == "pkio-eseal") return Profile::pkio_eseal;
  if (name == "generic") return Profile::generic;
  throw UsageError("--profile", "one of be-ebox, pkio-server, pkio-eseal, generic (got \"" + std::string(name) + "\")");
}

std::string_view profile_name(Profile profile) {
  switch (profile) {
    case Profile::be_ebox:
      return "be-ebox";
    case Profile::pkio_server:
      return "pkio-server";
    case Profile::pkio_eseal:
      return "pkio-eseal";
    case Profile::generic:
      break;
  }
  return "generic";
}

const AttributeType* find_attribute_type(std::string_view name) {
  for (const auto& type : attribute_types) {
    if (type.name == name) return &type;
  }
  return nullptr;
}

const AttributeType* find_attribute_type(int nid) {
  for (const auto& type : attribute_types) {
    if (type.nid == nid) return &type;
  }
  return nullptr;
}

SubjectInput parse_set_options(const std::vector<std::string>& options) {
  SubjectInput input;
  for (const auto& option : options) {
    const auto equals = option.find('=');
    if (equals == std::string::npos || equals == 0) {
      throw UsageError("--set", "name=value, got \"" + option + "\"");
    }
    input.emplace_back(option.substr(0, equals), option.substr(equals + 1));
  }
  return input;
}

SubjectInput parse_subject_toml(std::string_view text, const std::string& origin, Profile profile) {
  check_toml_text(text, origin);  // what toml++ 3.3.0 must not see (base/toml_text.hpp)
  toml::table table;
  try {
    table = toml::parse(text, origin);
  } catch (const toml::parse_error& error) {
    throw UsageError(origin, std::string("not valid TOML: ") + std::string(error.description()));
  }
  SubjectInput input;
  if (profile == Profile::generic) {
    const toml::array* rows = table["subject"].as_array();
    if (rows == nullptr || table.size() != 1) {
      throw UsageError(origin, R"(the generic profile takes one ordered array: subject = [["C", "NL"], ["O", "Example"], ...])");
    }
    for (const toml::node& row : *rows) {
      const toml::array* pair = row.as_array();
      const std::optional<std::string> name = pair != nullptr && pair->size() == 2 ? (*pair)[0].value<std::string>() : std::nullopt;
      const std::optional<std::string> value = pair != nullptr && pair->size() == 2 ? (*pair)[1].value<std::string>() : std::nullopt;
      if (!name || !value) {
        throw UsageError(origin, R"(each subject entry is a pair of strings such as ["OU", "Sales"])");
      }
      input.emplace_back(*name, *value);
    }
    return input;
  }
  std::vector<std::string_view> known;
  for (const Field& field : profile_fields(profile)) known.push_back(field.name);
  for (const auto& [key, node] : table) {
    const std::string line = key.source().begin.line > 0 ? origin + ":" + std::to_string(key.source().begin.line) : origin;
    if (std::find(known.begin(), known.end(), key.str()) == known.end()) {
      throw UsageError(line, std::string(key.str()) + ": is not a field of profile " + std::string(profile_name(profile)) + " (" +
                                 joined(known) + ")" + did_you_mean(key.str(), known));
    }
    if (!node.is_string()) {
      throw UsageError(line, std::string(key.str()) + ": must be a string (quote numbers: leading zeros count)");
    }
    input.emplace_back(std::string(key.str()), node.value<std::string>().value());
  }
  return input;
}

SubjectInput read_subject_file(const std::filesystem::path& path, Profile profile) {
  return parse_subject_toml(read_input_file(path, "--subject-file"), path.string(), profile);
}

Subject subject_from_input(Profile profile, const SubjectInput& input, std::vector<Finding>& findings) {
  if (profile == Profile::generic) {
    Subject subject;
    for (const auto& [name, value] : input) {
      if (find_attribute_type(name) == nullptr) {
        throw UsageError("subject field " + name, "the generic profile takes " + joined_field_names(profile));
      }
      subject.push_back({name, value});
    }
    if (subject.empty()) throw UsageError("subject", "no attributes given (--set C=NL --set O=... or --subject-file)");
    return subject;
  }

  const auto fields = profile_fields(profile);
  std::map<std::string, std::string, std::less<>> given;
  auto value_of = [&given](std::string_view name) -> const std::string* {
    const auto found = given.find(name);
    return found == given.end() ? nullptr : &found->second;
  };
  for (const auto& entry : input) {
    const std::string& name = entry.first;  // not a structured binding: clang 14 cannot capture one
    const std::string& value = entry.second;
    const bool known = std::any_of(fields.begin(), fields.end(), [&name](const Field& f) { return f.name == name; });
    if (!known) {
      throw UsageError("subject field " + name,
                       "profile " + std::string(profile_name(profile)) + " takes " + joined_field_names(profile));
    }
    if (!given.emplace(name, value).second) throw UsageError("subject field " + name, "given more than once");
  }
  std::string missing;
  for (const auto& field : fields) {
    if (field.required && value_of(field.name) == nullptr) missing += (missing.empty() ? "" : ", ") + std::string(field.name);
  }
  if (!missing.empty()) {
    throw UsageError("subject", "profile " + std::string(profile_name(profile)) + " needs " + missing);
  }
  // Required fields only, present after the check above.
  auto field = [&given](std::string_view name) -> const std::string& { return given.find(name)->second; };
  auto check_kvk = [&findings](const std::string& kvk) {
    if (auto problem = kvk_problem(kvk)) findings.push_back({"KVK-FORMAT", "kvk", kvk, *problem});
  };

  switch (profile) {
    case Profile::be_ebox:
      return {{"C", "BE"},
              {"O", field("organization")},
              {"OU", "Belgian Federal Government"},
              {"OU", "urn:be:fgov:kbo-bce:organization:cbe-number:" + normalise_cbe(field("cbe_number"))},
              {"OU", field("environment")},
              {"CN", field("application")},
              {"L", field("locality")},
              {"ST", field("state")}};
    case Profile::pkio_server: {
      const std::string* oin = value_of("oin");
      const std::string* kvk = value_of("kvk");
      if ((oin == nullptr) == (kvk == nullptr)) {
        throw UsageError("subject", "profile pkio-server needs exactly one of oin (20 digits) and kvk (8 digits)");
      }
      std::string serial = oin != nullptr ? *oin : hrn_from_kvk(*kvk);
      if (kvk != nullptr) check_kvk(*kvk);
      return {{"C", "NL"}, {"O", field("organization")}, {"CN", field("common_name")}, {"serialNumber", serial}};
    }
    case Profile::pkio_eseal: {
      check_kvk(field("kvk"));
      Subject subject{{"C", "NL"},
                      {"O", field("organization")},
                      {"organizationIdentifier", organization_identifier_from_kvk(field("kvk"))},
                      {"CN", field("common_name")}};
      if (const std::string* oin = value_of("oin")) subject.push_back({"serialNumber", *oin});
      return subject;
    }
    case Profile::generic:
      break;
  }
  return {};
}

ossl::X509NamePtr make_name(const Subject& subject) {
  ossl::X509NamePtr name(X509_NAME_new());
  if (!name) throw std::bad_alloc();
  for (const auto& attribute : subject) {
    const AttributeType* type = find_attribute_type(attribute.type);
    if (type == nullptr) throw UsageError("subject attribute " + attribute.type, "not an attribute this agent writes");
    // A NUL cuts the value short for every C reader of the certificate (the classic CN spoof);
    // no DN value of a profile needs a control character.
    for (std::size_t i = 0; i < attribute.value.size(); ++i) {
      const auto byte = static_cast<unsigned char>(attribute.value[i]);
      if (byte < 0x20 || byte == 0x7f) {
        char code[8];
        std::snprintf(code, sizeof code, "U+%04X", byte);
        throw UsageError("subject attribute " + attribute.type,
                         std::string(byte == 0 ? "holds a NUL" : "holds a control character") + " (" + code + " at byte " +
                             std::to_string(i) + "); a DN value is printable text");
      }
    }
    // ASN1_mbstring_copy checks the UTF-8 input and converts it to exactly the one string type
    // allowed by the mask, independent of OpenSSL's global string mask.
    ASN1_STRING* converted = nullptr;
    const unsigned long mask = type->string_type == V_ASN1_PRINTABLESTRING ? B_ASN1_PRINTABLESTRING : B_ASN1_UTF8STRING;
    if (ASN1_mbstring_copy(&converted, reinterpret_cast<const unsigned char*>(attribute.value.data()),
                           static_cast<int>(attribute.value.size()), MBSTRING_UTF8, mask) < 0) {
      throw UsageError("subject attribute " + attribute.type,
                       mask == B_ASN1_PRINTABLESTRING
                           ? "PrintableString characters only (A-Z a-z 0-9 space ' ( ) + , - . / : = ?), got \"" +
                                 attribute.value + "\""
                           : "valid UTF-8 text, got \"" + attribute.value + "\"");
    }
    ossl::Asn1StringPtr value(converted);
    if (X509_NAME_add_entry_by_NID(name.get(), type->nid, ASN1_STRING_type(value.get()), ASN1_STRING_get0_data(value.get()),
                                   ASN1_STRING_length(value.get()), -1, 0) != 1) {
      throw std::runtime_error("X509_NAME_add_entry_by_NID(" + attribute.type + ") failed: " + ossl::error_text());
    }
  }
  return name;
}

std::vector<NameEntry> name_entries(const X509_NAME* name) {
  std::vector<NameEntry> entries;
  const int count = X509_NAME_entry_count(name);
  for (int i = 0; i < count; ++i) {
    const X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
    const ASN1_OBJECT* object = X509_NAME_ENTRY_get_object(entry);
    const ASN1_STRING* data = X509_NAME_ENTRY_get_data(entry);
    NameEntry result;
    result.nid = OBJ_obj2nid(object);
    result.string_type = ASN1_STRING_type(data);
    result.rdn = X509_NAME_ENTRY_set(entry);
    if (const AttributeType* type = find_attribute_type(result.nid)) {
      result.type = std::string(type->name);
    } else if (result.nid != NID_undef) {
      result.type = OBJ_nid2sn(result.nid);
    } else {
      char text[128];
      OBJ_obj2txt(text, sizeof text, object, 1);
      result.type = text;
    }
    unsigned char* utf8 = nullptr;
    const int length = ASN1_STRING_to_UTF8(&utf8, data);
    if (length >= 0) {
      result.value.assign(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(length));
      OPENSSL_free(utf8);
    } else {
      result.value = "(undecodable " + std::string(ASN1_tag2str(result.string_type)) + ")";
    }
    entries.push_back(std::move(result));
  }
  return entries;
}

}  // namespace qscd::agent::csr
