#pragma once
// Test-only OpenSSL helpers: software keys and CSRs to feed the client and the
// simulator, and checks on what comes back. Header-only.
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace qscd::test {

struct PkeyFree {
  void operator()(EVP_PKEY* key) const noexcept { EVP_PKEY_free(key); }
};
struct CertFree {
  void operator()(X509* cert) const noexcept { X509_free(cert); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

inline Pkey make_key(const std::string& type = "RSA", std::size_t bits = 2048) {
  EVP_PKEY* key = type == "RSA" ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits)
                                : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (key == nullptr) throw std::runtime_error("keygen failed");
  return Pkey(key);
}

// A PEM CSR signed with SHA-256 for `key`, subject in the given order.
inline std::string make_csr(EVP_PKEY* key, const std::vector<std::pair<std::string, std::string>>& subject) {
  std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(X509_REQ_new(), X509_REQ_free);
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  for (const auto& [field, value] : subject) {
    X509_NAME_add_entry_by_txt(name, field.c_str(), MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1, 0);
  }
  X509_REQ_set_pubkey(req.get(), key);
  if (X509_REQ_sign(req.get(), key, EVP_sha256()) <= 0) throw std::runtime_error("CSR signing failed");
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_X509_REQ(bio.get(), req.get());
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(length)};
}

inline std::string make_csr(EVP_PKEY* key, const std::string& common_name) {
  return make_csr(key, {{"C", "NL"}, {"O", "Voorbeeld Organisatie B.V."}, {"CN", common_name}});
}

// Every certificate in a PEM bundle, in order.
inline std::vector<Cert> read_pem_certs(const std::string& pem) {
  std::vector<Cert> out;
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(cert);
  return out;
}

inline std::vector<Cert> read_p7b_certs(const std::string& pem) {
  std::vector<Cert> out;
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  std::unique_ptr<PKCS7, decltype(&PKCS7_free)> p7(PEM_read_bio_PKCS7(bio.get(), nullptr, nullptr, nullptr), PKCS7_free);
  if (!p7 || !PKCS7_type_is_signed(p7.get())) return out;
  STACK_OF(X509)* certs = p7->d.sign->cert;
  for (int i = 0; i < sk_X509_num(certs); ++i) {
    X509* cert = sk_X509_value(certs, i);
    X509_up_ref(cert);
    out.emplace_back(cert);
  }
  return out;
}

// Verifies chain[0] up to the root(s) in `roots_pem`, with chain[1..] as untrusted intermediates.
inline bool chain_verifies(const std::vector<Cert>& chain, const std::string& roots_pem) {
  if (chain.empty()) return false;
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
  for (auto& root : read_pem_certs(roots_pem)) X509_STORE_add_cert(store.get(), root.get());
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  for (std::size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted, chain[i].get());
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(), X509_STORE_CTX_free);
  X509_STORE_CTX_init(ctx.get(), store.get(), chain[0].get(), untrusted);
  bool ok = X509_verify_cert(ctx.get()) == 1;
  sk_X509_free(untrusted);
  return ok;
}

inline bool same_key(X509* cert, EVP_PKEY* key) { return EVP_PKEY_eq(X509_get0_pubkey(cert), key) == 1; }

inline bool has_extension(X509* cert, const char* oid) {
  std::unique_ptr<ASN1_OBJECT, decltype(&ASN1_OBJECT_free)> obj(OBJ_txt2obj(oid, 1), ASN1_OBJECT_free);
  return X509_get_ext_by_OBJ(cert, obj.get(), -1) >= 0;
}

inline std::string subject_text(X509* cert) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(length)};
}

}  // namespace qscd::test
