#include "qscd/api/csr.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

#include "qscd/api/error.hpp"

namespace qscd::api {

namespace {
struct BioFree {
  void operator()(BIO* bio) const noexcept { BIO_free(bio); }
};
struct ReqFree {
  void operator()(X509_REQ* req) const noexcept { X509_REQ_free(req); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const noexcept { EVP_PKEY_free(key); }
};
}  // namespace

CsrInfo inspect_csr(std::string_view pem, const std::string& field) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::unique_ptr<X509_REQ, ReqFree> req(bio ? PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!req) throw ValidationError(field, "must be a PEM PKCS#10 certificate request (-----BEGIN CERTIFICATE REQUEST-----)");
  std::unique_ptr<EVP_PKEY, KeyFree> key(X509_REQ_get_pubkey(req.get()));
  if (!key) throw ValidationError(field, "the request's public key cannot be read");
  CsrInfo info;
  const char* type = EVP_PKEY_get0_type_name(key.get());
  info.key_type = type != nullptr ? type : "unknown";
  info.key_bits = EVP_PKEY_get_bits(key.get());
  info.signature_valid = X509_REQ_verify(req.get(), key.get()) == 1;
  X509_NAME* subject = X509_REQ_get_subject_name(req.get());
  int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index >= 0) {
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
    unsigned char* utf8 = nullptr;
    int length = ASN1_STRING_to_UTF8(&utf8, data);
    if (length >= 0) {
      info.common_name.assign(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(length));
      OPENSSL_free(utf8);
    }
  }
  return info;
}

}  // namespace qscd::api
