#include "journal/journal.hpp"

#include "base/hex.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "journal/journal_rows.hpp"
#include "journal/sqlite.hpp"

namespace qscd::agent {

using rows::add_event;
using rows::Claim;
using rows::guarded;
using rows::job_columns;
using rows::load_job;
using rows::now_sql;
using rows::read_job;

namespace {

// Migration N (1-based) brings the schema from version N-1 to N. Append only.
const std::array<const char*, 3> migrations{
    R"sql(
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  token_serial TEXT NOT NULL,
  key_label TEXT NOT NULL,
  profile TEXT NOT NULL,
  product TEXT NOT NULL,
  state TEXT NOT NULL,
  waiting_from TEXT,
  job_tag TEXT NOT NULL UNIQUE,
  token_model TEXT NOT NULL DEFAULT '',
  token_manufacturer TEXT NOT NULL DEFAULT '',
  key_id_hex TEXT NOT NULL DEFAULT '',
  subject TEXT NOT NULL DEFAULT '',
  operator_name TEXT NOT NULL DEFAULT '',
  csr_pem TEXT NOT NULL DEFAULT '',
  order_id INTEGER,
  request_id INTEGER,
  certificate_id INTEGER,
  submit_intent_at TEXT NOT NULL DEFAULT '',
  spki_sha256 TEXT NOT NULL DEFAULT '',
  csr_sha256 TEXT NOT NULL DEFAULT '',
  cert_sha256 TEXT NOT NULL DEFAULT '',
  cert_serial TEXT NOT NULL DEFAULT '',
  chain_pem TEXT NOT NULL DEFAULT '',
  last_error TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  claimed_by_pid INTEGER,
  claim_start TEXT,
  claim_owner TEXT
);
-- At most one job that is not FAILED per token serial + key label + profile + product.
CREATE UNIQUE INDEX jobs_live_key ON jobs(token_serial, key_label, profile, product) WHERE state <> 'FAILED';
CREATE TABLE job_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  state TEXT NOT NULL,
  at TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX job_events_job ON job_events(job_id, id);
)sql",
    // 2: renewal jobs. A renewal is keyed by the certificate it replaces too, so it lives beside
    // the MONITORING provisioning of the same label.
    R"sql(
ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'provision';
ALTER TABLE jobs ADD COLUMN renews_serial TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN old_key_id_hex TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN old_order_id INTEGER;
ALTER TABLE jobs ADD COLUMN renewal_path TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN key_type TEXT NOT NULL DEFAULT '';
DROP INDEX jobs_live_key;
-- At most one job that is not FAILED per token serial + key label + profile + product + replaced certificate.
CREATE UNIQUE INDEX jobs_live_key ON jobs(token_serial, key_label, profile, product, renews_serial) WHERE state <> 'FAILED';
)sql",
    // 3: the leases a connection gives back when it closes are found by index: without it every
    // command scanned all jobs on exit (docs/performance.md, benchmark 6). Only jobs being worked
    // on hold a lease, so the index stays small.
    R"sql(
CREATE INDEX jobs_claimed ON jobs(claimed_by_pid) WHERE claimed_by_pid IS NOT NULL;
)sql",
};



// Tags only need to be unique, not secret: the kernel's getrandom, which spares opening a
// journal the set-up of OpenSSL's random generator.
std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  if (::getrandom(raw.data(), bytes, 0) != static_cast<ssize_t>(bytes)) {
    throw JournalError("journal: no random bytes for a job tag");
  }
  return hex_lower({reinterpret_cast<const unsigned char*>(raw.data()), raw.size()});
}

// Field 22 of /proc/PID/stat: the process start time in clock ticks since boot.
// With the pid it names one process for good, so a reused pid is not mistaken
// for the lease holder.
std::string process_start_time(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return {};
  auto close = line.rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos) return {};
  std::istringstream fields(line.substr(close + 2));
  std::string field;
  for (int index = 3; index <= 22 && (fields >> field); ++index) {
    if (index == 22) return field;
  }
  return {};
}

// Creates the file 0600 before SQLite sees it; SQLite gives its -wal and -shm
// files the database file's mode.
void create_private_file(const std::filesystem::path& file) {
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) throw JournalError("journal: cannot create " + file.string() + ": " + std::strerror(errno));
  int rc = ::fchmod(fd, 0600);
  int saved = errno;
  ::close(fd);
  if (rc != 0) throw JournalError("journal: cannot chmod " + file.string() + ": " + std::strerror(saved));
}


}  // namespace

