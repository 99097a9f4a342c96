#include "certs/certbundle.hpp"

#include "base/files.hpp"

#include "base/hex.hpp"
#include "csr/profile.hpp"
#include "qscd/api/product.hpp"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>

namespace qscd::agent {


namespace {

using ossl::X509Ptr;


struct StackOfX509Free {
  void operator()(STACK_OF(X509) * stack) const noexcept { sk_X509_pop_free(stack, X509_free); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), StackOfX509Free>;

void append_pkcs7(PKCS7* p7, std::vector<X509Ptr>& out) {
  STACK_OF(X509)* certs = nullptr;
  if (PKCS7_type_is_signed(p7) && p7->d.sign != nullptr) {
    certs = p7->d.sign->cert;
  } else if (PKCS7_type_is_signedAndEnveloped(p7) && p7->d.signed_and_enveloped != nullptr) {
    certs = p7->d.signed_and_enveloped->cert;
  }
  for (int i = 0; certs != nullptr && i < sk_X509_num(certs); ++i) out.push_back(ossl::share(sk_X509_value(certs, i)));
}

struct PemBlock {
  std::string name;
  std::vector<unsigned char> der;
};

std::vector<PemBlock> pem_blocks(std::span<const unsigned char> data, const std::string& origin) {
  ossl::BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  std::vector<PemBlock> blocks;
  for (;;) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* body = nullptr;
    long length = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &body, &length) != 1) {
      unsigned long error = ERR_peek_last_error();
      ERR_clear_error();
      if (ERR_GET_REASON(error) == PEM_R_NO_START_LINE && !blocks.empty()) break;
      throw UsageError(origin, "unreadable PEM");
    }
    PemBlock block{name, std::vector<unsigned char>(body, body + length)};
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(body);
    blocks.push_back(std::move(block));
  }
  return blocks;
}

// Decodes a whole DER buffer as X.509 or PKCS#7; false when it is neither.
bool decode_der(std::span<const unsigned char> der, std::vector<X509Ptr>& out) {
  const unsigned char* p = der.data();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (cert && p == der.data() + der.size()) {
    out.push_back(std::move(cert));
    return true;
  }
  p = der.data();
  ossl::Pkcs7Ptr p7(d2i_PKCS7(nullptr, &p, static_cast<long>(der.size())));
  ERR_clear_error();
  if (p7 && p == der.data() + der.size()) {
    append_pkcs7(p7.get(), out);
    return true;
  }
  return false;
}

bool self_signed(X509* cert) { return X509_self_signed(cert, 0) == 1; }

}  // namespace

std::vector<X509Ptr> read_certificates(std::span<const unsigned char> data, const std::string& origin) {
  std::vector<X509Ptr> out;
  static constexpr std::string_view pem_marker = "-----BEGIN ";
  std::string_view as_text(reinterpret_cast<const char*>(data.data()), data.size());
  if (as_text.find(pem_marker) != std::string_view::npos) {
    for (const auto& block : pem_blocks(data, origin)) {
      const unsigned char* p = block.der.data();
      if (block.name == PEM_STRING_X509 || block.name == PEM_STRING_X509_OLD) {
        X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(block.der.size())));
        if (!cert) throw UsageError(origin, "a CERTIFICATE block does not decode: " + ossl::error_text());
        out.push_back(std::move(cert));
      } else if (block.name == PEM_STRING_X509_TRUSTED) {
        X509Ptr cert(d2i_X509_AUX(nullptr, &p, static_cast<long>(block.der.size())));
        if (!cert) throw UsageError(origin, "a TRUSTED CERTIFICATE block does not decode: " + ossl::error_text());
        out.push_back(std::move(cert));
      } else if (block.name == PEM_STRING_PKCS7 || block.name == "CERTIFICATE CHAIN") {
        if (!decode_der(block.der, out)) throw UsageError(origin, "a PKCS7 block does not decode");
      } else {
        throw UsageError(origin, "unexpected PEM block '" + block.name + "' (expected CERTIFICATE or PKCS7)");
      }
    }
  } else if (!decode_der(data, out)) {
    throw UsageError(origin, "neither PEM nor a DER certificate nor DER PKCS#7");
  }
  if (out.empty()) throw UsageError(origin, "holds no certificate");
  return out;
}

std::vector<X509Ptr> read_certificates(std::string_view text, const std::string& origin) {
  return read_certificates(std::span(reinterpret_cast<const unsigned char*>(text.data()), text.size()), origin);
}

namespace {
std::vector<unsigned char> file_bytes(const std::filesystem::path& file) {
  const std::string text = read_input_file(file, file.string());
  return {text.begin(), text.end()};
}
}  // namespace

std::vector<X509Ptr> read_certificate_file(const std::filesystem::path& file) {
  return read_certificates(file_bytes(file), file.string());
}

