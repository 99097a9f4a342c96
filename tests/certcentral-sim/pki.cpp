#include "pki.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace sim {

namespace {

using BioPtr = std::unique_ptr<BIO, qscd::test_ca::Deleter<BIO_free>>;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("certcentral-sim: " + what); }

Authority make_authority(const std::string& cn, const Authority* issuer, bool ca, const std::string& san = {}) {
  Authority out;
  out.key = qscd::test_ca::ec_key();
  qscd::test_ca::CertSpec spec;
  spec.subject = {{"C", "NL"}, {"O", "certcentral-sim test PKI"}, {"CN", cn}};
  spec.public_key = out.key.get();
  spec.not_before = -3600;
  spec.not_after = (ca ? 3650L : 825L) * 86400;
  if (ca) {
    spec.extensions = qscd::test_ca::ca_extensions(issuer != nullptr);
  } else {
    spec.extensions = {{"basicConstraints", "critical,CA:FALSE"},
                       {"keyUsage", "critical,digitalSignature,keyEncipherment"},
                       {"extendedKeyUsage", "serverAuth"},
                       {"subjectKeyIdentifier", "hash"}};
    if (issuer != nullptr) spec.extensions.emplace_back("authorityKeyIdentifier", "keyid:always");
  }
  if (!san.empty()) spec.extensions.emplace_back("subjectAltName", san);
  out.cert = qscd::test_ca::issue(spec, issuer != nullptr ? issuer->cert.get() : nullptr,
                                  issuer != nullptr ? issuer->key.get() : out.key.get());
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
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(length)};
}

KeyPtr parse_key(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
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

std::string to_pem(X509* cert) { return qscd::test_ca::pem(cert); }

ReqPtr parse_csr(const std::string& pem) { return qscd::test_ca::parse_csr(pem); }

X509Ptr parse_cert(const std::string& pem) { return qscd::test_ca::parse_cert(pem); }

KeyPtr other_key_like(EVP_PKEY* like) {
  if (EVP_PKEY_is_a(like, "RSA")) return qscd::test_ca::rsa_key(static_cast<std::size_t>(EVP_PKEY_get_bits(like)));
  return qscd::test_ca::ec_key();
}

X509Ptr issue(const IssueSpec& spec, const Authority& issuer) {
  qscd::test_ca::CertSpec cert;
  // Subject: built from the organization record and the order, as CertCentral does (its Services
  // API ignores the CSR's subject); empty values are left out.
  cert.subject = spec.subject;
  cert.public_key = spec.public_key;
  const long backdate = static_cast<long>(spec.backdate_days) * 86400;
  cert.not_before = -60 - backdate;
  cert.not_after = static_cast<long>(spec.validity_days) * 86400 - backdate;
  cert.extensions = {{"basicConstraints", "critical,CA:FALSE"},
                     {"subjectKeyIdentifier", "hash"},
                     {"authorityKeyIdentifier", "keyid:always"}};
  if (spec.usage == Usage::server) {
    cert.extensions.emplace_back("keyUsage", "critical,digitalSignature,keyEncipherment");
    cert.extensions.emplace_back("extendedKeyUsage", "serverAuth,clientAuth");
    std::string san;
    for (const auto& name : spec.dns_names) san += (san.empty() ? "DNS:" : ",DNS:") + name;
    if (!san.empty()) cert.extensions.emplace_back("subjectAltName", san);
  } else {
    cert.extensions.emplace_back("keyUsage", "critical,nonRepudiation");
    // EN 319 411-2 policy and EN 319 412-5 statements: a QSCD seal is QCP-l-qscd with QcSSCD, a
    // seal whose key was not certified on a QSCD is QCP-l without it, an unqualified one has neither.
    if (spec.usage == Usage::qualified_seal) {
      cert.extensions.emplace_back("certificatePolicies", qscd::test_ca::policy_qcp_l_qscd);
      cert.extensions.emplace_back(qscd::test_ca::qc_statements_oid, qscd::test_ca::qc_statements_value);
    } else if (spec.usage == Usage::seal) {
      cert.extensions.emplace_back("certificatePolicies", qscd::test_ca::policy_qcp_l);
      cert.extensions.emplace_back(qscd::test_ca::qc_statements_oid, qscd::test_ca::qc_statements_no_sscd_value);
    }
  }
  cert.rsassa_pss = spec.rsassa_pss;
  return qscd::test_ca::issue(cert, issuer.cert.get(), issuer.key.get());
}

std::string p7b_pem(const std::vector<X509*>& certs) { return qscd::test_ca::p7b(certs, true); }

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
  for (const auto& file : files) {
    const std::string& name = file.first;  // not a structured binding: clang 14 cannot capture one
    const std::string& data = file.second;
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
