#include "pki.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/bn.h>
#include <openssl/conf.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/core_names.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace sim {

namespace {

struct BioFree {
  void operator()(BIO* bio) const noexcept { BIO_free(bio); }
};
struct ConfFree {
  void operator()(CONF* conf) const noexcept { NCONF_free(conf); }
};
struct NameFree {
  void operator()(X509_NAME* name) const noexcept { X509_NAME_free(name); }
};
struct ExtFree {
  void operator()(X509_EXTENSION* ext) const noexcept { X509_EXTENSION_free(ext); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};
struct P7Free {
  void operator()(PKCS7* p7) const noexcept { PKCS7_free(p7); }
};

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("certcentral-sim: " + what); }

// qcStatements (ETSI EN 319 412-5) as an OpenSSL ASN1_generate_nconf section.
constexpr const char* qc_config = R"(
[qc_qualified]
compliance = SEQUENCE:qc_compliance
sscd = SEQUENCE:qc_sscd
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

std::unique_ptr<CONF, ConfFree> load_conf(const std::string& text) {
  std::unique_ptr<CONF, ConfFree> conf(NCONF_new(nullptr));
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  long line = 0;
  if (!conf || !bio || NCONF_load_bio(conf.get(), bio.get(), &line) <= 0) fail("bad extension config at line " + std::to_string(line));
  return conf;
}

void add_extension(X509* cert, X509V3_CTX* ctx, CONF* conf, const char* name, const std::string& value) {
  std::unique_ptr<X509_EXTENSION, ExtFree> ext(X509V3_EXT_nconf(conf, ctx, name, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) fail(std::string("cannot add extension ") + name + "=" + value);
}

KeyPtr generate(const char* type, std::size_t bits_or_zero) {
  EVP_PKEY* key = bits_or_zero != 0 ? EVP_PKEY_Q_keygen(nullptr, nullptr, type, bits_or_zero)
                                    : EVP_PKEY_Q_keygen(nullptr, nullptr, type, "P-256");
  if (key == nullptr) fail(std::string("cannot generate a ") + type + " key");
  return KeyPtr(key);
}

void set_serial(X509* cert) {
  unsigned char bytes[16];
  RAND_bytes(bytes, sizeof bytes);
  bytes[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(bytes, sizeof bytes, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
  BN_free(bn);
}

void sign(X509* cert, EVP_PKEY* key, bool pss) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key) != 1) fail("cannot start signing");
  if (pss) {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
  }
  if (X509_sign_ctx(cert, ctx.get()) <= 0) fail("cannot sign a certificate");
}

X509Ptr make_ca_cert(const std::string& cn, EVP_PKEY* key, const Authority* issuer, int days, bool ca, const std::string& extra) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  set_serial(cert.get());
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 86400);
  std::unique_ptr<X509_NAME, NameFree> name(X509_NAME_new());
  X509_NAME_add_entry_by_txt(name.get(), "C", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("NL"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name.get(), "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("certcentral-sim test PKI"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_subject_name(cert.get(), name.get());
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer->cert.get()) : name.get());
  X509_set_pubkey(cert.get(), key);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer->cert.get() : cert.get(), cert.get(), nullptr, nullptr, 0);
  auto conf = load_conf("[x]\n");
  X509V3_set_nconf(&ctx, conf.get());
  if (ca) {
    add_extension(cert.get(), &ctx, conf.get(), "basicConstraints", "critical,CA:TRUE");
    add_extension(cert.get(), &ctx, conf.get(), "keyUsage", "critical,keyCertSign,cRLSign");
  } else {
    add_extension(cert.get(), &ctx, conf.get(), "basicConstraints", "critical,CA:FALSE");
    add_extension(cert.get(), &ctx, conf.get(), "keyUsage", "critical,digitalSignature,keyEncipherment");
    add_extension(cert.get(), &ctx, conf.get(), "extendedKeyUsage", "serverAuth");
  }
  add_extension(cert.get(), &ctx, conf.get(), "subjectKeyIdentifier", "hash");
  if (issuer) add_extension(cert.get(), &ctx, conf.get(), "authorityKeyIdentifier", "keyid:always");
  if (!extra.empty()) add_extension(cert.get(), &ctx, conf.get(), "subjectAltName", extra);
  sign(cert.get(), issuer ? issuer->key.get() : key, false);
  return cert;
}

Authority make_authority(const std::string& cn, const Authority* issuer, bool ca, const std::string& san = {}) {
  Authority out;
  out.key = generate("EC", 0);
  out.cert = make_ca_cert(cn, out.key.get(), issuer, ca ? 3650 : 825, ca, san);
  return out;
}

