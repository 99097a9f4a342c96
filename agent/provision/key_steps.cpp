// The key pair steps: GENERATING_KEY_PAIR, and finding the job's key again on later steps.
#include <stdexcept>

#include "base/errors.hpp"
#include "certs/certbundle.hpp"
#include "provision/token_run.hpp"
#include "qscd/pkcs11/attributes.hpp"
#include "qscd/pkcs11/keys.hpp"

namespace qscd::agent {

using std::chrono::seconds;

p11::ObjectHandle TokenRun::private_key(const Job& job) {
  if (key_ && key_->id_hex == job.key_id_hex) return key_->handle;
  const p11::Bytes id = p11::parse_hex_id(job.key_id_hex);
  p11::AttributeTemplate query;
  // Token objects only: a session object left by the key pair's staging is not the job's key.
  query.object_class(CKO_PRIVATE_KEY).token(true).id(id);
  const auto keys = session_.find(query);
  if (keys.size() != 1) {
    throw TokenError("job " + std::to_string(job.id) + ": token '" + token_.label + "' holds " +
                     std::to_string(keys.size()) + " private keys with id " + job.key_id_hex + ", expected one");
  }
  key_ = KnownKey{job.key_id_hex, keys.front(), nullptr};
  return keys.front();
}

// The job key's public half, read from the token once per run.
EVP_PKEY* TokenRun::token_public_key(const Job& job) {
  const p11::ObjectHandle handle = private_key(job);
  if (!key_->public_key) key_->public_key.reset(p11::public_key(session_, handle).release());
  return key_->public_key.get();
}

// Generates the pair, or finds the one a killed run generated (same label): keys are never
// multiplied by a crash. A public key a killed run left without its private half (the pair is
// copied onto the token public half first, p11::generate_key_pair) is removed: the job owns the
// label, which no key had when the job was created.
//
// A renewal's new pair shares its label with the pair it replaces, so it is known by the CKA_ID
// the job recorded before generating, and only keys with that id are its own.
StepResult TokenRun::generate(const Job& job) {
  LabelledKeys labelled;
  if (job.kind == JobKind::renewal) {
    if (job.key_id_hex.empty()) throw std::logic_error("a renewal job records its new key's id before generating it");
    labelled = keys_with_id(session_, p11::parse_hex_id(job.key_id_hex));
  } else {
    labelled = labelled_keys(session_, job.key.key_label);
  }
  for (p11::ObjectHandle stale : labelled.stale) session_.destroy(stale);
  if (!labelled.stale.empty()) say("removed " + std::to_string(labelled.stale.size()) + " half-copied key object(s) an interrupted run left");
  const auto& found = labelled.private_keys;
  if (found.size() > 1) {
    throw TokenError("token '" + token_.label + "' holds " + std::to_string(found.size()) + " private keys labelled '" +
                     job.key.key_label + "'; remove the extra ones or provision one of them with --key");
  }
  p11::ObjectHandle key = CK_INVALID_HANDLE;
  p11::ObjectHandle public_half = CK_INVALID_HANDLE;  // known when generated here
  p11::Bytes id;
  std::string detail;
  if (found.size() == 1) {
    key = found.front();
    id = session_.bytes(key, CKA_ID).value_or(p11::Bytes{});
    if (id.empty()) throw TokenError("the key pair '" + job.key.key_label + "' left by an interrupted run has no CKA_ID");
    detail = "found the key pair an interrupted run generated (id " + p11::to_hex(id) + ")";
  } else {
    if (!inputs_.key_type) throw UsageError("--key-type", "needed to generate the key pair of job " + std::to_string(job.id));
    for (p11::ObjectHandle orphan : labelled.public_keys) session_.destroy(orphan);
    if (!labelled.public_keys.empty()) say("removed the public key an interrupted run left without its private key");
    p11::KeyGenRequest request;
    request.type = *inputs_.key_type;
    request.label = job.key.key_label;
    if (!job.key_id_hex.empty()) request.id = p11::parse_hex_id(job.key_id_hex);
    if (job.renewal) {
      // The new key keeps the old one's CKA_ALWAYS_AUTHENTICATE: a seal key that asked for its
      // PIN at each signature does so after renewal too.
      p11::AttributeTemplate old_key;
      old_key.object_class(CKO_PRIVATE_KEY).token(true).id(p11::parse_hex_id(job.renewal->key_id_hex));
      const auto old_keys = session_.find(old_key);
      if (!old_keys.empty()) request.always_authenticate = p11::describe_key(session_, old_keys.front()).always_authenticate;
    }
    say("generating a " + request.type.name() + (request.always_authenticate ? " key pair (always authenticate)" : " key pair") + " on the token");
    p11::KeyPair pair = p11::generate_key_pair(session_, request);
    test_crash_point("GENERATING_KEY_PAIR:generated");
    key = pair.private_key;
    public_half = pair.public_key;
    id = pair.id;
    detail = "generated " + request.type.name() + " key pair (id " + p11::to_hex(id) + ")";
  }
  key_ = KnownKey{p11::to_hex(id), key, nullptr};
  key_->public_key.reset(p11::public_key(session_, public_half != CK_INVALID_HANDLE ? public_half : key).release());
  StepResult result(JobState::have_key_pair, seconds(0), detail);
  result.update.key_id_hex = key_->id_hex;
  result.update.spki_sha256 = spki_sha256(key_->public_key.get());
  return result;
}

}  // namespace qscd::agent
