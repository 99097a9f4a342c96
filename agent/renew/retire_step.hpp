#pragma once
// RETIRING_OLD, a renewal's last step: the new pair proves itself (a signature by the new key
// that the installed certificate's public key verifies), then the replaced pair is relabelled
// "<label> (superseded)" and removed, or kept with --keep-old. Idempotent: a restart finds what
// is left of the old pair by its CKA_ID and goes on.
#include <optional>
#include <span>

#include "journal/journal.hpp"
#include "journal/scheduler.hpp"
#include "qscd/pkcs11/login.hpp"
#include "qscd/pkcs11/session.hpp"

namespace qscd::agent {

struct RetireOptions {
  bool keep_old = false;
  std::span<const unsigned char> signature_pin;  // the context-specific login, when the key asks
  p11::LoginOptions login;
};

StepResult retire_old_pair(p11::Session& session, const Job& job, const RetireOptions& options);

// The rollback of a FAILED renewal: the pair it made (never the old one, never a reused key) is
// destroyed, so the token holds the old pair alone again under its label. Returns how many
// objects went; 0 when there was nothing (already removed, or the job reused its key).
std::size_t discard_failed_renewal_pair(p11::Session& session, const Job& job);

}  // namespace qscd::agent
