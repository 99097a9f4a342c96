#include "certs/install.hpp"

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>

#include "qscd/pkcs11/keys.hpp"

namespace qscd::agent {

namespace {

template <typename T, typename Encode>
p11::Bytes der_of(const T* object, Encode encode) {
  int length = encode(object, nullptr);
  if (length <= 0) throw std::runtime_error("cannot DER-encode a certificate field");
  p11::Bytes der(static_cast<std::size_t>(length));
  unsigned char* p = der.data();
  encode(object, &p);
  return der;
}

p11::Bytes subject_der(X509* cert) { return der_of(X509_get_subject_name(cert), i2d_X509_NAME); }
p11::Bytes issuer_der(X509* cert) { return der_of(X509_get_issuer_name(cert), i2d_X509_NAME); }
p11::Bytes serial_der(X509* cert) { return der_of(X509_get0_serialNumber(cert), i2d_ASN1_INTEGER); }
p11::Bytes cert_der(X509* cert) { return der_of(cert, i2d_X509); }

std::string common_name(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) return subject_line(name);
  unsigned char* utf8 = nullptr;
  int length = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index)));
  if (length < 0) return subject_line(name);
  std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(length));
  OPENSSL_free(utf8);
  return out;
}

ossl::X509Ptr parse_value(const p11::Bytes& der) {
  const unsigned char* p = der.data();
  ossl::X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  ERR_clear_error();
  return cert;
}

// Asked in a session that holds no staged session object (create_on_token destroys its own
// before it returns), so every object found whose CKA_TOKEN says false is a stale copy in the
// token's store: SoftHSM2's C_CopyObject writes the copy before it applies CKA_TOKEN true, and a
// kill between leaves it (docs/reliability.md). is_stale tells them apart; the callers remove them.
std::vector<p11::ObjectHandle> certificates_with_id(const p11::Session& session, const p11::Bytes& id) {
  p11::AttributeTemplate query;
  query.object_class(CKO_CERTIFICATE).certificate_type(CKC_X_509).id(id);
  return session.find(query);
}

// Token objects only, for reading back what this session wrote: a staged session object the
// module could not destroy is still visible here.
std::vector<p11::ObjectHandle> token_certificates_with_id(const p11::Session& session, const p11::Bytes& id) {
  p11::AttributeTemplate query;
  query.object_class(CKO_CERTIFICATE).certificate_type(CKC_X_509).token(true).id(id);
  return session.find(query);
}

bool is_stale(const p11::Session& session, p11::ObjectHandle object) {
  return session.flag(object, CKA_TOKEN) == false;
}

std::vector<p11::ObjectHandle> certificates_by_issuer_serial(const p11::Session& session, X509* cert, bool token_only = false) {
  p11::AttributeTemplate query;
  auto issuer = issuer_der(cert);
  auto serial = serial_der(cert);
  query.object_class(CKO_CERTIFICATE).certificate_type(CKC_X_509).issuer(issuer).serial_number(serial);
  if (token_only) query.token(true);
  return session.find(query);
}

std::vector<p11::ObjectHandle> token_certificates_by_issuer_serial(const p11::Session& session, X509* cert) {
  return certificates_by_issuer_serial(session, cert, true);
}

bool has_value(const p11::Session& session, p11::ObjectHandle object, const p11::Bytes& der) {
  return session.bytes(object, CKA_VALUE) == der;
}

p11::ObjectHandle create_certificate(p11::Session& session, X509* cert, CK_ULONG category, const p11::Bytes* id,
                                     const std::string& label) {
  auto subject = subject_der(cert);
  auto issuer = issuer_der(cert);
  auto serial = serial_der(cert);
  auto value = cert_der(cert);
  p11::AttributeTemplate object;
  object.object_class(CKO_CERTIFICATE)
      .certificate_type(CKC_X_509)
      .certificate_category(category)
      .token(true)
      .private_(false)
      .label(label)
      .subject(subject)
      .issuer(issuer)
      .serial_number(serial)
      .value(value);
  if (id != nullptr) object.id(*id);
  return session.create_on_token(object);
}

}  // namespace

