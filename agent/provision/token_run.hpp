#pragma once
// One token's run of a job: its session, journal connection and CertCentral client, and the
// steps of the state machine over them. One per worker thread. The steps are grouped by what
// they do: key_steps.cpp, csr_step.cpp, order_steps.cpp, install_step.cpp.
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/secret.hpp"
#include "ca/client_factory.hpp"
#include "ca/order_flow.hpp"
#include "ca/poll_schedule.hpp"
#include "certs/seal_level.hpp"
#include "certs/certbundle.hpp"
#include "csr/profile.hpp"
#include "journal/journal.hpp"
#include "journal/scheduler.hpp"
#include "provision/provisioner.hpp"
#include "qscd/api/order.hpp"
#include "qscd/api/product.hpp"
#include "qscd/pkcs11/keys.hpp"
#include "qscd/pkcs11/session.hpp"

namespace qscd::agent {

// What the command line says, checked and parsed once, shared by every token's worker.
struct JobInputs {
  csr::Profile profile{};
  csr::Subject subject;
  bool rsa_pss = false;
  std::optional<p11::KeyType> key_type;
  std::optional<p11::Bytes> id;
  std::optional<p11::Uri> key_uri;
  api::OrderRequest order;  // without the CSR; the job adds it and its tag
  api::ProductRules product;
  std::string attach_order;  // --order ID
  bool approve = false;
  PollSchedule schedule;
  std::optional<std::filesystem::path> trust;
  std::optional<SealLevel> expect_seal;  // --expect
  p11::LoginOptions login;
  api::SecretBytes api_key;
  api::SecretBytes pin;
  // --sign-pin-source: the context-specific login of a CKA_ALWAYS_AUTHENTICATE key (the eToken
  // 5110 CC's Digital Signature PIN); empty: the user PIN.
  api::SecretBytes sign_pin;
  [[nodiscard]] std::span<const unsigned char> signature_pin() const { return sign_pin.empty() ? pin.bytes() : sign_pin.bytes(); }
};

// The token's keys labelled `label`, by class, in one search. Token objects only: a session
// object left by the key pair's staging (p11::generate_key_pair) is not the job's key.
struct LabelledKeys {
  std::vector<p11::ObjectHandle> private_keys;
  std::vector<p11::ObjectHandle> public_keys;
  // Objects in the token's store whose CKA_TOKEN says false: SoftHSM2's C_CopyObject writes the
  // copy with the staged object's attributes before it applies CKA_TOKEN true, so a kill between
  // leaves such a half-made copy (docs/reliability.md). Not keys of anyone: the step removes them.
  std::vector<p11::ObjectHandle> stale;
};
// The keys labelled `label` (by `id` when given). Asked in a session that holds no staged
// session object of this process, so every object with CKA_TOKEN false is a stale copy.
LabelledKeys labelled_keys(const p11::Session& session, const std::string& label);
LabelledKeys keys_with_id(const p11::Session& session, const p11::Bytes& id);

class TokenRun {
 public:
  TokenRun(const ProvisionServices& services, const JobInputs& inputs, const p11::TokenInfo& token, Journal journal);

  void say(const std::string& message) const;
  Journal& journal() { return journal_; }
  p11::Session& session() { return session_; }

  // Login with the token layer's anti-lockout rules. A PIN problem parks a known job in
  // NEED_USER_PIN (the next run with the right PIN continues it) and still fails the run.
  // `start_check`: the TLS pre-warm starts now (a job that places a new order starts it with
  // check_order_at_ca instead, once the token's checks passed).
  void login(const std::optional<Job>& job, bool start_check = true);

  // What CertCentral can tell before the key pair is made: the order's organization is one of
  // the account's and the account has the product. Throws UsageError (--order-file, --product)
  // when it says no; an answer that says nothing (unreachable, 5xx) is left to the order step.
  // Starts the check (with the product) when login did not.
  void check_order_at_ca();

  StepTable steps();
  // The checks of the certificate this run took from CertCentral (unset when no step of this
  // run checked one: the job was past that step already).
  [[nodiscard]] const std::optional<IssuanceReport>& issuance_report() const { return issuance_report_; }

  // The checks a new job makes before it is created, remembered for its key pair step in the
  // same run (nothing writes to the token in between): the keys labelled `label`, and whether
  // no object has the CKA_ID `id`. Each is a search (3 calls, each a round trip on a card),
  // which the key pair step would otherwise make again.
  const LabelledKeys& labelled(const std::string& label);
  bool id_free(const p11::Bytes& id);

 private:
  // The TLS pre-warm: one authenticated GET (the organisation list; with `new_order` also the
  // product) on a second thread, so the order's POST finds the connection made
  // (docs/performance.md). Started after the login, so a wrong PIN sends nothing to the CA; for
  // a new order it is waited for before the key pair is generated (check_order_at_ca).
  void start_ca_check(bool new_order);
  // Waits for it at the first call that needs the CA; a rejected API key throws. Other answers
  // are left to the calls that need the CA, which report them as they always do.
  void finish_ca_check();
  api::Client& client();
  OrderFlow& ca();

  // key_steps.cpp
  StepResult generate(const Job& job);
  p11::ObjectHandle private_key(const Job& job);
  EVP_PKEY* token_public_key(const Job& job);
  // csr_step.cpp
  StepResult make_csr(const Job& job);
  // order_steps.cpp
  StepResult submit(const Job& job);
  StepResult attach(const Job& job);
  StepResult look_up_order(const Job& job);
  StepResult wait_for_ca(const Job& job);
  // install_step.cpp
  StepResult install(const Job& job);

  IssuanceExpectations expectations() const;

  const ProvisionServices& services_;
  const JobInputs& inputs_;
  p11::TokenInfo token_;
  p11::Session session_;
  Journal journal_;
  std::unique_ptr<api::Client> client_;
  std::unique_ptr<OrderFlow> flow_;
  struct KnownKey {
    std::string id_hex;
    p11::ObjectHandle handle = CK_INVALID_HANDLE;
    ossl::EvpPkeyPtr public_key;
    std::optional<std::string> label;  // CKA_LABEL, when this run generated the key
  };
  std::optional<IssuanceReport> issuance_report_;
  std::optional<std::pair<std::string, LabelledKeys>> labelled_;  // labelled(): label and keys
  std::optional<p11::Bytes> free_id_;                               // id_free(): an id found free
  std::optional<KnownKey> key_;  // the job's private key, once looked up or generated
  // Declared after client_: destroyed (joined) before the client it uses.
  struct CaCheck {
    std::optional<api::Outcome<std::vector<api::OrganizationInfo>>> organizations;
    std::optional<api::Outcome<api::ProductInfo>> product;  // asked for a new order only
  };
  std::future<CaCheck> ca_check_;
  std::optional<CaCheck> ca_checked_;
};

// How run_job drives a job for a person watching: one progress line per committed move, one per
// wait saying what it waits for; --no-wait and --timeout.
RunOptions job_run_options(const TokenRun& run, bool wait, std::optional<std::chrono::seconds> timeout);

// run_job, where a step that failed because a stop was asked for (a CertCentral call abandoned,
// already rolled back by run_job) ends the run as RunStop::stopped with the job saved.
RunResult run_job_until_stopped(Journal& journal, std::int64_t id, const StepTable& steps, const RunOptions& options);

// The CN of a request's subject, empty when it has none.
std::string common_name_of(const X509_REQ* request);
// An id CertCentral answered with, as the journal stores it. Throws CaError when it is not a number.
std::int64_t to_order_number(const std::string& id, const std::string& what);

}  // namespace qscd::agent
