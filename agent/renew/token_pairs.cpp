#include "renew/token_pairs.hpp"

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <algorithm>
#include <ctime>

#include "base/errors.hpp"
#include "certs/certbundle.hpp"
#include "qscd/pkcs11/attributes.hpp"

namespace qscd::agent {

namespace {

std::string text_of(const p11::Bytes& bytes) { return {bytes.begin(), bytes.end()}; }

std::string key_type_of(EVP_PKEY* key) {
  if (EVP_PKEY_base_id(key) == EVP_PKEY_RSA) return "rsa:" + std::to_string(EVP_PKEY_get_bits(key));
  char group[64] = {};
  std::size_t length = 0;
  if (EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof group, &length) == 1) {
    const std::string name(group, length);
    if (name == "prime256v1" || name == "P-256") return "ec:p256";
    if (name == "secp384r1" || name == "P-384") return "ec:p384";
    return "ec:" + name;
  }
  return "unknown";
}

// The end-entity certificates under `id`, the latest-ending first.
std::vector<ossl::X509Ptr> certificates_with_id(const p11::Session& session, const p11::Bytes& id) {
  p11::AttributeTemplate query;
  query.object_class(CKO_CERTIFICATE).certificate_type(CKC_X_509).token(true).id(id);
  std::vector<ossl::X509Ptr> out;
  for (p11::ObjectHandle object : session.find(query)) {
    const auto value = session.bytes(object, CKA_VALUE).value_or(p11::Bytes{});
    const unsigned char* p = value.data();
    ossl::X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(value.size())));
    if (cert) out.push_back(std::move(cert));
  }
  std::sort(out.begin(), out.end(), [](const ossl::X509Ptr& a, const ossl::X509Ptr& b) {
    return ASN1_TIME_compare(X509_get0_notAfter(a.get()), X509_get0_notAfter(b.get())) > 0;
  });
  return out;
}

TokenPair make_pair(const p11::Session& session, p11::ObjectHandle key, const p11::Bytes& id, ossl::X509Ptr certificate) {
  TokenPair pair;
  pair.private_key = key;
  pair.id_hex = p11::to_hex(id);
  pair.label = text_of(session.bytes(key, CKA_LABEL).value_or(p11::Bytes{}));
  pair.serial = serial_hex(certificate.get());
  pair.not_before = asn1_time(X509_get0_notBefore(certificate.get()));
  pair.not_after = asn1_time(X509_get0_notAfter(certificate.get()));
  pair.key_type = key_type_of(X509_get0_pubkey(certificate.get()));
  pair.certificate = std::move(certificate);
  return pair;
}

}  // namespace

SystemTime asn1_time(const ASN1_TIME* time) {
  std::tm tm{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) return SystemTime{};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::vector<TokenPair> token_pairs(const p11::Session& session) {
  p11::AttributeTemplate query;
  query.object_class(CKO_PRIVATE_KEY).token(true);
  std::vector<TokenPair> pairs;
  for (p11::ObjectHandle key : session.find(query)) {
    const p11::Bytes id = session.bytes(key, CKA_ID).value_or(p11::Bytes{});
    if (id.empty()) continue;  // no certificate can be tied to it
    auto certificates = certificates_with_id(session, id);
    if (certificates.empty()) continue;
    TokenPair pair = make_pair(session, key, id, std::move(certificates.front()));
    if (pair.label.ends_with(superseded_suffix)) continue;
    pairs.push_back(std::move(pair));
  }
  std::sort(pairs.begin(), pairs.end(), [](const TokenPair& a, const TokenPair& b) {
    return a.label != b.label ? a.label < b.label : a.id_hex < b.id_hex;
  });
  return pairs;
}

std::optional<TokenPair> find_pair(const p11::Session& session, const std::string& id_hex, const std::string& serial) {
  const p11::Bytes id = p11::parse_hex_id(id_hex);
  p11::AttributeTemplate query;
  query.object_class(CKO_PRIVATE_KEY).token(true).id(id);
  const auto keys = session.find(query);
  if (keys.empty()) return std::nullopt;
  for (ossl::X509Ptr& certificate : certificates_with_id(session, id)) {
    if (serial_hex(certificate.get()) == serial) return make_pair(session, keys.front(), id, std::move(certificate));
  }
  return std::nullopt;
}

csr::Subject subject_of(const X509* certificate) {
  const X509_NAME* name = X509_get_subject_name(certificate);
  csr::Subject subject;
  for (int i = 0; i < X509_NAME_entry_count(name); ++i) {
    const X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
    const int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry));
    const csr::AttributeType* type = csr::find_attribute_type(nid);
    if (type == nullptr) {
      throw UsageError("subject", "the certificate's subject holds " + std::string(nid == NID_undef ? "an unknown attribute" : OBJ_nid2sn(nid)) +
                                      ", which a renewal CSR cannot carry (C, O, OU, CN, L, ST, serialNumber, organizationIdentifier)");
    }
    unsigned char* utf8 = nullptr;
    const int length = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
    if (length < 0) throw UsageError("subject", "the certificate's " + std::string(type->name) + " is not readable text");
    subject.push_back({std::string(type->name), std::string(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(length))});
    OPENSSL_free(utf8);
  }
  return subject;
}

}  // namespace qscd::agent