TokenKey find_token_key(const p11::Session& session, const p11::Uri& key_uri) {
  TokenKey key;
  try {
    key.handle = p11::select_object(session, key_uri, CKO_PUBLIC_KEY, p11::UriClass::ignored);
  } catch (const p11::NotFound&) {
    if (!session.logged_in()) throw;
    key.handle = p11::select_object(session, key_uri, CKO_PRIVATE_KEY);
  }
  p11::KeyDescription description = p11::describe_key(session, key.handle);
  if (description.id.empty()) {
    throw UsageError("--key", key_uri.text() + " names a key without CKA_ID; its certificate could not be tied to it");
  }
  key.id = description.id;
  key.label = description.label;
  key.public_key.reset(p11::public_key(session, key.handle).release());
  return key;
}

std::string PreparedInstall::chain_pem() const {
  std::string pem = to_pem(end_entity.get());
  for (const auto& cert : intermediates) pem += to_pem(cert.get());
  return pem;
}

PreparedInstall prepare_install(std::vector<ossl::X509Ptr> certificates, EVP_PKEY* token_key,
                                const std::optional<std::filesystem::path>& trust_file,
                                const IssuanceExpectations& expected) {
  CertBundle bundle = select_for_key(std::move(certificates), token_key);
  PreparedInstall prepared;
  try {
    prepared.intermediates = intermediates_of(verify_chain(bundle, trust_file));
    prepared.chain_verified = true;
  } catch (const ChainNotTrusted& e) {
    if (trust_file) throw;
    // product.md: only a given trust file makes an unverified chain a refusal.
    prepared.chain_warning = e.what();
    prepared.intermediates = issuers_in_bundle(bundle);
  }
  prepared.report = check_issued(bundle.end_entity.get(), token_key, expected);
  require_installable(prepared.report);
  prepared.end_entity = std::move(bundle.end_entity);
  return prepared;
}

InstallResult install_certificates(p11::Session& session, const TokenKey& key, X509* end_entity,
                                   const std::vector<ossl::X509Ptr>& intermediates) {
  if (EVP_PKEY_eq(X509_get0_pubkey(end_entity), key.public_key.get()) != 1) {
    ERR_clear_error();
    throw CertificateNotForKey("the certificate is not for this key: " +
                               subject_line(X509_get_subject_name(end_entity)) + " does not have the public key of " +
                               "the key with CKA_ID " + p11::to_hex(key.id));
  }
  InstallResult result;
  const auto value = cert_der(end_entity);

  // The end entity: by the key's CKA_ID. An identical object means a rerun.
  std::vector<p11::ObjectHandle> same_id = certificates_with_id(session, key.id);
  auto identical = std::find_if(same_id.begin(), same_id.end(), [&](p11::ObjectHandle object) {
    return has_value(session, object, value) && !is_stale(session, object);
  });
  result.end_entity = {subject_line(X509_get_subject_name(end_entity)), serial_hex(end_entity), false};
  if (identical == same_id.end()) {
    create_certificate(session, end_entity, 1, &key.id, key.label);
    result.end_entity.created = true;
  }
  // Older certificates for this key go only after the new one is on the token,
  // so the key is never left without a certificate; a second identical copy goes too.
  bool kept = false;
  for (p11::ObjectHandle object : same_id) {
    if (!kept && identical != same_id.end() && object == *identical) {
      kept = true;
      continue;
    }
    session.destroy(object);
    ++result.replaced;
  }

  for (const auto& intermediate : intermediates) {
    InstalledCertificate installed{subject_line(X509_get_subject_name(intermediate.get())),
                                   serial_hex(intermediate.get()), false};
    bool present = false;
    for (p11::ObjectHandle object : certificates_by_issuer_serial(session, intermediate.get())) {
      if (is_stale(session, object)) {
        session.destroy(object);
      } else {
        present = true;
      }
    }
    if (!present) {
      create_certificate(session, intermediate.get(), 2, nullptr, common_name(intermediate.get()));
      installed.created = true;
    }
    result.intermediates.push_back(std::move(installed));
  }
  read_back(session, key, end_entity, intermediates);
  return result;
}

