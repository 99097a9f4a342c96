#pragma once
// `provision`: one job per token driven through the journal's states (docs/journal.md):
// key pair on the token, CSR from it, CertCentral order (or attach to one), wait, download,
// checks, install, read back. Every step commits before the next starts, so a rerun of the
// same command after a crash, a kill or exit 5 continues the same job.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "context.hpp"
#include "journal.hpp"
#include "scheduler.hpp"
#include "token_access.hpp"

namespace qscd::agent {

struct ProvisionOptions {
  std::string profile;
  std::string product;
  TokenOptions token;
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
  std::chrono::seconds poll_interval{60};
  std::string trust;
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
};

// Checks everything that needs neither the token nor the CA (exit 2 before anything changes).
// Returns the prepared request; throws UsageError naming the option.
class Provisioner {
 public:
  Provisioner(Context& context, ProvisionOptions options);
  ~Provisioner();
  Provisioner(const Provisioner&) = delete;
  Provisioner& operator=(const Provisioner&) = delete;

  // The tokens this run works on: the selected one, or every matching one with --all.
  std::vector<p11::TokenInfo> tokens();
  // One job on one token, to the end or until it waits (thread-safe across tokens: each call
  // has its own session, journal connection and CertCentral client).
  ProvisionOutcome run(const p11::TokenInfo& token);

 private:
  struct Prepared;
  // The connection the constructor opened, for the first run; later runs open their own.
  Journal journal_connection();

  Context& context_;
  ProvisionOptions options_;
  std::unique_ptr<Prepared> prepared_;
  std::mutex spare_journal_mutex_;
  std::optional<Journal> spare_journal_;
};

}  // namespace qscd::agent