namespace {

std::string subject_line(X509* cert) {
  char buffer[256];
  X509_NAME_oneline(X509_get_subject_name(cert), buffer, sizeof buffer);
  return buffer;
}

// A certificate's issuer among `certs` by name and key identifier (signatures are the chain
// check's affair): the first that X509_check_issued accepts, not the certificate itself.
X509* issuer_in(const std::vector<X509Ptr>& certs, X509* cert) {
  for (const auto& candidate : certs) {
    if (candidate.get() != cert && X509_check_issued(candidate.get(), cert) == X509_V_OK) return candidate.get();
  }
  return nullptr;
}

}  // namespace

std::vector<X509Ptr> read_bundle_file(const std::filesystem::path& file, const std::string& option) {
  const std::string data = read_input_file(file, option);
  std::vector<X509Ptr> certs;
  try {
    certs = read_certificates(std::string_view(data), file.string());
  } catch (const UsageError& e) {
    throw UsageError(option, e.what());
  }
  if (certs.size() > max_bundle_certificates) {
    throw UsageError(option, file.string() + " holds " + std::to_string(certs.size()) + " certificates; a certificate and its chain are at most " +
                                 std::to_string(max_bundle_certificates));
  }
  // Following issuers from each certificate must end at a self-issued one or outside the bundle.
  for (const auto& start : certs) {
    std::vector<X509*> path{start.get()};
    for (X509* cur = start.get(); X509_check_issued(cur, cur) != X509_V_OK;) {
      X509* issuer = issuer_in(certs, cur);
      if (issuer == nullptr) break;
      const bool seen = std::find(path.begin(), path.end(), issuer) != path.end();
      path.push_back(issuer);
      if (seen) {
        std::string chain;
        for (X509* cert : path) chain += (chain.empty() ? "" : " -> ") + subject_line(cert);
        throw UsageError(option, file.string() + ": the certificates' issuers form a cycle (" + chain + ")");
      }
      cur = issuer;
    }
  }
  ERR_clear_error();
  return certs;
}

std::vector<X509Ptr> read_trust_file(const std::filesystem::path& file, const std::string& option, bool pem_only) {
  const std::string data = read_input_file(file, option);
  try {
    auto anchors = read_certificates(std::string_view(data), file.string());
    if (pem_only && data.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      throw UsageError(file.string(), "not PEM: give the trust anchors as PEM CERTIFICATE blocks");
    }
    return anchors;
  } catch (const UsageError& e) {
    throw UsageError(option, std::string(e.what()) + " (trust anchors: one or more certificates)");
  }
}

ossl::X509ReqPtr read_csr_file(const std::filesystem::path& file) {
  auto data = file_bytes(file);
  return read_csr(std::string_view(reinterpret_cast<const char*>(data.data()), data.size()), file.string());
}

ossl::X509ReqPtr read_csr(std::string_view pem, const std::string& origin) {
  ossl::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  ossl::X509ReqPtr csr(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!csr) throw UsageError(origin, "not a PEM certificate request: " + ossl::error_text());
  return csr;
}

CertBundle select_for_key(std::vector<X509Ptr> certificates, EVP_PKEY* key) {
  auto match = std::find_if(certificates.begin(), certificates.end(),
                            [key](const X509Ptr& cert) { return EVP_PKEY_eq(X509_get0_pubkey(cert.get()), key) == 1; });
  if (match == certificates.end()) {
    std::string subjects;
    for (const auto& cert : certificates) subjects += (subjects.empty() ? "" : " | ") + subject_line(X509_get_subject_name(cert.get()));
    ERR_clear_error();
    throw CertificateNotForKey("the certificate is not for this key: none of " + std::to_string(certificates.size()) +
                               " certificate(s) (" + subjects + ") has the token key's public key");
  }
  CertBundle bundle;
  bundle.end_entity = std::move(*match);
  for (auto& cert : certificates) {
    if (cert && X509_cmp(cert.get(), bundle.end_entity.get()) != 0) bundle.others.push_back(std::move(cert));
  }
  return bundle;
}

std::vector<X509Ptr> verify_chain(const CertBundle& bundle, const std::optional<std::filesystem::path>& trust_file) {
  ossl::X509StorePtr store(X509_STORE_new());
  if (trust_file) {
    auto anchors = read_certificate_file(*trust_file);
    for (const auto& anchor : anchors) X509_STORE_add_cert(store.get(), anchor.get());
  } else {
    // The system store as a hashed folder (/etc/ssl/certs), looked up by issuer name when
    // needed: X509_STORE_set_default_paths would also parse the whole bundle file, which was
    // half of a provisioning run's CPU time (docs/performance.md).
    X509_LOOKUP* lookup = X509_STORE_add_lookup(store.get(), X509_LOOKUP_hash_dir());
    if (lookup == nullptr || X509_LOOKUP_add_dir(lookup, nullptr, X509_FILETYPE_DEFAULT) != 1) {
      throw ChainNotTrusted("cannot open the system trust store: " + ossl::error_text());
    }
  }
  X509StackPtr untrusted(sk_X509_new_null());
  for (const auto& cert : bundle.others) {
    X509_up_ref(cert.get());
    sk_X509_push(untrusted.get(), cert.get());
  }
  ossl::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (X509_STORE_CTX_init(ctx.get(), store.get(), bundle.end_entity.get(), untrusted.get()) != 1) {
    throw ChainNotTrusted("cannot set up chain verification: " + ossl::error_text());
  }
  X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_NO_CHECK_TIME);
  if (X509_verify_cert(ctx.get()) != 1) {
    int error = X509_STORE_CTX_get_error(ctx.get());
    X509* at = X509_STORE_CTX_get_current_cert(ctx.get());
    ERR_clear_error();
    std::string where = at != nullptr ? " at " + subject_line(X509_get_subject_name(at)) : "";
    throw ChainNotTrusted("the certificate chain does not lead to " +
                          (trust_file ? "the trust anchors in " + trust_file->string() : std::string("the system trust store")) +
                          ": " + X509_verify_cert_error_string(error) + where);
  }
  X509StackPtr chain(X509_STORE_CTX_get1_chain(ctx.get()));
  std::vector<X509Ptr> out;
  for (int i = 0; i < sk_X509_num(chain.get()); ++i) out.push_back(ossl::share(sk_X509_value(chain.get(), i)));
  return out;
}

