// INSTALLING: the stored chain onto the token beside the key, read back and verified.
#include "base/errors.hpp"
#include "certs/install.hpp"
#include "provision/token_run.hpp"

namespace qscd::agent {

StepResult TokenRun::install(const Job& job) {
  const p11::ObjectHandle handle = private_key(job);
  TokenKey key;
  key.handle = handle;
  key.id = p11::parse_hex_id(job.key_id_hex);
  if (key_->label) {
    key.label = *key_->label;  // generated in this run: no read
  } else {
    const p11::Bytes label = session_.bytes(handle, CKA_LABEL).value_or(p11::Bytes{});
    key.label = label.empty() ? job.key.key_label : std::string(label.begin(), label.end());
  }
  EVP_PKEY* public_key = token_public_key(job);
  EVP_PKEY_up_ref(public_key);
  key.public_key = ossl::EvpPkeyPtr(public_key);
  // The chain was checked (key, validity, profile, trust) in CA_WORKING before it was stored;
  // install_certificates checks the key again before it writes anything.
  std::vector<ossl::X509Ptr> chain = read_certificates(std::string_view(job.chain_pem), "the job's chain");
  if (chain.empty()) throw CaError("job " + std::to_string(job.id) + " has no stored certificate to install");
  ossl::X509Ptr end_entity = std::move(chain.front());
  chain.erase(chain.begin());
  InstallResult installed = install_certificates(session_, key, end_entity.get(), chain);
  std::size_t written = installed.end_entity.created ? 1 : 0;
  for (const auto& intermediate : installed.intermediates) written += intermediate.created ? 1 : 0;
  // A renewal goes on to retire the pair it replaces; the old one stayed usable until now.
  return StepResult(job.kind == JobKind::renewal ? JobState::retiring_old : JobState::monitoring, std::chrono::seconds(0),
                    "installed (" + std::to_string(written) + " objects written), read back and verified");
}

}  // namespace qscd::agent