void write_file(const std::filesystem::path& path, const std::string& text, bool secret) {
  auto tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) fail("cannot write " + tmp.string());
  }
  if (secret) std::filesystem::permissions(tmp, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::filesystem::rename(tmp, path);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string key_pem(EVP_PKEY* key) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(length)};
}

KeyPtr parse_key(const std::string& pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return KeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

void save(const std::filesystem::path& dir, const std::string& stem, const Authority& authority) {
  write_file(dir / (stem + ".key.pem"), key_pem(authority.key.get()), true);
  write_file(dir / (stem + ".pem"), to_pem(authority.cert.get()), false);
}

bool load(const std::filesystem::path& dir, const std::string& stem, Authority& out) {
  if (!std::filesystem::exists(dir / (stem + ".pem")) || !std::filesystem::exists(dir / (stem + ".key.pem"))) return false;
  out.cert = parse_cert(read_file(dir / (stem + ".pem")));
  out.key = parse_key(read_file(dir / (stem + ".key.pem")));
  return out.cert && out.key;
}

}  // namespace

Hierarchy load_or_create(const std::filesystem::path& dir) {
  Hierarchy h;
  if (!load(dir, "root-ca", h.root) || !load(dir, "issuing-ca", h.issuing) || !load(dir, "tls", h.tls)) {
    // ECDSA P-256 keys: made in a millisecond, so every test can have its own CA.
    // (CertCentral ignores is_rsassa_pss under an ECC issuing CA; so does the sim.)
    h.root = make_authority("certcentral-sim Test Root CA", nullptr, true);
    h.issuing = make_authority("certcentral-sim Test Issuing CA", &h.root, true);
    h.tls = make_authority("localhost", &h.root, false, "DNS:localhost,IP:127.0.0.1");
    save(dir, "issuing-ca", h.issuing);
    save(dir, "tls", h.tls);
    save(dir, "root-ca", h.root);  // last: its presence means the set is complete
  }
  h.foreign_root = make_authority("certcentral-sim Foreign Root CA", nullptr, true);
  h.foreign_issuing = make_authority("certcentral-sim Foreign Issuing CA", &h.foreign_root, true);
  return h;
}

std::string to_pem(X509* cert) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(length)};
}

ReqPtr parse_csr(const std::string& pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return ReqPtr(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
}

X509Ptr parse_cert(const std::string& pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

KeyPtr other_key_like(EVP_PKEY* like) {
  if (EVP_PKEY_is_a(like, "RSA")) return generate("RSA", static_cast<std::size_t>(EVP_PKEY_get_bits(like)));
  return generate("EC", 0);
}

X509Ptr issue(const IssueSpec& spec, const Authority& issuer) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  set_serial(cert.get());
  const long backdate = static_cast<long>(spec.backdate_days) * 86400;
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60 - backdate);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(spec.validity_days) * 86400 - backdate);

  // Subject: built from the organization record and the order, as CertCentral does (its Services
  // API ignores the CSR's subject).
  std::unique_ptr<X509_NAME, NameFree> subject(X509_NAME_new());
  for (const auto& [field, value] : spec.subject) {
    if (value.empty()) continue;
    if (X509_NAME_add_entry_by_txt(subject.get(), field.c_str(), MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.c_str()),
                                   -1, -1, 0) != 1) {
      fail("cannot put " + field + " in a subject");
    }
  }
  X509_set_subject_name(cert.get(), subject.get());
  X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer.cert.get()));
  X509_set_pubkey(cert.get(), spec.public_key);

  std::string config = std::string("[x]\n") + qc_config;
  auto conf = load_conf(config);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer.cert.get(), cert.get(), nullptr, nullptr, 0);
  X509V3_set_nconf(&ctx, conf.get());
  add_extension(cert.get(), &ctx, conf.get(), "basicConstraints", "critical,CA:FALSE");
  add_extension(cert.get(), &ctx, conf.get(), "subjectKeyIdentifier", "hash");
  add_extension(cert.get(), &ctx, conf.get(), "authorityKeyIdentifier", "keyid:always");
  if (spec.usage == Usage::server) {
    add_extension(cert.get(), &ctx, conf.get(), "keyUsage", "critical,digitalSignature,keyEncipherment");
    add_extension(cert.get(), &ctx, conf.get(), "extendedKeyUsage", "serverAuth,clientAuth");
    std::string san;
    for (const auto& name : spec.dns_names) san += (san.empty() ? "DNS:" : ",DNS:") + name;
    if (!san.empty()) add_extension(cert.get(), &ctx, conf.get(), "subjectAltName", san);
  } else {
    add_extension(cert.get(), &ctx, conf.get(), "keyUsage", "critical,nonRepudiation");
    if (spec.usage == Usage::qualified_seal) {
      add_extension(cert.get(), &ctx, conf.get(), "1.3.6.1.5.5.7.1.3", "ASN1:SEQUENCE:qc_qualified");
    }
  }
  sign(cert.get(), issuer.key.get(), spec.rsassa_pss && EVP_PKEY_is_a(issuer.key.get(), "RSA"));
  return cert;
}

