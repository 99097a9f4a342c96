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
  key_ = KnownKey{job.key_id_hex, keys.front(), nullptr, std::nullopt};
  return keys.front();
}

// The job key's public half, read from the token once per run.
EVP_PKEY* TokenRun::token_public_key(const Job& job) {
  const p11::ObjectHandle handle = private_key(job);
  if (!key_->public_key) key_->public_key.reset(p11::public_key(session_, handle).release());
  return key_->public_key.get();
}

// Generates the pair, or finds the one a killed run generated (same label): keys are never
// multiplied by a crash. A half pair an interrupted run left is mended or removed, whichever half
// remains: a public key without its private half (the pair is copied onto the token public half
// first, p11::generate_key_pair) is removed; a private key without its public half (a token gone
// in the middle of the copies, issue 18 defect 9) gets its public key rebuilt from its own values
// (RSA), or is removed and the pair generated again (EC: the private key does not hold its
// point). The job owns the label, which no key had when the job was created, and no CSR was
// made from a key of this step.
//
// A renewal's new pair shares its label with the pair it replaces, so it is known by the CKA_ID
// the job recorded before generating, and only keys with that id are its own.
StepResult TokenRun::generate(const Job& job) {
  LabelledKeys labelled;
  if (job.kind == JobKind::renewal) {
    if (job.key_id_hex.empty()) throw std::logic_error("a renewal job records its new key's id before generating it");
    labelled = keys_with_id(session_, p11::parse_hex_id(job.key_id_hex));
  } else {
    labelled = this->labelled(job.key.key_label);
  }
  for (p11::ObjectHandle stale : labelled.stale) session_.destroy(stale);
  if (!labelled.stale.empty()) say("removed " + std::to_string(labelled.stale.size()) + " half-copied key object(s) an interrupted run left");
  // What this step writes makes the remembered checks stale.
  labelled_.reset();
  const auto& found = labelled.private_keys;
  if (found.size() > 1) {
    throw TokenError("token '" + token_.label + "' holds " + std::to_string(found.size()) + " private keys labelled '" +
                     job.key.key_label + "'; remove the extra ones or provision one of them with --key");
  }
  p11::ObjectHandle key = CK_INVALID_HANDLE;
  p11::ObjectHandle public_half = CK_INVALID_HANDLE;
  p11::Bytes id;
  std::string detail;
  if (found.size() == 1) {
    const p11::KeyDescription left = p11::describe_key(session_, found.front());
    if (left.id.empty()) throw TokenError("the key pair '" + job.key.key_label + "' left by an interrupted run has no CKA_ID");
    // By id and key type, whatever its label: the public half is the one find_public_key gives.
    if (auto half = p11::find_public_key(session_, found.front())) public_half = *half;
    if (public_half != CK_INVALID_HANDLE) {
      detail = "found the key pair an interrupted run generated (id " + p11::to_hex(left.id) + ")";
    } else if (auto rebuilt = p11::rebuild_public_key(session_, found.front())) {
      public_half = *rebuilt;
      say("rebuilt the public key of the private key an interrupted run left without it (id " + p11::to_hex(left.id) + ")");
      detail = "found the key pair an interrupted run generated (id " + p11::to_hex(left.id) + "), its public key rebuilt";
    } else {
      session_.destroy(found.front());
      say("removed the private key an interrupted run left without its public key (id " + p11::to_hex(left.id) +
          "); generating the pair again");
    }
    if (public_half != CK_INVALID_HANDLE) {
      key = found.front();
      id = left.id;
    }
  }
  std::size_t orphans = 0;
  for (p11::ObjectHandle orphan : labelled.public_keys) {
    if (orphan == public_half) continue;
    session_.destroy(orphan);
    ++orphans;
  }
  if (orphans > 0) say("removed the public key an interrupted run left without its private key");
  if (key == CK_INVALID_HANDLE) {
    if (!inputs_.key_type) throw UsageError("--key-type", "needed to generate the key pair of job " + std::to_string(job.id));
    p11::KeyGenRequest request;
    request.type = *inputs_.key_type;
    request.label = job.key.key_label;
    if (!job.key_id_hex.empty()) request.id = p11::parse_hex_id(job.key_id_hex);
    request.id_checked = request.id && free_id_ && *free_id_ == *request.id;
    if (job.renewal) {
      // The new key keeps the old one's CKA_ALWAYS_AUTHENTICATE: a seal key that asked for its
      // PIN at each signature does so after renewal too.
      p11::AttributeTemplate old_key;
      old_key.object_class(CKO_PRIVATE_KEY).token(true).id(p11::parse_hex_id(job.renewal->key_id_hex));
      const auto old_keys = session_.find(old_key);
      if (!old_keys.empty()) request.always_authenticate = p11::describe_key(session_, old_keys.front()).always_authenticate;
    }
    say("generating a " + request.type.name() + (request.always_authenticate ? " key pair (always authenticate)" : " key pair") + " on the token");
    free_id_.reset();
    p11::KeyPair pair = p11::generate_key_pair(session_, request);
    test_crash_point("GENERATING_KEY_PAIR:generated");
    key_ = KnownKey{p11::to_hex(pair.id), pair.private_key, nullptr, request.label};
    key_->public_key.reset(pair.public_value.release());
    detail = "generated " + request.type.name() + " key pair (id " + p11::to_hex(pair.id) + ")";
  } else {
    key_ = KnownKey{p11::to_hex(id), key, nullptr, std::nullopt};
  }
  if (!key_->public_key) key_->public_key.reset(p11::public_key(session_, public_half != CK_INVALID_HANDLE ? public_half : key).release());
  StepResult result(JobState::have_key_pair, seconds(0), detail);
  result.update.key_id_hex = key_->id_hex;
  result.update.spki_sha256 = spki_sha256(key_->public_key.get());
  return result;
}

}  // namespace qscd::agent