std::string JobKey::display() const {
  return token_serial + "/" + key_label + "/" + profile + "/" + product + (renews_serial.empty() ? "" : "/renews " + renews_serial);
}

std::string current_user_name() {
  uid_t uid = ::geteuid();
  std::array<char, 4096> buffer{};
  passwd entry{};
  passwd* found = nullptr;
  if (::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) {
    return found->pw_name;
  }
  return "uid " + std::to_string(uid);
}

Journal Journal::open(const std::filesystem::path& state_dir) { return Journal(state_dir / file_name); }

Journal::Journal(const std::filesystem::path& file) : path_(file), owner_(random_hex(16)) {
  create_private_file(path_);
  guarded(path_, [&] {
    db_ = std::make_unique<sql::Database>(path_);
    // busy_timeout first: the other pragmas and the migration may wait on another process.
    db_->exec("PRAGMA busy_timeout = 10000");
    db_->exec("PRAGMA journal_mode = WAL");
    db_->exec("PRAGMA synchronous = FULL");
    db_->exec("PRAGMA foreign_keys = ON");
    // The WAL is durable (synchronous = FULL): the checkpoint can wait for SQLite's automatic
    // one instead of costing every command a write and an fsync of the database file at exit.
    // But each process's first connection reads the whole WAL again to rebuild its index, a cost
    // that grows with the WAL, so the automatic one comes every 128 pages, not every 1000
    // (docs/performance.md, session 6).
    sqlite3_db_config(db_->handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    db_->exec("PRAGMA wal_autocheckpoint = 128");
    if (current_schema_version() != latest_schema_version()) migrate();
    return 0;
  });
}

Journal::~Journal() {
  if (!db_) return;
  // Leases this connection still holds end with it (a worker thread that
  // returned without release()).
  try {
    auto stmt = db_->prepare(
        "UPDATE jobs SET claimed_by_pid = NULL, claim_start = NULL, claim_owner = NULL WHERE claimed_by_pid = ?1 "
        "AND claim_owner = ?2");
    stmt.bind(1, static_cast<std::int64_t>(::getpid())).bind(2, owner_);
    stmt.run();
  } catch (const std::exception&) {
    // Nothing to do: a dead owner's lease is taken over on the next claim anyway.
  }
}

Journal::Journal(Journal&&) noexcept = default;
Journal& Journal::operator=(Journal&&) noexcept = default;

int Journal::latest_schema_version() { return static_cast<int>(migrations.size()); }

int Journal::schema_version() {
  return guarded(path_, [&] {
    auto stmt = db_->prepare("SELECT version FROM schema_version");
    return stmt.step() ? static_cast<int>(stmt.integer(0)) : 0;
  });
}

// The version without a write lock: a journal that is up to date needs no transaction to open.
int Journal::current_schema_version() {
  try {
    auto stmt = db_->prepare("SELECT version FROM schema_version");
    return stmt.step() ? static_cast<int>(stmt.integer(0)) : 0;
  } catch (const sql::Error&) {
    return 0;  // no schema_version table yet: a new file
  }
}

void Journal::migrate() {
  sql::Transaction tx(*db_);
  db_->exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
  int version = 0;
  {
    auto stmt = db_->prepare("SELECT version FROM schema_version");
    if (stmt.step()) {
      version = static_cast<int>(stmt.integer(0));
    } else {
      db_->exec("INSERT INTO schema_version (version) VALUES (0)");
    }
  }
  if (version > latest_schema_version()) {
    throw JournalError("journal " + path_.string() + " has schema version " + std::to_string(version) +
                       ", newer than this qscd-agent knows (" + std::to_string(latest_schema_version()) + ")");
  }
  for (auto index = static_cast<std::size_t>(version); index < migrations.size(); ++index) {
    db_->exec(migrations[index]);
    auto stmt = db_->prepare("UPDATE schema_version SET version = ?1");
    stmt.bind(1, static_cast<std::int64_t>(index + 1));
    stmt.run();
  }
  tx.commit();
}

Job Journal::load(std::int64_t id) { return load_job(*db_, path_, id); }

namespace {

std::optional<std::int64_t> live_job_id(sql::Database& db, const JobKey& key) {
  auto stmt = db.prepare(
      "SELECT id FROM jobs WHERE token_serial = ?1 AND key_label = ?2 AND profile = ?3 AND product = ?4 "
      "AND renews_serial = ?5 AND state <> 'FAILED'");
  stmt.bind(1, key.token_serial).bind(2, key.key_label).bind(3, key.profile).bind(4, key.product).bind(5, key.renews_serial);
  if (!stmt.step()) return std::nullopt;
  return stmt.integer(0);
}

// `claim`: the new job's lease, taken in the same statement (its creator works on it next).
std::int64_t insert_job(sql::Database& db, const NewJob& job, const std::string& tag, const Claim* claim = nullptr) {
  if (job.initial_state != JobState::need_key_pair && job.initial_state != JobState::have_key_pair) {
    throw std::logic_error("a job starts in NEED_KEY_PAIR or HAVE_KEY_PAIR, not " +
                           std::string(to_string(job.initial_state)));
  }
  if (job.initial_state == JobState::have_key_pair && job.key_id_hex.empty()) {
    throw std::logic_error("a job that starts with a key (HAVE_KEY_PAIR) needs its CKA_ID");
  }
  if (job.renewal.has_value() != !job.key.renews_serial.empty()) {
    throw std::logic_error("a renewal job names the certificate it replaces (renews_serial), and only a renewal does");
  }
  auto stmt = db.prepare(std::string("INSERT INTO jobs (token_serial, key_label, profile, product, state, job_tag, "
                                     "token_model, token_manufacturer, key_id_hex, operator_name, claimed_by_pid, "
                                     "claim_start, claim_owner, kind, renews_serial, old_key_id_hex, old_order_id, "
                                     "renewal_path, key_type, created_at, updated_at) "
                                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
                                     "?17, ?18, ?19, ") +
                         now_sql + ", " + now_sql + ")");
  stmt.bind(1, job.key.token_serial)
      .bind(2, job.key.key_label)
      .bind(3, job.key.profile)
      .bind(4, job.key.product)
      .bind(5, to_string(job.initial_state))
      .bind(6, tag)
      .bind(7, job.token_model)
      .bind(8, job.token_manufacturer)
      .bind(9, job.key_id_hex)
      .bind(10, job.operator_name.empty() ? current_user_name() : job.operator_name);
  if (claim != nullptr) {
    stmt.bind(11, claim->pid).bind(12, claim->start).bind(13, claim->owner);
  } else {
    stmt.bind_null(11).bind_null(12).bind_null(13);
  }
  const RenewalOf none;
  const RenewalOf& renewal = job.renewal ? *job.renewal : none;
  stmt.bind(14, std::string(to_string(job.renewal ? JobKind::renewal : JobKind::provision)))
      .bind(15, job.key.renews_serial)
      .bind(16, renewal.key_id_hex)
      .bind(17, renewal.order_id)
      .bind(18, job.renewal ? std::string(to_string(renewal.path)) : std::string())
      .bind(19, renewal.key_type);
  stmt.run();
  std::int64_t id = db.last_insert_rowid();
  add_event(db, id, job.initial_state, "job created");
  return id;
}

}  // namespace

Job Journal::create(const NewJob& job) {
  return guarded(path_, [&] {
    sql::Transaction tx(*db_);
    if (auto existing = live_job_id(*db_, job.key)) {
      throw UsageError("job", "job " + std::to_string(*existing) + " already exists for " + job.key.display());
    }
    std::int64_t id = insert_job(*db_, job, "qscd-" + random_hex(16));
    Job created = load(id);
    tx.commit();
    return created;
  });
}

Job Journal::find_or_create(const NewJob& job, bool* created) { return find_or_create(job, created, nullptr, nullptr); }

Job Journal::find_or_create(const NewJob& job, bool* created, const NextMove& next, std::vector<Job>* passed) {
  return guarded(path_, [&] {
    sql::Transaction tx(*db_);
    auto existing = live_job_id(*db_, job.key);
    // A new job is claimed by its creator at once: run_job's claim then has nothing to write.
    const Claim self{static_cast<std::int64_t>(::getpid()), process_start_time(::getpid()), owner_};
    std::int64_t id = existing ? *existing : insert_job(*db_, job, "qscd-" + random_hex(16), &self);
    Job result = load(id);
    if (!existing) result = follow_chain(id, std::move(result), next, passed);
    tx.commit();
    if (created != nullptr) *created = !existing.has_value();
    return result;
  });
}

std::optional<Job> Journal::find(std::int64_t id) {
  return guarded(path_, [&]() -> std::optional<Job> {
    auto stmt = db_->prepare(std::string("SELECT ") + job_columns + " FROM jobs WHERE id = ?1");
    stmt.bind(1, id);
    if (!stmt.step()) return std::nullopt;
    return read_job(stmt);
  });
}

std::optional<Job> Journal::find(const JobKey& key) {
  return guarded(path_, [&]() -> std::optional<Job> {
    auto id = live_job_id(*db_, key);
    if (!id) return std::nullopt;
    return load(*id);
  });
}

std::optional<Job> Journal::last_failed(const JobKey& key) {
  return guarded(path_, [&]() -> std::optional<Job> {
    auto stmt = db_->prepare(
        "SELECT id FROM jobs WHERE token_serial = ?1 AND key_label = ?2 AND renews_serial = ?3 AND state = 'FAILED' "
        "ORDER BY id DESC LIMIT 1");
    stmt.bind(1, key.token_serial).bind(2, key.key_label).bind(3, key.renews_serial);
    if (!stmt.step()) return std::nullopt;
    const std::int64_t id = stmt.integer(0);
    return load(id);
  });
}

Job Journal::get(std::int64_t id) {
  return guarded(path_, [&] { return load(id); });
}

std::vector<Job> Journal::list() {
  return guarded(path_, [&] {
    std::vector<Job> jobs;
    auto stmt = db_->prepare(std::string("SELECT ") + job_columns + " FROM jobs ORDER BY id");
    while (stmt.step()) jobs.push_back(read_job(stmt));
    return jobs;
  });
}

// `state <> 'FAILED'` spelled as in jobs_live_key's WHERE lets SQLite use that partial index
// (token_serial first); `NOT IN (...)` made every provisioning scan all jobs.
std::vector<Job> Journal::unfinished(const std::string& token_serial) {
  return guarded(path_, [&] {
    std::vector<Job> jobs;
    auto stmt = db_->prepare(std::string("SELECT ") + job_columns +
                             " FROM jobs WHERE token_serial = ?1 AND state <> 'FAILED' AND state <> 'MONITORING' ORDER BY id");
    stmt.bind(1, token_serial);
    while (stmt.step()) jobs.push_back(read_job(stmt));
    return jobs;
  });
}

std::vector<JobEvent> Journal::events(std::int64_t id) {
  return guarded(path_, [&] {
    std::vector<JobEvent> events;
    auto stmt = db_->prepare("SELECT state, at, detail FROM job_events WHERE job_id = ?1 ORDER BY id");
    stmt.bind(1, id);
    while (stmt.step()) events.push_back({rows::state_column(stmt.text(0)), stmt.text(1), stmt.text(2)});
    return events;
  });
}

Job Journal::claim(std::int64_t id) {
  return guarded(path_, [&] {
    sql::Transaction tx(*db_);
    Claim holder;
    Job job = load_job(*db_, path_, id, &holder);
    const auto self = static_cast<std::int64_t>(::getpid());
    if (holder.pid && holder.owner == owner_ && *holder.pid == self) return job;  // already ours
    if (holder.pid) {
      bool alive = *holder.pid == self || process_start_time(static_cast<pid_t>(*holder.pid)) == holder.start;
      if (alive) {
        throw JobBusy("job " + std::to_string(id) + " is being worked on by process " +
                      std::to_string(*holder.pid));
      }
    }
    auto stmt = db_->prepare(std::string("UPDATE jobs SET claimed_by_pid = ?1, claim_start = ?2, claim_owner = ?3, "
                                         "state = ?4, updated_at = ") +
                             now_sql + " WHERE id = ?5");
    JobState resumed = restart_state(job.state);
    stmt.bind(1, self).bind(2, process_start_time(::getpid())).bind(3, owner_).bind(4, to_string(resumed)).bind(5, id);
    stmt.run();
    if (resumed != job.state) {
      std::string who = holder.pid ? "process " + std::to_string(*holder.pid) : "its last process";
      add_event(*db_, id, resumed,
                "restart: " + std::string(to_string(job.state)) + " was in flight when " + who + " stopped");
    }
    Job claimed = load(id);
    tx.commit();
    return claimed;
  });
}

void Journal::release(std::int64_t id) noexcept {
  if (!db_) return;
  try {
    auto stmt = db_->prepare(
        "UPDATE jobs SET claimed_by_pid = NULL, claim_start = NULL, claim_owner = NULL WHERE id = ?1 AND "
        "claimed_by_pid = ?2 AND claim_owner = ?3");
    stmt.bind(1, id).bind(2, static_cast<std::int64_t>(::getpid())).bind(3, owner_);
    stmt.run();
  } catch (const std::exception&) {
    // A lease left behind is taken over once this process is gone.
  }
}

}  // namespace qscd::agent