std::string p7b_pem(const std::vector<X509*>& certs) {
  STACK_OF(X509)* stack = sk_X509_new_null();
  for (X509* cert : certs) sk_X509_push(stack, cert);
  std::unique_ptr<PKCS7, P7Free> p7(PKCS7_sign(nullptr, nullptr, stack, nullptr, PKCS7_PARTIAL));
  sk_X509_free(stack);
  if (!p7) fail("cannot build a PKCS#7 bundle");
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PKCS7(bio.get(), p7.get());
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(length)};
}

namespace {
std::string upper_hex(const unsigned char* bytes, std::size_t size) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  for (std::size_t i = 0; i < size; ++i) {
    out.push_back(digits[bytes[i] >> 4]);
    out.push_back(digits[bytes[i] & 0xf]);
  }
  return out;
}

std::uint32_t crc32(const std::string& data) {
  std::uint32_t crc = 0xffffffffU;
  for (unsigned char byte : data) {
    crc ^= byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xedb88320U & (0U - (crc & 1U)));
  }
  return ~crc;
}

void put16(std::string& out, std::size_t value) {
  out.push_back(static_cast<char>(value & 0xff));
  out.push_back(static_cast<char>((value >> 8) & 0xff));
}
void put32(std::string& out, std::size_t value) {
  put16(out, value & 0xffff);
  put16(out, (value >> 16) & 0xffff);
}
}  // namespace

std::string serial_hex(X509* cert) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string out = hex != nullptr ? hex : "";
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

std::string thumbprint_hex(X509* cert) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (X509_digest(cert, EVP_sha1(), digest, &length) != 1) fail("cannot hash a certificate");
  return upper_hex(digest, length);
}

std::string common_name(X509_NAME* name) {
  int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) return {};
  unsigned char* utf8 = nullptr;
  int length = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index)));
  if (length < 0) return {};
  std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(length));
  OPENSSL_free(utf8);
  return out;
}

KeyInfo key_info(EVP_PKEY* key) {
  KeyInfo info;
  if (key == nullptr) return info;
  info.bits = EVP_PKEY_get_bits(key);
  if (EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_is_a(key, "RSA-PSS")) {
    info.type = "RSA";
  } else if (EVP_PKEY_is_a(key, "EC")) {
    info.type = "EC";
    char curve[64] = {};
    std::size_t length = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof curve, &length) == 1) info.curve = curve;
  } else {
    const char* name = EVP_PKEY_get0_type_name(key);
    info.type = name != nullptr ? name : "unknown";
  }
  return info;
}

bool csr_self_signed(X509_REQ* req) {
  EVP_PKEY* key = X509_REQ_get0_pubkey(req);
  bool ok = key != nullptr && X509_REQ_verify(req, key) == 1;
  ERR_clear_error();
  return ok;
}

std::string zip_store(const std::vector<std::pair<std::string, std::string>>& files) {
  std::string out;
  std::string central;
  for (const auto& [name, data] : files) {
    const std::size_t offset = out.size();
    const std::uint32_t crc = crc32(data);
    auto header = [&](std::string& to, bool in_central) {
      put32(to, in_central ? 0x02014b50U : 0x04034b50U);
      if (in_central) put16(to, 20);  // made by
      put16(to, 20);                  // needed to extract
      put16(to, 0);                   // flags
      put16(to, 0);                   // stored
      put16(to, 0);                   // time
      put16(to, 0x21);                // date: 1980-01-01
      put32(to, crc);
      put32(to, data.size());
      put32(to, data.size());
      put16(to, name.size());
      put16(to, 0);  // extra
      if (in_central) {
        put16(to, 0);  // comment
        put16(to, 0);  // disk
        put16(to, 0);  // internal attributes
        put32(to, 0);  // external attributes
        put32(to, offset);
      }
      to += name;
    };
    header(out, false);
    out += data;
    header(central, true);
  }
  const std::size_t central_offset = out.size();
  out += central;
  put32(out, 0x06054b50U);
  put16(out, 0);
  put16(out, 0);
  put16(out, files.size());
  put16(out, files.size());
  put32(out, central.size());
  put32(out, central_offset);
  put16(out, 0);
  return out;
}

}  // namespace sim
