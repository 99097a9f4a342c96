#pragma once
// The journal: one SQLite file (journal.sqlite, mode 0600, WAL, synchronous=FULL)
// in the state folder holding every provisioning job, its state, what it needs to
// resume (intended key id/label, CSR, job tag, order id) and its evidence record.
// Every state change is one transaction together with its event row.
//
// Several connections may be open at once (provision --all runs one worker per
// token; two runs may resume the same job). A job is driven only by the process that
// holds its lease (claim()); a lease whose process is gone is taken over, and
// taking it over applies the restart rule. docs/journal.md has the whole story.
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/errors.hpp"
#include "journal/job_state.hpp"

namespace qscd::agent {

namespace sql {
class Database;
}

// The journal file cannot be opened, migrated or written.
class JournalError : public AgentError {
 public:
  explicit JournalError(const std::string& message) : AgentError(message) {}
};

// Another live process holds the job's lease: nothing was changed.
class JobBusy : public AgentError {
 public:
  explicit JobBusy(const std::string& message) : AgentError(message) {}
};

// No job with this id in the journal.
class UnknownJob : public AgentError {
 public:
  UnknownJob(std::int64_t id, const std::string& message) : AgentError(message), id_(id) {}
  [[nodiscard]] std::int64_t id() const noexcept { return id_; }

 private:
  std::int64_t id_;
};

// A provisioning makes a token's first key and certificate; a renewal replaces a certificate
// (and, unless the key is reused, its key pair) that is running out.
enum class JobKind { provision, renewal };
std::string_view to_string(JobKind kind);

// How a renewal gets its certificate: a reissue of the old certificate's order while the order
// outlasts the new certificate, else a new (paid) order naming the old one.
enum class RenewalPath { reissue, new_order };
std::string_view to_string(RenewalPath path);

// What identifies a job: at most one job that is not FAILED exists per key.
struct JobKey {
  std::string token_serial;
  std::string key_label;
  std::string profile;
  std::string product;
  // A renewal: the serial (hex) of the certificate it replaces; empty for a provisioning.
  std::string renews_serial{};
  // "serial/label/profile/product[/renews SERIAL]", for people.
  [[nodiscard]] std::string display() const;
};

// What a renewal job knows of the certificate it replaces, fixed when it is created.
struct RenewalOf {
  std::string key_id_hex;  // the old key's CKA_ID (== the job's key_id_hex with --reuse-key)
  std::optional<std::int64_t> order_id;  // the old certificate's order
  RenewalPath path = RenewalPath::reissue;
  std::string key_type;  // the new pair's type, the old key's ("rsa:3072", "ec:p256")
};

struct Job {
  std::int64_t id = 0;
  JobKey key;
  JobKind kind = JobKind::provision;
  std::optional<RenewalOf> renewal;  // set for kind == renewal
  JobState state = JobState::need_key_pair;
  // While NEED_USER_PIN / NEED_TOKEN: the safe state to return to.
  std::optional<JobState> waiting_from;
  std::string job_tag;  // unique, random; goes into the order's comments
  std::string token_model;
  std::string token_manufacturer;
  std::string key_id_hex;  // CKA_ID, recorded before the key is generated
  std::string subject;     // the CSR's subject, one line
  std::string operator_name;
  std::string csr_pem;
  std::optional<std::int64_t> order_id;
  std::optional<std::int64_t> request_id;
  std::optional<std::int64_t> certificate_id;
  std::string submit_intent_at;  // when the first SUBMITTING began (UTC, ISO 8601)
  // Evidence.
  std::string spki_sha256;  // hex
  std::string csr_sha256;
  std::string cert_sha256;
  std::string cert_serial;  // hex, as OpenSSL prints it
  std::string chain_pem;    // end entity first, then intermediates
  std::string last_error;
  std::string created_at;
  std::string updated_at;
  std::optional<pid_t> claimed_by;
};

struct JobEvent {
  JobState state;
  std::string at;
  std::string detail;
};

struct NewJob {
  JobKey key;
  // NEED_KEY_PAIR (the agent generates the key) or HAVE_KEY_PAIR (an existing key:
  // key_id_hex must be set).
  JobState initial_state = JobState::need_key_pair;
  std::string key_id_hex;
  std::string token_model;
  std::string token_manufacturer;
  std::string operator_name;  // current_user_name() when empty
  // A renewal (key.renews_serial must be set): what it replaces.
  std::optional<RenewalOf> renewal;
};

// Fields a transition may set along with the new state; unset ones stay.
struct JobUpdate {
  std::optional<std::string> key_id_hex;
  std::optional<std::string> token_model;
  std::optional<std::string> token_manufacturer;
  std::optional<std::string> subject;
  std::optional<std::string> csr_pem;
  std::optional<std::int64_t> order_id;
  std::optional<std::int64_t> request_id;
  std::optional<std::int64_t> certificate_id;
  std::optional<std::string> spki_sha256;
  std::optional<std::string> csr_sha256;
  std::optional<std::string> cert_sha256;
  std::optional<std::string> cert_serial;
  std::optional<std::string> chain_pem;
};

class Journal {
 public:
  static constexpr const char* file_name = "journal.sqlite";

