#pragma once
// The CertCentral client as the commands need it: built from the global
// options and the config, and its outcomes turned into the agent's errors.
#include <string>

#include "context.hpp"
#include "errors.hpp"
#include "qscd/api/client.hpp"

namespace qscd::agent {

// --api-url / config api.base_url / the EU default; --ca-file / api.ca_file;
// the key from --api-key-source / api.key_source / env:CERTCENTRAL_API_KEY.
// A refused URL or CA file is a UsageError (exit 2).
api::Client make_ca_client(Context& context);

// The value of an ok outcome; otherwise StillWaiting (pending, exit 5) or
// CaError (rejected, unreachable, refused, malformed: exit 4) saying `what` failed.
template <class T>
T& take(api::Outcome<T>& outcome, const std::string& what) {
  if (outcome.ok()) return outcome.value();
  if (outcome.kind() == api::OutcomeKind::pending) throw StillWaiting(what + ": " + outcome.describe());
  throw CaError(what + ": " + outcome.describe());
}

}  // namespace qscd::agent
