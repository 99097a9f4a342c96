#include "csr/lint.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <optional>
#include <regex>

#include "csr/identifiers.hpp"
#include "base/errors.hpp"

namespace qscd::agent::csr {

namespace {

constexpr std::string_view absent = "(absent)";
constexpr std::string_view cbe_urn_prefix = "urn:be:fgov:kbo-bce:organization:cbe-number:";

std::size_t utf8_length(std::string_view text) {
  return static_cast<std::size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

std::string in_quotes(std::string_view value) { return "\"" + std::string(value) + "\""; }

// The subject as the rules see it: entries plus a label per entry (OU#2, O, O#2 when repeated).
class SubjectView {
 public:
  explicit SubjectView(const X509_NAME* name) : entries_(name_entries(name)) {
    std::map<std::string, int> totals;
    for (const auto& entry : entries_) ++totals[entry.type];
    std::map<std::string, int> seen;
    for (const auto& entry : entries_) {
      const int index = ++seen[entry.type];
      labels_.push_back(entry.type == "OU" || totals[entry.type] > 1 ? entry.type + "#" + std::to_string(index)
                                                                      : entry.type);
    }
  }

  [[nodiscard]] const std::vector<NameEntry>& entries() const { return entries_; }
  [[nodiscard]] const std::string& label(std::size_t index) const { return labels_[index]; }

  // The n-th (1-based) attribute of a type, in subject order.
  [[nodiscard]] const NameEntry* nth(std::string_view type, int n = 1) const {
    int seen = 0;
    for (const auto& entry : entries_) {
      if (entry.type == type && ++seen == n) return &entry;
    }
    return nullptr;
  }

  [[nodiscard]] std::string sequence() const {
    std::string text;
    for (const auto& entry : entries_) text += (text.empty() ? "" : ", ") + entry.type;
    return text.empty() ? "an empty subject" : text;
  }

 private:
  std::vector<NameEntry> entries_;
  std::vector<std::string> labels_;
};

std::string found_value(const NameEntry* entry) { return entry == nullptr ? std::string(absent) : in_quotes(entry->value); }

// X.509 limits: one attribute per RDN, non-empty values, the string types, the RFC 5280 upper bounds.
void lint_x509_limits(const SubjectView& subject, std::vector<Finding>& findings) {
  const auto& entries = subject.entries();
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const NameEntry& entry = entries[i];
    const std::string& label = subject.label(i);
    const bool shares_rdn = (i > 0 && entries[i - 1].rdn == entry.rdn) ||
                            (i + 1 < entries.size() && entries[i + 1].rdn == entry.rdn);
    if (shares_rdn) {
      findings.push_back({"X509-SINGLE-VALUED-RDN", label, "an RDN with several attributes",
                          "one attribute per RDN, so the attribute order is unambiguous"});
    }
    if (entry.value.empty()) findings.push_back({"X509-EMPTY-VALUE", label, "an empty value", "a non-empty value"});
    const AttributeType* type = find_attribute_type(entry.nid);
    if (type == nullptr) continue;
    if (type->upper_bound != 0 && utf8_length(entry.value) > type->upper_bound) {
      findings.push_back({"X509-UPPER-BOUND", label, std::to_string(utf8_length(entry.value)) + " characters",
                          "at most " + std::to_string(type->upper_bound) + " characters (RFC 5280 upper bound)"});
    }
    if (type->string_type == V_ASN1_PRINTABLESTRING) {
      if (entry.string_type != V_ASN1_PRINTABLESTRING) {
        findings.push_back({"X509-STRING-TYPE", label, ASN1_tag2str(entry.string_type), "PrintableString"});
      }
    } else if (entry.string_type != V_ASN1_UTF8STRING && entry.string_type != V_ASN1_PRINTABLESTRING) {
      findings.push_back({"X509-STRING-TYPE", label, ASN1_tag2str(entry.string_type),
                          "UTF8String (or PrintableString, RFC 5280 4.1.2.6)"});
    }
    if (entry.nid == NID_countryName) {
      const bool alpha2 = entry.value.size() == 2 &&
                          std::all_of(entry.value.begin(), entry.value.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
      if (!alpha2) {
        findings.push_back({"X509-COUNTRY-CODE", label, in_quotes(entry.value), "an ISO 3166-1 alpha-2 code in capitals"});
      }
    }
  }
}

// The attribute types a profile allows, in its order; the last `optional_tail` may be left out.
struct Layout {
  std::string_view rule_prefix;
  std::vector<std::string_view> types;
};


// PREFIX-NO-EXTRA: attributes the layout does not have, or more of a type than it has.
// PREFIX-ORDER: the allowed attributes that are there come in the layout's order. Missing ones are
// left to the presence rules, so one mistake is reported once.
void lint_layout(const SubjectView& subject, const Layout& layout, const std::string& layout_text,
                 std::vector<Finding>& findings) {
  std::map<std::string_view, int> allowed;
  for (auto type : layout.types) ++allowed[type];
  std::map<std::string, int> used;
  std::vector<std::string> kept;
  const auto& entries = subject.entries();
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& type = entries[i].type;
    const auto limit = allowed.find(type);
    if (limit == allowed.end() || used[type] >= limit->second) {
      findings.push_back({std::string(layout.rule_prefix) + "-NO-EXTRA", subject.label(i),
                          type + "=" + in_quotes(entries[i].value), "only " + layout_text});
      continue;
    }
    ++used[type];
    kept.push_back(type);
  }
  std::vector<std::string> expected;
  std::map<std::string, int> placed;
  for (auto type : layout.types) {
    const std::string name(type);
    if (placed[name] < used[name]) {
      ++placed[name];
      expected.push_back(name);
    }
  }
  if (kept != expected) {
    auto text = [](const std::vector<std::string>& types) {
      std::string out;
      for (const auto& type : types) out += (out.empty() ? "" : ", ") + type;
      return out;
    };
    findings.push_back({std::string(layout.rule_prefix) + "-ORDER", "subject", text(kept),
                        text(expected) + " (the profile's order: " + layout_text + ")"});
  }
}

void require_value(const SubjectView& subject, std::string_view rule, std::string_view type, std::string_view expected,
                   std::vector<Finding>& findings) {
  const NameEntry* entry = subject.nth(type);
  if (entry == nullptr || entry->value != expected) {
    findings.push_back({std::string(rule), std::string(type), found_value(entry), in_quotes(expected)});
  }
}

void require_present(const SubjectView& subject, std::string_view rule, std::string_view type, std::string_view what,
                     std::vector<Finding>& findings) {
  const NameEntry* entry = subject.nth(type);
  if (entry == nullptr || entry->value.empty()) {
    findings.push_back({std::string(rule), std::string(type), found_value(entry), std::string(what)});
  }
}

// Seed 000: "This shouldn't be abbreviated." A value is taken as abbreviated when it is at most
// three characters, all capitals of at most four letters, contains a dot, or is an ISO 3166-2:BE
// region or province code (BRU, VLG, WAL, VAN, VBR, VLI, VOV, VWV, WBR, WHT, WLG, WLX, WNA), with
// or without the BE- prefix.
bool abbreviated_region(std::string_view value) {
  static constexpr std::array codes{"BRU", "VLG", "WAL", "VAN", "VBR", "VLI", "VOV",
                                    "VWV", "WBR", "WHT", "WLG", "WLX", "WNA"};
  std::string upper;
  for (char c : value) upper.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  if (upper.starts_with("BE-")) upper = upper.substr(3);
  if (std::find(codes.begin(), codes.end(), upper) != codes.end()) return true;
  if (utf8_length(value) <= 3) return true;
  if (value.find('.') != std::string_view::npos) return true;
  const bool capitals = std::all_of(value.begin(), value.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
  return capitals && value.size() <= 4;
}

void lint_be_ebox(const SubjectView& subject, std::vector<Finding>& findings) {
  const Layout layout{"BE-EBOX", {"C", "O", "OU", "OU", "OU", "CN", "L", "ST"}};
  lint_layout(subject, layout, "C, O, OU, OU, OU, CN, L, ST", findings);
  require_value(subject, "BE-EBOX-C", "C", "BE", findings);
  require_present(subject, "BE-EBOX-O", "O", "the legal name of the organisation", findings);

  const NameEntry* ou1 = subject.nth("OU", 1);
  if (ou1 == nullptr || ou1->value != "Belgian Federal Government") {
    findings.push_back({"BE-EBOX-OU1-FEDERAL-GOVERNMENT", "OU#1", found_value(ou1), "\"Belgian Federal Government\""});
  }
  const NameEntry* ou2 = subject.nth("OU", 2);
  const std::string urn_expected = std::string(cbe_urn_prefix) + "NNNNNNNNNN (the 10-digit CBE number, no dots or spaces)";
  if (ou2 == nullptr || !ou2->value.starts_with(cbe_urn_prefix)) {
    findings.push_back({"BE-EBOX-OU2-CBE-URN", "OU#2", found_value(ou2), urn_expected});
  } else {
    const std::string cbe = ou2->value.substr(cbe_urn_prefix.size());
    const bool ten_digits = cbe.size() == 10 && std::all_of(cbe.begin(), cbe.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!ten_digits) {
      findings.push_back({"BE-EBOX-OU2-CBE-URN", "OU#2", in_quotes(ou2->value), urn_expected});
    } else if (auto problem = cbe_problem(cbe)) {
      findings.push_back({"BE-EBOX-OU2-CBE-CHECK", "OU#2", "CBE number " + cbe, "a valid CBE number: " + *problem});
    }
  }
  const NameEntry* ou3 = subject.nth("OU", 3);
  if (ou3 == nullptr || (ou3->value != "PRD" && ou3->value != "ACC" && ou3->value != "INT")) {
    findings.push_back({"BE-EBOX-OU3-ENVIRONMENT", "OU#3", found_value(ou3), "one of PRD, ACC, INT"});
  }
  static const std::regex application_urn("[A-Za-z0-9._-]+(:[A-Za-z0-9._-]+)+");
  const NameEntry* cn = subject.nth("CN");
  if (cn == nullptr || !std::regex_match(cn->value, application_urn)) {
    findings.push_back({"BE-EBOX-CN-APPLICATION-URN", "CN", found_value(cn),
                        "the application id URN from the request document: colon-separated segments of letters, digits, "
                        ". _ - (e.g. employment:job-attest:werkkaart)"});
  }
  require_present(subject, "BE-EBOX-L", "L", "the city of the organisation (e.g. Sint-Gillis)", findings);
  const NameEntry* st = subject.nth("ST");
  if (st == nullptr || st->value.empty()) {
    findings.push_back({"BE-EBOX-ST", "ST", found_value(st), "the region, written out (e.g. Brussel-Hoofdstad)"});
  } else if (abbreviated_region(st->value)) {
    findings.push_back({"BE-EBOX-ST-WRITTEN-OUT", "ST", in_quotes(st->value),
                        "the region written out, not abbreviated (e.g. Brussel-Hoofdstad, not BRU)"});
  }
}

bool dns_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  std::vector<std::string_view> labels;
  std::size_t start = 0;
  while (true) {
    const auto dot = name.find('.', start);
    labels.push_back(name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (labels.size() < 2) return false;
  for (auto label : labels) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    const bool ldh = std::all_of(label.begin(), label.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-';
    });
    if (!ldh) return false;
  }
  const auto top = labels.back();
  return !std::all_of(top.begin(), top.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void lint_oin(const SubjectView& subject, std::string_view rule, bool required, std::vector<Finding>& findings) {
  const NameEntry* serial = subject.nth("serialNumber");
  if (serial == nullptr) {
    if (required) {
      findings.push_back({std::string(rule), "serialNumber", std::string(absent),
                          "a 20-digit OIN or HRN (00000003 + KvK number + 0000)"});
    }
  } else if (auto problem = oin_problem(serial->value)) {
    findings.push_back({std::string(rule), "serialNumber", in_quotes(serial->value), "a valid OIN/HRN: " + *problem});
  }
}

void lint_pkio_server(const SubjectView& subject, std::vector<Finding>& findings) {
  lint_layout(subject, {"PKIO-SERVER", {"C", "O", "CN", "serialNumber"}}, "C, O, CN, serialNumber", findings);
  require_value(subject, "PKIO-SERVER-C", "C", "NL", findings);
  require_present(subject, "PKIO-SERVER-O", "O", "the organisation's full legal name", findings);
  const NameEntry* cn = subject.nth("CN");
  if (cn == nullptr || !dns_name(cn->value)) {
    findings.push_back({"PKIO-SERVER-CN-DNS-NAME", "CN", found_value(cn),
                        "a DNS name: your own domain or {organisation}.qvtl.nl (letters, digits, hyphens; no wildcard)"});
  }
  lint_oin(subject, "PKIO-SERVER-SERIALNUMBER-OIN", true, findings);
}

void lint_pkio_eseal(const SubjectView& subject, std::vector<Finding>& findings) {
  lint_layout(subject, {"PKIO-ESEAL", {"C", "O", "organizationIdentifier", "CN", "serialNumber"}},
              "C, O, organizationIdentifier, CN, optional serialNumber", findings);
  require_value(subject, "PKIO-ESEAL-C", "C", "NL", findings);
  require_present(subject, "PKIO-ESEAL-O", "O", "the organisation's full legal name", findings);
  static const std::regex ntrnl("NTRNL-[0-9]{8}");
  const NameEntry* identifier = subject.nth("organizationIdentifier");
  if (identifier == nullptr || !std::regex_match(identifier->value, ntrnl)) {
    findings.push_back({"PKIO-ESEAL-ORGID-NTRNL", "organizationIdentifier", found_value(identifier),
                        "NTRNL- followed by the 8-digit KvK number (ETSI EN 319 412-1)"});
  }
  const NameEntry* organization = subject.nth("O");
  if (identifier != nullptr && organization != nullptr && identifier->value == organization->value) {
    findings.push_back({"PKIO-ESEAL-ORGID-DIFFERS-FROM-O", "organizationIdentifier", in_quotes(identifier->value),
                        "a value different from O (EN 319 412-3 LEG-4.2.1-6)"});
  }
  require_present(subject, "PKIO-ESEAL-CN", "CN", "the seal's name", findings);
  lint_oin(subject, "PKIO-ESEAL-SERIALNUMBER-OIN", false, findings);
}

std::string curve_name(const EVP_PKEY* key) {
  char name[64] = {};
  std::size_t length = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &length) != 1) return "";
  return name;
}

// Whether the signature algorithm is SHA-256 based: sha256WithRSAEncryption, ecdsa-with-SHA256,
// or RSASSA-PSS with SHA-256 and MGF1-SHA-256. `found` says what it is.
bool sha256_signature(const X509_ALGOR* algorithm, std::string& found) {
  const ASN1_OBJECT* object = nullptr;
  int parameter_type = 0;
  const void* parameter = nullptr;
  X509_ALGOR_get0(&object, &parameter_type, &parameter, algorithm);
  const int nid = OBJ_obj2nid(object);
  found = nid != NID_undef ? OBJ_nid2ln(nid) : "an unknown algorithm";
  if (nid == NID_sha256WithRSAEncryption || nid == NID_ecdsa_with_SHA256) return true;
  if (nid != NID_rsassaPss) return false;
  if (parameter_type != V_ASN1_SEQUENCE) return false;
  const ASN1_STRING* sequence = static_cast<const ASN1_STRING*>(parameter);
  const unsigned char* data = ASN1_STRING_get0_data(sequence);
  std::unique_ptr<RSA_PSS_PARAMS, ossl::Deleter<RSA_PSS_PARAMS_free>> params(
      d2i_RSA_PSS_PARAMS(nullptr, &data, ASN1_STRING_length(sequence)));
  if (!params) return false;
  const int hash = params->hashAlgorithm != nullptr ? OBJ_obj2nid(params->hashAlgorithm->algorithm) : NID_sha1;
  // maskGenAlgorithm is mgf1 with the hash's AlgorithmIdentifier as its parameter; absent means mgf1-SHA-1.
  int mgf1_hash = NID_sha1;
  if (const X509_ALGOR* mask = params->maskGenAlgorithm; mask != nullptr) {
    mgf1_hash = NID_undef;
    if (OBJ_obj2nid(mask->algorithm) == NID_mgf1 && mask->parameter != nullptr) {
      ossl::X509AlgorPtr mask_hash(static_cast<X509_ALGOR*>(ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(X509_ALGOR), mask->parameter)));
      if (mask_hash) mgf1_hash = OBJ_obj2nid(mask_hash->algorithm);
    }
  }
  found = std::string("RSASSA-PSS with ") + OBJ_nid2sn(hash) + " and MGF1-" + OBJ_nid2sn(mgf1_hash);
  return hash == NID_sha256 && mgf1_hash == NID_sha256;
}

}  // namespace