  // Opens (creating 0600 when missing) state_dir/journal.sqlite and migrates it.
  static Journal open(const std::filesystem::path& state_dir);
  explicit Journal(const std::filesystem::path& file);
  ~Journal();
  Journal(Journal&&) noexcept;
  Journal& operator=(Journal&&) noexcept;

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  // The schema version this file is at (== latest after open).
  [[nodiscard]] int schema_version();
  static int latest_schema_version();

  // Inserts a job with a fresh job tag. Throws UsageError when a job that is not
  // FAILED already exists for the key.
  Job create(const NewJob& job);
  // The live (not FAILED) job for the key, or a new one; `created` tells which.
  // One transaction, so two workers racing on one key get the same job.
  Job find_or_create(const NewJob& job, bool* created = nullptr);

  [[nodiscard]] std::optional<Job> find(std::int64_t id);
  // The job for the key that is not FAILED, if any.
  [[nodiscard]] std::optional<Job> find(const JobKey& key);
  // The newest FAILED job for the key's token, label and renewed serial (any profile and
  // product), if any: whose key pair a new job may take over when no order carried it.
  [[nodiscard]] std::optional<Job> last_failed(const JobKey& key);
  // Throws UnknownJob when there is no such job.
  [[nodiscard]] Job get(std::int64_t id);
  [[nodiscard]] std::vector<Job> list();
  // The jobs of one token (by serial) that are neither MONITORING nor FAILED: what a resume runs.
  [[nodiscard]] std::vector<Job> unfinished(const std::string& token_serial);
  [[nodiscard]] std::vector<JobEvent> events(std::int64_t id);

  // Takes the job's lease for this process. When the previous holder is gone
  // (or never was), the restart rule is applied in the same transaction: an
  // in-flight state rolls back to restart_state() and an event says so.
  // Throws JobBusy when another live process holds it. Idempotent for the holder.
  Job claim(std::int64_t id);
  // Gives the lease back if this process holds it. Never throws.
  void release(std::int64_t id) noexcept;

  // Moves the job from `from` to `to` with `update`, one transaction with its
  // event row. Throws std::logic_error when the table does not allow it or when
  // a wait returns to another state than it came from, JournalError when the job
  // is not in `from` or this process does not hold its lease. Clears last_error,
  // except into FAILED, where `detail` becomes last_error.
  Job transition(std::int64_t id, JobState from, JobState to, const std::string& detail = {},
                 const JobUpdate& update = {});

  // One move of a chain.
  struct Move {
    JobState to = JobState::failed;
    std::string detail;
    JobUpdate update;
  };
  // Asked, inside the transaction, for the move that follows at once (a step with no effect
  // outside the journal); nullopt ends the chain.
  using NextMove = std::function<std::optional<Move>(const Job&)>;
  // `first` and every move `next` names after it, each checked as transition() checks it,
  // each with its event row, in one transaction: one commit (and one fsync) for the chain.
  // `passed` receives the job after each move. Returns the job after the last.
  Job transition_chain(std::int64_t id, JobState from, const Move& first, const NextMove& next,
                       std::vector<Job>* passed = nullptr);
  // find_or_create, and a job it creates also makes the moves `next` names (the effect-free
  // steps its first state starts with) in the same transaction; `passed` receives the job after
  // each of them.
  Job find_or_create(const NewJob& job, bool* created, const NextMove& next, std::vector<Job>* passed);
  // Records a failed attempt that leaves the state as it is (a retry later).
  void record_error(std::int64_t id, const std::string& error);

 private:
  void migrate();
  int current_schema_version();
  Job load(std::int64_t id);
  // One checked move inside the caller's transaction.
  Job apply_move(std::int64_t id, JobState from, const Move& move);
  // The moves `next` names after `job`, inside the caller's transaction.
  Job follow_chain(std::int64_t id, Job job, const NextMove& next, std::vector<Job>* passed);

  std::filesystem::path path_;
  std::string owner_;  // random per connection: tells worker threads of one process apart
  std::unique_ptr<sql::Database> db_;
};

// Holds a job's lease for a scope.
class JobLease {
 public:
  JobLease(Journal& journal, std::int64_t id) : journal_(journal), id_(id), job_(journal.claim(id)) {}
  ~JobLease() { journal_.release(id_); }
  JobLease(const JobLease&) = delete;
  JobLease& operator=(const JobLease&) = delete;
  // The job as it was when claimed (after the restart rule).
  [[nodiscard]] const Job& job() const noexcept { return job_; }

 private:
  Journal& journal_;
  std::int64_t id_;
  Job job_;
};

// The login name of the effective user ("uid N" when it has none).
std::string current_user_name();

}  // namespace qscd::agent
