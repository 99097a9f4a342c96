#include "renew/retire_step.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <stdexcept>

#include "base/errors.hpp"
#include "base/ossl.hpp"
#include "csr/token_signer.hpp"
#include "qscd/pkcs11/attributes.hpp"
#include "qscd/pkcs11/keys.hpp"
#include "renew/token_pairs.hpp"

namespace qscd::agent {

namespace {

std::vector<p11::ObjectHandle> objects_with_id(const p11::Session& session, const p11::Bytes& id, CK_OBJECT_CLASS object_class) {
  p11::AttributeTemplate query;
  query.object_class(object_class).token(true).id(id);
  return session.find(query);
}

// A signature by the new key over random bytes, checked with the installed certificate's key.
void prove_new_pair(p11::Session& session, const Job& job, const RetireOptions& options) {
  const p11::Bytes id = p11::parse_hex_id(job.key_id_hex);
  const auto keys = objects_with_id(session, id, CKO_PRIVATE_KEY);
  if (keys.size() != 1) throw TokenError("job " + std::to_string(job.id) + ": the new key (id " + job.key_id_hex + ") is not on the token once");
  const auto certificates = objects_with_id(session, id, CKO_CERTIFICATE);
  if (certificates.size() != 1) {
    throw TokenError("job " + std::to_string(job.id) + ": " + std::to_string(certificates.size()) + " certificates with the new key's id " +
                     job.key_id_hex + ", expected one");
  }
  const auto der = session.bytes(certificates.front(), CKA_VALUE).value_or(p11::Bytes{});
  const unsigned char* p = der.data();
  ossl::X509Ptr certificate(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!certificate) throw TokenError("job " + std::to_string(job.id) + ": the installed certificate does not parse");
  EVP_PKEY* certified = X509_get0_pubkey(certificate.get());
  csr::TokenSigner signer(session, keys.front(), options.signature_pin, options.login);
  const bool rsa = EVP_PKEY_base_id(certified) == EVP_PKEY_RSA;
  const csr::SignatureScheme scheme = rsa ? csr::SignatureScheme::rsa_pkcs1_sha256 : csr::SignatureScheme::ecdsa_sha256;
  unsigned char challenge[32];
  if (RAND_bytes(challenge, sizeof challenge) != 1) throw std::runtime_error("no random bytes for the key check");
  const std::vector<unsigned char> signature = signer.sign(scheme, challenge);
  ossl::EvpMdCtxPtr verify(EVP_MD_CTX_new());
  const bool good = verify && EVP_DigestVerifyInit(verify.get(), nullptr, EVP_sha256(), nullptr, certified) == 1 &&
                    EVP_DigestVerify(verify.get(), signature.data(), signature.size(), challenge, sizeof challenge) == 1;
  if (!good) {
    throw TokenError("job " + std::to_string(job.id) + ": the new key's signature does not verify with the installed certificate; " +
                     "the old pair is left as it is");
  }
}

}  // namespace

StepResult retire_old_pair(p11::Session& session, const Job& job, const RetireOptions& options) {
  if (!job.renewal) throw std::logic_error("RETIRING_OLD is a renewal's step");
  prove_new_pair(session, job, options);
  const std::string& old_id_hex = job.renewal->key_id_hex;
  if (old_id_hex == job.key_id_hex) {
    // --reuse-key: one key, and install replaced the old certificate under its id.
    return StepResult(JobState::monitoring, std::chrono::seconds(0),
                      "the new certificate signs with the reused key; install replaced the old certificate");
  }
  const p11::Bytes old_id = p11::parse_hex_id(old_id_hex);
  const std::string retired_label = job.key.key_label + std::string(superseded_suffix);
  // Certificates first, the private key last: what is left after a stop is still a pair or a key.
  std::vector<p11::ObjectHandle> old_objects;
  for (CK_OBJECT_CLASS object_class : {CKO_CERTIFICATE, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY}) {
    for (p11::ObjectHandle object : objects_with_id(session, old_id, object_class)) old_objects.push_back(object);
  }
  for (p11::ObjectHandle object : old_objects) {
    const auto label = session.bytes(object, CKA_LABEL).value_or(p11::Bytes{});
    if (std::string(label.begin(), label.end()) == retired_label) continue;
    p11::AttributeTemplate relabel;
    relabel.label(retired_label);
    session.set_attributes(object, relabel);
  }
  if (options.keep_old) {
    return StepResult(JobState::monitoring, std::chrono::seconds(0),
                      "new pair verified; the old pair (id " + old_id_hex + ", " + std::to_string(old_objects.size()) +
                          " objects) kept as '" + retired_label + "' (--keep-old)");
  }
  for (p11::ObjectHandle object : old_objects) session.destroy(object);
  return StepResult(JobState::monitoring, std::chrono::seconds(0),
                    "new pair verified; the old pair (id " + old_id_hex + ", " + std::to_string(old_objects.size()) +
                        " objects) relabelled '" + retired_label + "' and removed");
}

std::size_t discard_failed_renewal_pair(p11::Session& session, const Job& job) {
  if (!job.renewal || job.state != JobState::failed || job.key_id_hex.empty() || job.key_id_hex == job.renewal->key_id_hex) return 0;
  const p11::Bytes id = p11::parse_hex_id(job.key_id_hex);
  std::size_t destroyed = 0;
  // The private key last, as in retirement: a stop halfway leaves a key the next run removes.
  for (CK_OBJECT_CLASS object_class : {CKO_CERTIFICATE, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY}) {
    for (p11::ObjectHandle object : objects_with_id(session, id, object_class)) {
      session.destroy(object);
      ++destroyed;
    }
  }
  return destroyed;
}

}  // namespace qscd::agent