std::vector<X509Ptr> intermediates_of(const std::vector<X509Ptr>& chain) {
  std::vector<X509Ptr> out;
  for (std::size_t i = 1; i < chain.size(); ++i) {
    if (!self_signed(chain[i].get())) out.push_back(ossl::share(chain[i].get()));
  }
  return out;
}

std::vector<X509Ptr> issuers_in_bundle(const CertBundle& bundle) {
  std::vector<X509Ptr> chain;
  X509* last = bundle.end_entity.get();
  while (chain.size() < bundle.others.size()) {
    auto issuer = std::find_if(bundle.others.begin(), bundle.others.end(), [last](const X509Ptr& candidate) {
      return candidate.get() != last && X509_check_issued(candidate.get(), last) == X509_V_OK;
    });
    if (issuer == bundle.others.end() || self_signed(issuer->get())) break;
    chain.push_back(ossl::share(issuer->get()));
    last = issuer->get();
  }
  ERR_clear_error();
  return chain;
}

std::string sha256_hex(std::span<const unsigned char> der) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_Digest(der.data(), der.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256 failed: " + ossl::error_text());
  }
  return hex_lower(std::span(digest.data(), length));
}

namespace {
template <typename T, typename Encode>
std::vector<unsigned char> der_of(T* object, Encode encode, const char* what) {
  int length = encode(object, nullptr);
  if (length <= 0) throw std::runtime_error(std::string("cannot DER-encode the ") + what + ": " + ossl::error_text());
  std::vector<unsigned char> der(static_cast<std::size_t>(length));
  unsigned char* p = der.data();
  encode(object, &p);
  return der;
}
}  // namespace

std::string spki_sha256(EVP_PKEY* key) { return sha256_hex(der_of(key, i2d_PUBKEY, "public key")); }
std::string certificate_sha256(X509* certificate) { return sha256_hex(to_der(certificate)); }
std::string csr_sha256(X509_REQ* csr) { return sha256_hex(der_of(csr, i2d_X509_REQ, "CSR")); }
std::vector<unsigned char> to_der(X509* certificate) { return der_of(certificate, i2d_X509, "certificate"); }

std::string serial_hex(X509* certificate) {
  std::unique_ptr<BIGNUM, ossl::Deleter<BN_free>> number(ASN1_INTEGER_to_BN(X509_get0_serialNumber(certificate), nullptr));
  char* text = BN_bn2hex(number.get());
  std::string out(text);
  OPENSSL_free(text);
  return out;
}

std::vector<unsigned char> to_p7b(const std::vector<X509Ptr>& certificates) {
  // A degenerate SignedData: no signers, no content, only certificates.
  ossl::Pkcs7Ptr p7(PKCS7_new());
  if (!p7 || PKCS7_set_type(p7.get(), NID_pkcs7_signed) != 1 || PKCS7_content_new(p7.get(), NID_pkcs7_data) != 1 ||
      PKCS7_set_detached(p7.get(), 1) != 1) {
    throw std::runtime_error("cannot make a PKCS#7: " + ossl::error_text());
  }
  for (const auto& cert : certificates) {
    if (PKCS7_add_certificate(p7.get(), cert.get()) != 1) throw std::runtime_error("PKCS#7: " + ossl::error_text());
  }
  return der_of(p7.get(), i2d_PKCS7, "PKCS#7");
}

std::string to_pem(X509* certificate) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), certificate);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(length)};
}

std::string subject_line(const X509_NAME* name) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  // RFC 4514's escaping and short names, but in the certificate's own order (RFC 4514 reverses
  // it): every command prints a subject the same way, as `csr` and the seed documents show it.
  constexpr unsigned long flags = (ASN1_STRFLGS_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) | XN_FLAG_SEP_CPLUS_SPC | XN_FLAG_FN_SN |
                                  XN_FLAG_DUMP_UNKNOWN_FIELDS;
  X509_NAME_print_ex(bio.get(), name, 0, flags);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(length)};
}

}  // namespace qscd::agent