std::string describe_key(const EVP_PKEY* key) {
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
      return "RSA " + std::to_string(EVP_PKEY_get_bits(key));
    case EVP_PKEY_RSA_PSS:
      return "RSA-PSS " + std::to_string(EVP_PKEY_get_bits(key));
    case EVP_PKEY_EC: {
      const std::string curve = curve_name(key);
      if (curve == "prime256v1") return "EC P-256";
      if (curve == "secp384r1") return "EC P-384";
      return "EC " + (curve.empty() ? std::string("(unknown curve)") : curve);
    }
    default:
      break;
  }
  const char* type = EVP_PKEY_get0_type_name(key);
  return type != nullptr ? type : "an unknown key type";
}

std::vector<Finding> lint_subject(Profile profile, const X509_NAME* name) {
  std::vector<Finding> findings;
  const SubjectView subject(name);
  lint_x509_limits(subject, findings);
  switch (profile) {
    case Profile::be_ebox:
      lint_be_ebox(subject, findings);
      break;
    case Profile::pkio_server:
      lint_pkio_server(subject, findings);
      break;
    case Profile::pkio_eseal:
      lint_pkio_eseal(subject, findings);
      break;
    case Profile::generic:
      if (subject.entries().empty()) {
        findings.push_back({"X509-EMPTY-SUBJECT", "subject", "no attributes", "at least one attribute"});
      }
      break;
  }
  return findings;
}

