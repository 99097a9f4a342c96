#include "csr/builder.hpp"

#include <openssl/pem.h>

#include "base/files.hpp"
#include "base/errors.hpp"

namespace qscd::agent::csr {

namespace {

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what + ": " + ossl::error_text()); }

}  // namespace

ossl::X509NamePtr checked_subject(Profile profile, const Subject& subject, const std::vector<Finding>& input_findings) {
  ossl::X509NamePtr name = make_name(subject);
  std::vector<Finding> findings = input_findings;
  auto subject_findings = lint_subject(profile, name.get());
  findings.insert(findings.end(), subject_findings.begin(), subject_findings.end());
  if (!findings.empty()) throw ProfileViolation(std::string(profile_name(profile)), std::move(findings));
  return name;
}

Subject prepare_subject(Profile profile, const SubjectInput& input) {
  std::vector<Finding> findings;
  Subject subject = subject_from_input(profile, input, findings);
  checked_subject(profile, subject, findings);
  return subject;
}

SignatureScheme checked_scheme(Profile profile, const EVP_PKEY* key, bool rsa_pss) {
  if (auto findings = lint_key(profile, key); !findings.empty()) {
    throw ProfileViolation(std::string(profile_name(profile)), std::move(findings));
  }
  return choose_scheme(key, rsa_pss);
}

void check_planned_key(Profile profile, const std::string& described, bool rsa_pss) {
  if (auto findings = lint_key(profile, described); !findings.empty()) {
    throw ProfileViolation(std::string(profile_name(profile)), std::move(findings));
  }
  if (rsa_pss && described.rfind("RSA ", 0) != 0) throw UsageError("--rsa-pss", "needs an RSA key");
}

ossl::X509ReqPtr build_request(Profile profile, const Subject& subject, Signer& signer, bool rsa_pss) {
  ossl::X509NamePtr name = checked_subject(profile, subject);
  const SignatureScheme scheme = checked_scheme(profile, signer.public_key(), rsa_pss);
  auto* public_key = const_cast<EVP_PKEY*>(signer.public_key());  // X509_REQ_set_pubkey only takes a reference

  ossl::X509ReqPtr request(X509_REQ_new());
  if (!request || X509_REQ_set_version(request.get(), X509_REQ_VERSION_1) != 1 ||
      X509_REQ_set_subject_name(request.get(), name.get()) != 1 || X509_REQ_set_pubkey(request.get(), public_key) != 1) {
    fail("filling in the request");
  }
  ossl::X509AlgorPtr algorithm = signature_algorithm(public_key, scheme);
  if (X509_REQ_set1_signature_algo(request.get(), algorithm.get()) != 1) fail("X509_REQ_set1_signature_algo");

  unsigned char* tbs = nullptr;
  const int tbs_length = i2d_re_X509_REQ_tbs(request.get(), &tbs);
  if (tbs_length <= 0) fail("i2d_re_X509_REQ_tbs");
  std::vector<unsigned char> info(tbs, tbs + tbs_length);
  OPENSSL_free(tbs);

  const std::vector<unsigned char> signature = signer.sign(scheme, info);
  ASN1_BIT_STRING* bits = ASN1_BIT_STRING_new();
  if (bits == nullptr || ASN1_BIT_STRING_set(bits, const_cast<unsigned char*>(signature.data()),
                                             static_cast<int>(signature.size())) != 1) {
    ASN1_BIT_STRING_free(bits);
    fail("ASN1_BIT_STRING_set");
  }
  // A signature is whole octets: no unused bits (what ASN1_item_sign does too).
  bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
  bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
  X509_REQ_set0_signature(request.get(), bits);

  if (X509_REQ_verify(request.get(), public_key) != 1) {
    throw TokenError("the key's signature on the CSR does not verify with its public key (" + ossl::error_text() +
                     "); nothing was written");
  }
  const std::vector<unsigned char> der = request_der(request.get());
  ossl::X509ReqPtr written = parse_request(der, "the CSR just built");
  if (auto findings = lint_request(profile, written.get()); !findings.empty()) {
    throw ProfileViolation(std::string(profile_name(profile)), std::move(findings));
  }
  return written;
}

std::vector<unsigned char> request_der(const X509_REQ* request) {
  unsigned char* der = nullptr;
  const int length = i2d_X509_REQ(request, &der);
  if (length <= 0) fail("i2d_X509_REQ");
  std::vector<unsigned char> out(der, der + length);
  OPENSSL_free(der);
  return out;
}

std::string request_pem(const X509_REQ* request) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), request) != 1) fail("PEM_write_bio_X509_REQ");
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(length)};
}

void write_request(const X509_REQ* request, const std::string& path, bool der) {
  std::string bytes;
  if (der) {
    const auto encoded = request_der(request);
    bytes.assign(encoded.begin(), encoded.end());
  } else {
    bytes = request_pem(request);
  }
  write_file_atomically(path, bytes, "--out");
}

}  // namespace qscd::agent::csr
