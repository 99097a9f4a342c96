// NEED_CSR: the request built from the token key, signed on the token, verified and linted.
#include "certs/certbundle.hpp"
#include "csr/builder.hpp"
#include "csr/token_signer.hpp"
#include "provision/token_run.hpp"

namespace qscd::agent {

StepResult TokenRun::make_csr(const Job& job) {
  const p11::ObjectHandle key = private_key(job);
  csr::TokenSigner signer(session_, key, token_public_key(job), inputs_.signature_pin(), inputs_.login);
  const ossl::X509ReqPtr request = csr::build_request(inputs_.profile, inputs_.subject, signer, inputs_.rsa_pss);
  StepResult result(JobState::have_csr, std::chrono::seconds(0),
                    "CSR signed on the token, verified and checked against profile " + std::string(csr::profile_name(inputs_.profile)));
  result.update.csr_pem = csr::request_pem(request.get());
  result.update.csr_sha256 = csr_sha256(request.get());
  result.update.subject = subject_line(X509_REQ_get_subject_name(request.get()));
  if (job.spki_sha256.empty()) result.update.spki_sha256 = spki_sha256(const_cast<EVP_PKEY*>(signer.public_key()));
  return result;
}

}  // namespace qscd::agent