std::vector<Finding> lint_key(Profile profile, const EVP_PKEY* key) { return lint_key(profile, describe_key(key)); }

std::vector<Finding> lint_key(Profile profile, const std::string& found) {
  std::vector<Finding> findings;
  const bool rsa = found == "RSA 2048" || found == "RSA 3072" || found == "RSA 4096";
  const bool ec = found == "EC P-256" || found == "EC P-384";
  switch (profile) {
    case Profile::pkio_server:
      if (!rsa) findings.push_back({"PKIO-SERVER-KEY-RSA", "public key", found, "RSA 2048/3072/4096 is required"});
      break;
    case Profile::be_ebox:
      if (!rsa && !ec) findings.push_back({"BE-EBOX-KEY", "public key", found, "RSA 2048/3072/4096 or EC P-256/P-384"});
      break;
    case Profile::pkio_eseal:
      if (!rsa && !ec) findings.push_back({"PKIO-ESEAL-KEY", "public key", found, "RSA 2048/3072/4096 or EC P-256/P-384"});
      break;
    case Profile::generic:
      break;
  }
  return findings;
}

std::vector<Finding> lint_request(Profile profile, const X509_REQ* request) {
  std::vector<Finding> findings;
  if (const long version = X509_REQ_get_version(request); version != X509_REQ_VERSION_1) {
    findings.push_back({"CSR-VERSION", "version", std::to_string(version), "0 (PKCS#10 v1)"});
  }
  auto subject = lint_subject(profile, X509_REQ_get_subject_name(request));
  findings.insert(findings.end(), subject.begin(), subject.end());

  const ASN1_BIT_STRING* signature = nullptr;
  const X509_ALGOR* algorithm = nullptr;
  X509_REQ_get0_signature(request, &signature, &algorithm);
  std::string found;
  if (!sha256_signature(algorithm, found)) {
    findings.push_back({"CSR-SIGNATURE-SHA256", "signature algorithm", found,
                        "sha256WithRSAEncryption, RSASSA-PSS with SHA-256 and MGF1-SHA-256, or ecdsa-with-SHA256"});
  }
  // X509_REQ_get0_pubkey and X509_REQ_verify take non-const pointers but only read.
  auto* mutable_request = const_cast<X509_REQ*>(request);
  EVP_PKEY* key = X509_REQ_get0_pubkey(mutable_request);
  if (key == nullptr) {
    ERR_clear_error();
    findings.push_back({"CSR-PUBLIC-KEY", "public key", "a key OpenSSL cannot decode", "an RSA or EC public key"});
    return findings;
  }
  auto key_findings = lint_key(profile, key);
  findings.insert(findings.end(), key_findings.begin(), key_findings.end());
  if (X509_REQ_verify(mutable_request, key) != 1) {
    findings.push_back({"CSR-SIGNATURE-VALID", "signature", "a signature that does not verify (" + ossl::error_text() + ")",
                        "a signature made by the private key of the request's public key"});
  }
  return findings;
}

ossl::X509ReqPtr parse_request(std::span<const unsigned char> bytes, const std::string& origin) {
  ossl::BioPtr bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
  if (ossl::X509ReqPtr request(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr)); request) return request;
  ERR_clear_error();
  const unsigned char* data = bytes.data();
  ossl::X509ReqPtr request(d2i_X509_REQ(nullptr, &data, static_cast<long>(bytes.size())));
  if (!request || data != bytes.data() + bytes.size()) {
    ERR_clear_error();
    throw UsageError(origin, "not a PKCS#10 certificate request (PEM or DER)");
  }
  return request;
}

}  // namespace qscd::agent::csr
