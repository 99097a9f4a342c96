#pragma once
// `provision`: one job per token driven through the journal's states (docs/journal.md): key
// pair on the token, CSR from it, CertCentral order (or attach to one), wait, download, checks,
// install, read back. Every step commits before the next starts, so a rerun of the same command
// after a crash, a kill or exit 5 continues the same job.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ca/client_factory.hpp"
#include "certs/certbundle.hpp"
#include "ca/order_lookup.hpp"
#include "hooks/post_install.hpp"
#include "journal/journal.hpp"
#include "journal/scheduler.hpp"
#include "token/token_access.hpp"

namespace qscd::agent {

// What a job needs from the process; the CLI's Context provides it.
struct ProvisionServices {
  TokenAccess tokens;
  std::function<std::filesystem::path()> state_dir;  // created on first use
  CaSettings ca;
  std::optional<PostInstallHook> post_install;  // config hooks.post_install
};

// After a job installed its certificate in this run: the post-install hook, its result logged.
void run_post_install_hook(const ProvisionServices& services, const Job& job, const std::string& key_uri);

struct ProvisionOptions {
  std::string profile;
  std::string product;
  TokenOptions token;
  std::string sign_pin_source;  // --sign-pin-source; empty: the user PIN
  std::string key;  // --key URI: use this key instead of generating one
  std::string key_type;
  std::string label;
  std::string id;  // --id HEX
  std::string subject_file;
  std::vector<std::string> set;
  bool rsa_pss = false;
  std::string order_file;
  std::string attach_order;  // --order ID
  bool approve = false;
  bool no_wait = false;
  std::optional<std::chrono::seconds> timeout;
  std::optional<std::chrono::seconds> poll_interval;  // --poll-interval: the waiting schedule's cap
  std::string trust;
  std::string expect;  // --expect qualified|advanced: the least seal level to install
  std::optional<std::int64_t> job_id;
  bool all = false;
};

struct ProvisionOutcome {
  Job job;
  RunStop stop = RunStop::finished;
  std::chrono::seconds retry_after{0};
  std::string token_label;
  std::string key_uri;
  bool already_done = false;  // the job was finished before this run
  std::optional<IssuanceReport> checks;  // the issuance checks, when this run made them
};

struct JobInputs;

// Checks everything that needs neither the token nor the CA (bad input is refused before
// anything changes), then runs one job per selected token.
class Provisioner {
 public:
  Provisioner(ProvisionServices services, ProvisionOptions options);
  ~Provisioner();
  Provisioner(const Provisioner&) = delete;
  Provisioner& operator=(const Provisioner&) = delete;

  // The tokens this run works on: the selected one, or every matching one with --all.
  std::vector<p11::TokenInfo> tokens();
  // One job on one token, to the end or until it waits (thread-safe across tokens: each call
  // has its own session, journal connection and CertCentral client).
  ProvisionOutcome run(const p11::TokenInfo& token);

 private:
  // The connection the constructor opened, for the first run; later runs open their own.
  Journal journal_connection();

  ProvisionServices services_;
  ProvisionOptions options_;
  std::unique_ptr<JobInputs> inputs_;
  std::optional<p11::TokenInfo> selected_token_;  // without --all, chosen once
  std::mutex spare_journal_mutex_;
  std::optional<Journal> spare_journal_;
};

// How a job's order is found again at CertCentral (NEED_ORDER_LOOKUP).
OrderSearch order_search(const Job& job, std::string common_name = {});

}  // namespace qscd::agent
