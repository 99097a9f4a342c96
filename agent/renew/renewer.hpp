#pragma once
// `renew`: for every certificate on a token whose time left is within the renewal window, a
// renewal job (journal kind `renewal`): a new key pair with the old key's type and label (or the
// old key, --reuse-key), a CSR with the old certificate's subject, a reissue of its order (or,
// only when allowed, a new order naming it), the same wait, checks and install as `provision`,
// then RETIRING_OLD: the old pair relabelled "<label> (superseded)" and removed (--keep-old:
// kept). The old pair stays usable until the new one is installed and verified.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "journal/journal.hpp"
#include "journal/scheduler.hpp"
#include "provision/provisioner.hpp"

namespace qscd::agent {

struct RenewOptions {
  TokenOptions token;          // --token, --pin-source, --allow-final-try
  std::string sign_pin_source; // --sign-pin-source; empty: the user PIN
  bool all = false;            // every initialised token (matching --token when given)
  int within_days = 30;        // --within, else config renew.within_days
  bool dry_run = false;
  bool reuse_key = false;
  bool keep_old = false;
  bool allow_new_order = false;  // --allow-new-order, else config renew.allow_new_order
  std::string order_file;        // --order-file: the new order's body (with --allow-new-order)
  bool approve = false;
  bool no_wait = false;
  std::optional<std::chrono::seconds> timeout;
  std::optional<std::chrono::seconds> poll_interval;
  std::string trust;
};

// What renewal would do for one certificate.
enum class RenewalAction {
  none,             // not due
  reissue,          // reissue of the certificate's order
  new_order,        // a new order naming the old one (allowed)
  new_order_needed, // the order runs out before a new certificate would: not allowed (exit 5)
  resume,           // a renewal job for it exists already and goes on
  no_order,         // no order at CertCentral issued it (nothing to reissue; exit 4)
};
std::string_view to_string(RenewalAction action);

struct RenewalPlan {
  std::string token_label;
  std::string token_serial;
  std::string key_label;
  std::string key_id_hex;
  std::string key_type;      // the old key's ("ec:p256"): the new pair's
  std::string key_uri;
  std::string cert_serial;   // hex
  std::string subject;       // one line
  std::string not_after;     // UTC, ISO 8601
  double days_left = 0;
  double window_days = 0;    // min(--within, a third of the lifetime)
  bool due = false;
  std::string why;           // why it is (not) due, for people
  RenewalAction action = RenewalAction::none;
  std::optional<std::int64_t> order_id;  // the certificate's order, when known
  std::string order_valid_till;
  std::string product;       // the order's product name id, when the order was looked at
  std::optional<std::int64_t> job_id;    // RenewalAction::resume
  std::string detail;        // what renewal would do, for people
};

struct RenewalOutcome {
  RenewalPlan plan;
  std::optional<Job> job;   // the renewal job, when one ran
  RunStop stop = RunStop::finished;
  std::chrono::seconds retry_after{0};
  std::string key_uri;      // the new key
};

class Renewer {
 public:
  // Checks everything local (exit 2 before the token is touched) and reads the PINs and API key.
  Renewer(ProvisionServices services, RenewOptions options);
  ~Renewer();
  Renewer(const Renewer&) = delete;
  Renewer& operator=(const Renewer&) = delete;

  // The tokens this run works on: the selected one, or every matching one with --all.
  std::vector<p11::TokenInfo> tokens();
  // Every certificate with a private key on the token, with what renewal would do. Asks
  // CertCentral for the orders (read only); changes nothing on the token or at the CA.
  std::vector<RenewalPlan> plan(const p11::TokenInfo& token);
  // Resumes the token's unfinished renewal jobs, then renews every due certificate that has no
  // job yet (dry_run: the plan only). One outcome per certificate.
  std::vector<RenewalOutcome> run(const p11::TokenInfo& token);
  // One renewal job, resumed (the daemon's resume action, `renew` on restart).
  RenewalOutcome resume(const p11::TokenInfo& token, std::int64_t job_id);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace qscd::agent
