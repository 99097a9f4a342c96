#include "test_ca.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/conf.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include <stdexcept>

namespace qscd::test_ca {

namespace {

using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free>>;
using ConfPtr = std::unique_ptr<CONF, Deleter<NCONF_free>>;
using NamePtr = std::unique_ptr<X509_NAME, Deleter<X509_NAME_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using P7Ptr = std::unique_ptr<PKCS7, Deleter<PKCS7_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("test CA: " + what); }

// The sections qc_statements_value names, for ASN1_generate_nconf.
constexpr const char* qc_config = R"(
[qc_statements]
compliance = SEQUENCE:qc_compliance
sscd = SEQUENCE:qc_sscd
type = SEQUENCE:qc_type
[qc_statements_no_sscd]
compliance = SEQUENCE:qc_compliance
type = SEQUENCE:qc_type
[qc_compliance]
id = OID:0.4.0.1862.1.1
[qc_sscd]
id = OID:0.4.0.1862.1.4
[qc_type]
id = OID:0.4.0.1862.1.6
types = SEQUENCE:qc_type_list
[qc_type_list]
eseal = OID:0.4.0.1862.1.6.2
)";

ConfPtr load_conf(const char* text) {
  ConfPtr conf(NCONF_new(nullptr));
  BioPtr bio(BIO_new_mem_buf(text, -1));
  long line = 0;
  if (!conf || !bio || NCONF_load_bio(conf.get(), bio.get(), &line) <= 0) {
    fail("bad extension config at line " + std::to_string(line));
  }
  return conf;
}

void set_name(X509_NAME* name, const Name& entries) {
  for (const auto& [field, value] : entries) {
    if (value.empty()) continue;
    if (X509_NAME_add_entry_by_txt(name, field.c_str(), MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.c_str()),
                                   -1, -1, 0) != 1) {
      fail("cannot put " + field + " in a name");
    }
  }
}

void set_serial(X509* cert, const std::optional<long>& fixed) {
  if (fixed) {
    ASN1_INTEGER_set(X509_get_serialNumber(cert), *fixed);
    return;
  }
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) fail("no random bytes for a serial");
  bytes[0] &= 0x7f;
  BignumPtr bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) fail("cannot set a serial");
}

void sign(X509* cert, EVP_PKEY* key, bool pss) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx || EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key) != 1) fail("cannot start signing");
  if (pss) {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
  }
  if (X509_sign_ctx(cert, ctx.get()) <= 0) fail("cannot sign a certificate");
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long length = BIO_get_mem_data(bio, &data);
  return {data, static_cast<std::size_t>(length)};
}

}  // namespace

KeyPtr ec_key() {
  KeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) fail("cannot generate an EC key");
  return key;
}

KeyPtr rsa_key(std::size_t bits) {
  KeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
  if (!key) fail("cannot generate an RSA key");
  return key;
}

X509Ptr issue(const CertSpec& spec, X509* issuer, EVP_PKEY* issuer_key) {
  X509Ptr cert(X509_new());
  if (!cert) fail("cannot make a certificate");
  X509_set_version(cert.get(), 2);
  set_serial(cert.get(), spec.serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), spec.not_before);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), spec.not_after);
  NamePtr subject(X509_NAME_new());
  set_name(subject.get(), spec.subject);
  X509_set_subject_name(cert.get(), subject.get());
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : subject.get());
  X509_set_pubkey(cert.get(), spec.public_key);

  ConfPtr conf = load_conf(qc_config);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  X509V3_set_nconf(&ctx, conf.get());
  for (const auto& [name, value] : spec.extensions) {
    ExtPtr ext(X509V3_EXT_nconf(conf.get(), &ctx, name.c_str(), value.c_str()));
    if (!ext || X509_add_ext(cert.get(), ext.get(), -1) != 1) fail("cannot add extension " + name + "=" + value);
  }
  sign(cert.get(), issuer_key, spec.rsassa_pss && EVP_PKEY_is_a(issuer_key, "RSA"));
  return cert;
}

std::vector<std::pair<std::string, std::string>> ca_extensions(bool has_issuer) {
  std::vector<std::pair<std::string, std::string>> out{{"basicConstraints", "critical,CA:TRUE"},
                                                        {"keyUsage", "critical,keyCertSign,cRLSign"},
                                                        {"subjectKeyIdentifier", "hash"}};
  if (has_issuer) out.emplace_back("authorityKeyIdentifier", "keyid:always");
  return out;
}

ReqPtr make_csr(EVP_PKEY* key, const Name& subject) {
  ReqPtr req(X509_REQ_new());
  if (!req) fail("cannot make a CSR");
  set_name(X509_REQ_get_subject_name(req.get()), subject);
  X509_REQ_set_pubkey(req.get(), key);
  if (X509_REQ_sign(req.get(), key, EVP_sha256()) <= 0) fail("cannot sign a CSR");
  return req;
}

std::string pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return bio_text(bio.get());
}

std::vector<unsigned char> der(X509* cert) {
  int length = i2d_X509(cert, nullptr);
  if (length <= 0) fail("cannot encode a certificate");
  std::vector<unsigned char> out(static_cast<std::size_t>(length));
  unsigned char* p = out.data();
  i2d_X509(cert, &p);
  return out;
}

X509Ptr parse_cert(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

ReqPtr parse_csr(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return ReqPtr(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
}

std::string p7b(const std::vector<X509*>& certs, bool as_pem) {
  STACK_OF(X509)* stack = sk_X509_new_null();
  for (X509* cert : certs) sk_X509_push(stack, cert);
  P7Ptr p7(PKCS7_sign(nullptr, nullptr, stack, nullptr, PKCS7_PARTIAL));
  sk_X509_free(stack);
  if (!p7) fail("cannot build a PKCS#7 bundle");
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (as_pem) {
    PEM_write_bio_PKCS7(bio.get(), p7.get());
  } else {
    i2d_PKCS7_bio(bio.get(), p7.get());
  }
  return bio_text(bio.get());
}

}  // namespace qscd::test_ca