void read_back(const p11::Session& session, const TokenKey& key, X509* end_entity,
               const std::vector<ossl::X509Ptr>& intermediates) {
  std::vector<p11::ObjectHandle> same_id = token_certificates_with_id(session, key.id);
  const std::string id_hex = p11::to_hex(key.id);
  if (same_id.size() != 1) {
    throw p11::Error("read back: " + std::to_string(same_id.size()) + " certificates with CKA_ID " + id_hex +
                     " on the token, expected 1");
  }
  // Value and category in one read.
  static constexpr CK_ATTRIBUTE_TYPE read_types[] = {CKA_VALUE, CKA_CERTIFICATE_CATEGORY};
  const std::vector<p11::Attribute> read = session.attributes(same_id[0], read_types);
  if (!read[0].present() || read[0].value != cert_der(end_entity)) {
    throw p11::Error("read back: the certificate with CKA_ID " + id_hex + " is not the one written");
  }
  ossl::X509Ptr parsed = parse_value(read[0].value);
  if (!parsed || EVP_PKEY_eq(X509_get0_pubkey(parsed.get()), key.public_key.get()) != 1) {
    ERR_clear_error();
    throw p11::Error("read back: the certificate with CKA_ID " + id_hex + " does not hold the key's public key");
  }
  if (!read[1].present() || read[1].value.size() != sizeof(CK_ULONG) || read[1].as_ulong() != CK_ULONG{1}) {
    throw p11::Error("read back: the certificate with CKA_ID " + id_hex + " is not CKA_CERTIFICATE_CATEGORY 1");
  }
  for (const auto& intermediate : intermediates) {
    auto found = token_certificates_by_issuer_serial(session, intermediate.get());
    std::string name = subject_line(X509_get_subject_name(intermediate.get()));
    if (found.size() != 1) {
      throw p11::Error("read back: " + std::to_string(found.size()) + " copies of " + name + " on the token, expected 1");
    }
    if (!has_value(session, found[0], cert_der(intermediate.get()))) {
      throw p11::Error("read back: the stored " + name + " differs from the chain's");
    }
  }
}

std::vector<ossl::X509Ptr> stored_chain(const p11::Session& session, const TokenKey& key) {
  std::vector<ossl::X509Ptr> chain;
  for (p11::ObjectHandle object : token_certificates_with_id(session, key.id)) {
    auto value = session.bytes(object, CKA_VALUE);
    if (!value) continue;
    ossl::X509Ptr cert = parse_value(*value);
    if (cert && EVP_PKEY_eq(X509_get0_pubkey(cert.get()), key.public_key.get()) == 1) {
      chain.push_back(std::move(cert));
      break;
    }
    ERR_clear_error();
  }
  if (chain.empty()) {
    throw p11::NotFound("no certificate for the key with CKA_ID " + p11::to_hex(key.id) + " on token '" +
                            session.site().token_label + "'",
                        "");
  }
  // Up the issuers the token holds; a loop guard, since a token may hold anything.
  while (chain.size() < 16) {
    X509* last = chain.back().get();
    if (X509_self_signed(last, 0) == 1) break;
    p11::AttributeTemplate query;
    auto issuer = issuer_der(last);
    query.object_class(CKO_CERTIFICATE).certificate_type(CKC_X_509).subject(issuer);
    ossl::X509Ptr next;
    for (p11::ObjectHandle object : session.find(query)) {
      auto value = session.bytes(object, CKA_VALUE);
      if (!value) continue;
      ossl::X509Ptr candidate = parse_value(*value);
      if (candidate && X509_check_issued(candidate.get(), last) == X509_V_OK) {
        next = std::move(candidate);
        break;
      }
    }
    if (!next) break;
    chain.push_back(std::move(next));
  }
  ERR_clear_error();
  return chain;
}

}  // namespace qscd::agent
