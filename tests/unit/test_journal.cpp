#include <doctest/doctest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "journal/journal.hpp"
#include "journal/scheduler.hpp"
#include "scratch_dir.hpp"
#include "journal/sqlite.hpp"

using namespace qscd::agent;
using std::chrono::seconds;

namespace {

NewJob seal_job(const std::string& serial = "0123456789abcdef") {
  NewJob job;
  job.key = {serial, "seal", "pkio-eseal", "pkio_qualified_organisation_services"};
  job.token_model = "SoftHSM v2";
  job.token_manufacturer = "SoftHSM project";
  job.operator_name = "officer";
  return job;
}

unsigned mode_of(const std::filesystem::path& path) {
  struct stat info {};
  REQUIRE(::stat(path.c_str(), &info) == 0);
  return info.st_mode & 0777;
}

std::vector<std::string> event_states(Journal& journal, std::int64_t id) {
  std::vector<std::string> states;
  for (const auto& event : journal.events(id)) states.emplace_back(to_string(event.state));
  return states;
}

}  // namespace

TEST_CASE("the journal file is 0600, WAL, synchronous FULL, at the latest schema") {
  ScratchDir dir;
  mode_t old_umask = ::umask(0);
  auto journal = Journal::open(dir.path());
  ::umask(old_umask);
  journal.create(seal_job());  // writes, so the -wal file exists
  CHECK(journal.path() == dir.path() / "journal.sqlite");
  CHECK(mode_of(journal.path()) == 0600);
  CHECK(mode_of(dir.path() / "journal.sqlite-wal") == 0600);
  CHECK(journal.schema_version() == Journal::latest_schema_version());

  sql::Database raw(journal.path());
  auto mode = raw.prepare("PRAGMA journal_mode");
  REQUIRE(mode.step());
  CHECK(mode.text(0) == "wal");
}

TEST_CASE("an existing file with loose permissions is tightened, and reopening keeps the jobs") {
  ScratchDir dir;
  auto file = dir.path() / "journal.sqlite";
  std::int64_t id = 0;
  {
    auto journal = Journal::open(dir.path());
    id = journal.create(seal_job()).id;
  }
  ::chmod(file.c_str(), 0644);
  auto journal = Journal::open(dir.path());
  CHECK(mode_of(file) == 0600);
  CHECK(journal.get(id).key.key_label == "seal");
}

TEST_CASE("a journal from a newer agent is refused") {
  ScratchDir dir;
  { auto journal = Journal::open(dir.path()); }
  {
    sql::Database raw(dir.path() / "journal.sqlite");
    raw.exec("UPDATE schema_version SET version = 99");
  }
  CHECK_THROWS_WITH_AS(Journal::open(dir.path()),
                       ("journal " + (dir.path() / "journal.sqlite").string() +
                        " has schema version 99, newer than this qscd-agent knows (" + std::to_string(Journal::latest_schema_version()) + ")")
                           .c_str(),
                       JournalError);
}

TEST_CASE("a version 1 journal (before renewals) migrates and keeps its jobs as provisionings") {
  ScratchDir dir;
  {
    auto journal = Journal::open(dir.path());
    journal.create(seal_job());
    // Back to version 1: what an agent without renewals wrote.
    sql::Database raw(dir.path() / "journal.sqlite");
    raw.exec("DROP INDEX jobs_live_key");
    raw.exec("DROP INDEX jobs_claimed");
    for (const char* column : {"kind", "renews_serial", "old_key_id_hex", "old_order_id", "renewal_path", "key_type"}) {
      raw.exec(std::string("ALTER TABLE jobs DROP COLUMN ") + column);
    }
    raw.exec("CREATE UNIQUE INDEX jobs_live_key ON jobs(token_serial, key_label, profile, product) WHERE state <> 'FAILED'");
    raw.exec("UPDATE schema_version SET version = 1");
  }
  auto journal = Journal::open(dir.path());
  CHECK(journal.schema_version() == Journal::latest_schema_version());
  auto jobs = journal.list();
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].kind == JobKind::provision);
  CHECK_FALSE(jobs[0].renewal.has_value());
  CHECK(jobs[0].key.renews_serial.empty());
}

namespace {
std::string query_plan(sql::Database& raw, const std::string& statement) {
  auto plan = raw.prepare("EXPLAIN QUERY PLAN " + statement);
  std::string text;
  while (plan.step()) text += plan.text(3) + "\n";
  return text;
}
}  // namespace

TEST_CASE("a version 2 journal migrates to the lease index; the lease and unfinished-job lookups use indexes") {
  ScratchDir dir;
  {
    auto journal = Journal::open(dir.path());
    journal.create(seal_job());
    sql::Database raw(dir.path() / "journal.sqlite");
    raw.exec("DROP INDEX jobs_claimed");
    raw.exec("UPDATE schema_version SET version = 2");
  }
  auto journal = Journal::open(dir.path());
  CHECK(journal.schema_version() == Journal::latest_schema_version());
  CHECK(journal.list().size() == 1);
  sql::Database raw(dir.path() / "journal.sqlite");
  // The statements of ~Journal and unfinished(): neither may scan every job.
  CHECK(query_plan(raw, "UPDATE jobs SET claimed_by_pid = NULL, claim_start = NULL, claim_owner = NULL "
                        "WHERE claimed_by_pid = 1 AND claim_owner = 'x'")
            .find("USING INDEX jobs_claimed") != std::string::npos);
  CHECK(query_plan(raw, "SELECT id FROM jobs WHERE token_serial = 'x' AND state <> 'FAILED' AND state <> 'MONITORING' ORDER BY id")
            .find("USING INDEX jobs_live_key") != std::string::npos);
}

TEST_CASE("a renewal job lives beside the provisioning of the same key and is keyed by the certificate it replaces") {
  ScratchDir dir;
  auto journal = Journal::open(dir.path());
  const Job provisioning = journal.create(seal_job());
  NewJob renewal = seal_job();
  renewal.key.renews_serial = "0a1b2c";
  renewal.key_id_hex = "beef";
  renewal.renewal = RenewalOf{"c0ffee", 7001, RenewalPath::reissue, "rsa:3072"};
  const Job renewing = journal.create(renewal);
  CHECK(renewing.id != provisioning.id);
  CHECK(renewing.kind == JobKind::renewal);
  REQUIRE(renewing.renewal.has_value());
  CHECK(renewing.renewal->key_id_hex == "c0ffee");
  CHECK(renewing.renewal->order_id == 7001);
  CHECK(renewing.renewal->path == RenewalPath::reissue);
  CHECK(renewing.renewal->key_type == "rsa:3072");
  CHECK(renewing.key_id_hex == "beef");
  CHECK(journal.find(renewal.key)->id == renewing.id);
  CHECK(journal.find(seal_job().key)->id == provisioning.id);
  CHECK(renewing.key.display() == "0123456789abcdef/seal/pkio-eseal/pkio_qualified_organisation_services/renews 0a1b2c");
  CHECK_THROWS_AS(journal.create(renewal), UsageError);  // one live renewal per replaced certificate
  CHECK(journal.unfinished("0123456789abcdef").size() == 2);
  CHECK(journal.unfinished("another").empty());

  NewJob inconsistent = seal_job();
  inconsistent.key.renews_serial = "99";  // a renewal key without what it replaces
  CHECK_THROWS_AS(journal.create(inconsistent), std::logic_error);
}

TEST_CASE("jobs are found by id and by job key; one live job per key") {
  ScratchDir dir;
  auto journal = Journal::open(dir.path());
  Job job = journal.create(seal_job());
  CHECK(job.state == JobState::need_key_pair);
  CHECK(job.job_tag.starts_with("qscd-"));
  CHECK(job.job_tag.size() == 5 + 32);
  CHECK(job.operator_name == "officer");
  CHECK(journal.find(job.id)->job_tag == job.job_tag);
  CHECK(journal.find(seal_job().key)->id == job.id);
  CHECK_FALSE(journal.find(seal_job("other").key).has_value());
  CHECK_FALSE(journal.find(job.id + 100).has_value());
  CHECK_THROWS_WITH_AS((void)journal.get(job.id + 100),
                       ("job " + std::to_string(job.id + 100) + ": no such job in " + journal.path().string()).c_str(),
                       UnknownJob);

  CHECK_THROWS_WITH_AS(journal.create(seal_job()),
                       ("job: job " + std::to_string(job.id) +
                        " already exists for 0123456789abcdef/seal/pkio-eseal/pkio_qualified_organisation_services")
                           .c_str(),
                       UsageError);
  bool created = true;
  CHECK(journal.find_or_create(seal_job(), &created).id == job.id);
  CHECK_FALSE(created);
  Job second = journal.find_or_create(seal_job("other"), &created);
  CHECK(created);
  CHECK(second.job_tag != job.job_tag);
  CHECK(journal.list().size() == 2);

  // After FAILED the key is free for a new job; the failed one stays listed.
  journal.claim(job.id);
  journal.transition(job.id, JobState::need_key_pair, JobState::failed, "CA rejected the order");
  CHECK_FALSE(journal.find(seal_job().key).has_value());
  Job retry = journal.create(seal_job());
  CHECK(retry.id != job.id);
  CHECK(journal.get(job.id).last_error == "CA rejected the order");
}

TEST_CASE("a job with an existing key starts in HAVE_KEY_PAIR and must name the key") {
  ScratchDir dir;
  auto journal = Journal::open(dir.path());
  NewJob job = seal_job();
  job.initial_state = JobState::have_key_pair;
  CHECK_THROWS_WITH_AS(journal.create(job), "a job that starts with a key (HAVE_KEY_PAIR) needs its CKA_ID",
                       std::logic_error);
  job.key_id_hex = "a1b2";
  CHECK(journal.create(job).state == JobState::have_key_pair);
  job.key.key_label = "other";
  job.initial_state = JobState::ca_working;
  CHECK_THROWS_WITH_AS(journal.create(job), "a job starts in NEED_KEY_PAIR or HAVE_KEY_PAIR, not CA_WORKING",
                       std::logic_error);
}

TEST_CASE("transitions check the table, the current state and the lease, and store fields with an event") {
  ScratchDir dir;
  auto journal = Journal::open(dir.path());
  Job job = journal.create(seal_job());
  CHECK_THROWS_WITH_AS(journal.transition(job.id, JobState::need_key_pair, JobState::generating_key_pair),
                       ("journal: job " + std::to_string(job.id) + " is not claimed by this worker").c_str(),
                       JournalError);
  journal.claim(job.id);
  CHECK_THROWS_WITH_AS(journal.transition(job.id, JobState::need_key_pair, JobState::have_csr),
                       "job state transition NEED_KEY_PAIR -> HAVE_CSR is not allowed", std::logic_error);
  CHECK_THROWS_WITH_AS(journal.transition(job.id, JobState::need_csr, JobState::have_csr),
                       ("journal: job " + std::to_string(job.id) + " is in NEED_KEY_PAIR, not NEED_CSR").c_str(),
                       JournalError);

  JobUpdate intent;
  intent.key_id_hex = "0a0b";
  job = journal.transition(job.id, JobState::need_key_pair, JobState::generating_key_pair, "key id 0a0b", intent);
  CHECK(job.key_id_hex == "0a0b");
  job = journal.transition(job.id, JobState::generating_key_pair, JobState::have_key_pair);
  job = journal.transition(job.id, JobState::have_key_pair, JobState::need_csr);
  JobUpdate csr;
  csr.csr_pem = "-----BEGIN CERTIFICATE REQUEST-----\n...";
  csr.subject = "C=NL, O=Org, CN=seal";
  job = journal.transition(job.id, JobState::need_csr, JobState::have_csr, "", csr);
  job = journal.transition(job.id, JobState::have_csr, JobState::need_to_submit);
  CHECK(job.submit_intent_at.empty());
  job = journal.transition(job.id, JobState::need_to_submit, JobState::submitting);
  CHECK_FALSE(job.submit_intent_at.empty());
  CHECK(job.key_id_hex == "0a0b");  // unset fields stay
  CHECK(job.subject == "C=NL, O=Org, CN=seal");

  journal.record_error(job.id, "HTTP 429");
  CHECK(journal.get(job.id).last_error == "HTTP 429");
  JobUpdate order;
  order.order_id = 1234;
  order.request_id = 99;
  job = journal.transition(job.id, JobState::submitting, JobState::ca_working, "order 1234", order);
  CHECK(job.order_id == 1234);
  CHECK(job.request_id == 99);
  CHECK_FALSE(job.certificate_id.has_value());
  CHECK(job.last_error.empty());  // a step that went on clears the last error

  CHECK(event_states(journal, job.id) ==
        std::vector<std::string>{"NEED_KEY_PAIR", "GENERATING_KEY_PAIR", "HAVE_KEY_PAIR", "NEED_CSR", "HAVE_CSR",
                                 "NEED_TO_SUBMIT", "SUBMITTING", "SUBMITTING", "CA_WORKING"});
  auto events = journal.events(job.id);
  CHECK(events[1].detail == "key id 0a0b");
  CHECK(events[7].detail == "error: HTTP 429");
  CHECK(events[8].at.size() == 24);  // 2026-11-22T04:00:00.000Z
}

TEST_CASE("a wait on a person returns only to the safe state it came from") {
  ScratchDir dir;
  auto journal = Journal::open(dir.path());
  Job job = journal.create(seal_job());
  journal.claim(job.id);
  job = journal.transition(job.id, JobState::need_key_pair, JobState::generating_key_pair);
  job = journal.transition(job.id, JobState::generating_key_pair, JobState::need_token, "token removed");
  CHECK(job.waiting_from == JobState::need_key_pair);
  job = journal.transition(job.id, JobState::need_token, JobState::need_user_pin, "PIN needed");
  CHECK(job.waiting_from == JobState::need_key_pair);
  CHECK_THROWS_WITH_AS(journal.transition(job.id, JobState::need_user_pin, JobState::need_to_install),
                       ("job " + std::to_string(job.id) +
                        " waited in NEED_USER_PIN from NEED_KEY_PAIR and cannot return to NEED_TO_INSTALL")
                           .c_str(),
                       std::logic_error);
  job = journal.transition(job.id, JobState::need_user_pin, JobState::need_key_pair);
  CHECK_FALSE(job.waiting_from.has_value());
}

TEST_CASE("leases: a live worker blocks others; a killed worker's in-flight job rolls back on the next claim") {
  ScratchDir dir;
  std::int64_t id = 0;
  {
    auto journal = Journal::open(dir.path());
    id = journal.create(seal_job()).id;
  }
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int status = 1;
    try {
      auto journal = Journal::open(dir.path());
      journal.claim(id);
      JobUpdate intent;
      intent.key_id_hex = "01";
      journal.transition(id, JobState::need_key_pair, JobState::generating_key_pair, "", intent);
      status = 0;
      char byte = 0;
      (void)!::write(ready[1], &byte, 1);
      ::pause();  // "generating", holding the journal open, until killed
    } catch (...) {
    }
    char byte = static_cast<char>(status);
    (void)!::write(ready[1], &byte, 1);
    ::_exit(status);
  }
  char byte = 1;
  REQUIRE(::read(ready[0], &byte, 1) == 1);
  REQUIRE(byte == 0);

  auto journal = Journal::open(dir.path());
  CHECK(journal.get(id).claimed_by == child);
  CHECK_THROWS_WITH_AS(journal.claim(id),
                       ("job " + std::to_string(id) + " is being worked on by process " + std::to_string(child)).c_str(),
                       JobBusy);

  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ::close(ready[0]);
  ::close(ready[1]);

  Job resumed = journal.claim(id);
  CHECK(resumed.state == JobState::need_key_pair);
  CHECK(resumed.key_id_hex == "01");  // the intended id survives: the key step looks for it first
  CHECK(resumed.claimed_by == ::getpid());
  auto events = journal.events(id);
  CHECK(events.back().detail ==
        "restart: GENERATING_KEY_PAIR was in flight when process " + std::to_string(child) + " stopped");
  CHECK(journal.claim(id).state == JobState::need_key_pair);  // idempotent for the holder

  // Another connection of this process is another worker: busy until released.
  auto other_worker = Journal::open(dir.path());
  CHECK_THROWS_AS(other_worker.claim(id), JobBusy);
  journal.release(id);
  CHECK(other_worker.claim(id).state == JobState::need_key_pair);
}

TEST_CASE("a journal connection that goes away gives its leases back") {
  ScratchDir dir;
  auto journal = Journal::open(dir.path());
  std::int64_t id = journal.create(seal_job()).id;
  {
    auto worker = Journal::open(dir.path());
    worker.claim(id);
    CHECK_THROWS_AS(journal.claim(id), JobBusy);
  }
  CHECK_NOTHROW(journal.claim(id));
}

TEST_CASE("SUBMITTING left by a dead process resumes in NEED_ORDER_LOOKUP, INSTALLING in NEED_TO_INSTALL") {
  ScratchDir dir;
  auto journal = Journal::open(dir.path());
  std::int64_t id = journal.create(seal_job()).id;
  {
    sql::Database raw(journal.path());
    // What a SIGKILLed worker leaves: its pid (this test's parent is alive, but
    // its start time differs), its start time, its connection.
    raw.exec("UPDATE jobs SET state = 'SUBMITTING', claimed_by_pid = " + std::to_string(::getppid()) +
             ", claim_start = 'not-this-one', claim_owner = 'gone' WHERE id = " + std::to_string(id));
  }
  CHECK(journal.claim(id).state == JobState::need_order_lookup);
  {
    sql::Database raw(journal.path());
    raw.exec("UPDATE jobs SET state = 'INSTALLING', claimed_by_pid = NULL, claim_owner = NULL WHERE id = " +
             std::to_string(id));
  }
  CHECK(journal.claim(id).state == JobState::need_to_install);
}

TEST_CASE("run_job steps through the table, commits each step and waits as told") {
  ScratchDir dir;
  auto journal = Journal::open(dir.path());
  std::int64_t id = journal.create(seal_job()).id;

  int polls = 0;
  std::vector<seconds> slept;
  std::vector<std::string> progress;
  StepTable steps;
  auto go = [](JobState next) { return [next](const Job&) { return StepResult{next}; }; };
  steps.on(JobState::need_key_pair,
           [](const Job&) {
             StepResult result{JobState::generating_key_pair};
             result.update.key_id_hex = "c0ffee";
             return result;
           })
      .on(JobState::generating_key_pair, go(JobState::have_key_pair))
      .on(JobState::have_key_pair, go(JobState::need_csr))
      .on(JobState::need_csr, go(JobState::have_csr))
      .on(JobState::have_csr, go(JobState::need_to_submit))
      .on(JobState::need_to_submit, go(JobState::submitting))
      .on(JobState::submitting,
          [](const Job& job) {
            CHECK(job.key_id_hex == "c0ffee");  // committed before this step ran
            StepResult result{JobState::ca_working};
            result.update.order_id = 42;
            return result;
          })
      .on(JobState::ca_working,
          [&polls](const Job& job) {
            CHECK(job.order_id == 42);
            if (++polls < 3) return StepResult{JobState::ca_working, seconds(30)};
            return StepResult{JobState::need_to_install};
          })
      .on(JobState::need_to_install, go(JobState::installing))
      .on(JobState::installing, go(JobState::monitoring));

  RunOptions options;
  options.sleep = [&slept](seconds delay) { slept.push_back(delay); };
  options.on_transition = [&progress](const Job& job, const std::string&) { progress.emplace_back(to_string(job.state)); };
  RunResult result = run_job(journal, id, steps, options);
  CHECK(result.stop == RunStop::finished);
  CHECK(result.job.state == JobState::monitoring);
  CHECK(slept == std::vector<seconds>{seconds(30), seconds(30)});
  CHECK(progress.size() == 10);
  CHECK(journal.get(id).claimed_by == std::nullopt);  // lease given back

  // A finished job runs no step again.
  CHECK(run_job(journal, id, StepTable{}, options).stop == RunStop::finished);
}

TEST_CASE("effect-free steps commit with the move before them: same states, events and details") {
  ScratchDir dir;
  auto journal = Journal::open(dir.path());
  bool created = false;
  const Job job = journal.find_or_create(seal_job(), &created);
  REQUIRE(created);
  // A job created here is already this connection's: claiming it again writes nothing.
  CHECK(job.claimed_by == ::getpid());

  std::vector<std::string> progress;
  int effect_free_calls = 0;
  StepTable steps;
  auto go = [](JobState next, std::string detail) {
    return [next, detail](const Job&) { return StepResult{next, seconds(0), detail}; };
  };
  steps.on_effect_free(JobState::need_key_pair, go(JobState::generating_key_pair, "to generate"))
      .on(JobState::generating_key_pair,
          [](const Job&) {
            StepResult result{JobState::have_key_pair, seconds(0), "generated"};
            result.update.key_id_hex = "c0ffee";
            return result;
          })
      .on_effect_free(JobState::have_key_pair,
                      [&effect_free_calls](const Job& now) {
                        ++effect_free_calls;
                        CHECK(now.key_id_hex == "c0ffee");  // sees the move before it, inside the transaction
                        return StepResult{JobState::need_csr, seconds(0), "on to the CSR"};
                      })
      .on(JobState::need_csr, go(JobState::have_csr, "signed"))
      .on_effect_free(JobState::have_csr, go(JobState::need_to_submit, "ready"))
      .on_effect_free(JobState::need_to_submit, go(JobState::submitting, "placing"))
      .on(JobState::submitting, [](const Job& now) {
        // The intent (SUBMITTING) is committed before the step with an effect runs.
        CHECK(now.state == JobState::submitting);
        CHECK_FALSE(now.submit_intent_at.empty());
        return StepResult{JobState::failed, seconds(0), "refused"};
      });
  RunOptions options;
  options.on_transition = [&progress](const Job& now, const std::string& detail) {
    progress.push_back(std::string(to_string(now.state)) + ":" + detail);
  };
  RunResult result = run_job(journal, job.id, steps, options);
  CHECK(result.stop == RunStop::failed);
  CHECK(effect_free_calls == 1);
  CHECK(progress == std::vector<std::string>{"GENERATING_KEY_PAIR:to generate", "HAVE_KEY_PAIR:generated",
                                             "NEED_CSR:on to the CSR", "HAVE_CSR:signed", "NEED_TO_SUBMIT:ready",
                                             "SUBMITTING:placing", "FAILED:refused"});
  CHECK(event_states(journal, job.id) ==
        std::vector<std::string>{"NEED_KEY_PAIR", "GENERATING_KEY_PAIR", "HAVE_KEY_PAIR", "NEED_CSR", "HAVE_CSR",
                                 "NEED_TO_SUBMIT", "SUBMITTING", "FAILED"});
  // The move into FAILED ended the lease.
  CHECK(journal.get(job.id).claimed_by == std::nullopt);
}

TEST_CASE("a job created with a chain makes its first effect-free moves in the creating transaction") {
  ScratchDir dir;
  auto journal = Journal::open(dir.path());
  StepTable steps;
  steps.on_effect_free(JobState::need_key_pair,
                       [](const Job&) { return StepResult{JobState::generating_key_pair, seconds(0), "to generate"}; });
  std::vector<std::string> details;
  std::vector<Job> passed;
  bool created = false;
  const Job job = journal.find_or_create(seal_job(), &created, effect_free_moves(steps, details), &passed);
  CHECK(created);
  CHECK(job.state == JobState::generating_key_pair);
  CHECK(details == std::vector<std::string>{"to generate"});
  REQUIRE(passed.size() == 1);
  CHECK(passed[0].state == JobState::generating_key_pair);
  CHECK(event_states(journal, job.id) == std::vector<std::string>{"NEED_KEY_PAIR", "GENERATING_KEY_PAIR"});
  // Found, not created: nothing moves.
  passed.clear();
  const Job again = journal.find_or_create(seal_job(), &created, effect_free_moves(steps, details), &passed);
  CHECK_FALSE(created);
  CHECK(again.id == job.id);
  CHECK(passed.empty());
  CHECK(journal.get(job.id).state == JobState::generating_key_pair);
}

TEST_CASE("an effect-free step that throws ends the chain; the move before it stays committed") {
  ScratchDir dir;
  auto journal = Journal::open(dir.path());
  const Job job = journal.find_or_create(seal_job());
  int calls = 0;
  StepTable steps;
  steps.on(JobState::need_key_pair, [](const Job&) { return StepResult{JobState::generating_key_pair}; })
      .on_effect_free(JobState::generating_key_pair, [&calls](const Job&) -> StepResult {
        if (++calls == 1) throw std::runtime_error("not now");
        return StepResult{JobState::have_key_pair};
      });
  // The second call is the ordinary run of the step, outside the chain: it throws no more and
  // HAVE_KEY_PAIR has no step.
  CHECK_THROWS_AS(run_job(journal, job.id, steps), std::logic_error);
  CHECK(calls == 2);
  CHECK(journal.get(job.id).state == JobState::have_key_pair);
}

TEST_CASE("a chain stops before a move that asks for a wait, and a wait is never skipped") {
  ScratchDir dir;
  auto journal = Journal::open(dir.path());
  const Job job = journal.find_or_create(seal_job());
  std::vector<seconds> slept;
  StepTable steps;
  steps.on(JobState::need_key_pair, [](const Job&) { return StepResult{JobState::generating_key_pair, seconds(7)}; })
      .on_effect_free(JobState::generating_key_pair, [](const Job&) { return StepResult{JobState::failed}; });
  RunOptions options;
  options.sleep = [&slept](seconds delay) { slept.push_back(delay); };
  CHECK(run_job(journal, job.id, steps, options).stop == RunStop::failed);
  CHECK(slept == std::vector<seconds>{seconds(7)});
}

TEST_CASE("run_job with --no-wait stops at the first retry; a deadline stops it too") {
  ScratchDir dir;
  auto journal = Journal::open(dir.path());
  NewJob with_key = seal_job();
  with_key.initial_state = JobState::have_key_pair;
  with_key.key_id_hex = "01";
  std::int64_t id = journal.create(with_key).id;
  StepTable steps;
  steps.on(JobState::have_key_pair, [](const Job&) { return StepResult{JobState::need_csr}; })
      .on(JobState::need_csr, [](const Job&) { return StepResult{JobState::have_csr}; })
      .on(JobState::have_csr, [](const Job&) { return StepResult{JobState::need_to_submit}; })
      .on(JobState::need_to_submit, [](const Job&) { return StepResult{JobState::submitting}; })
      .on(JobState::submitting, [](const Job&) { return StepResult{JobState::ca_working, seconds(60)}; })
      .on(JobState::ca_working, [](const Job&) { return StepResult{JobState::ca_working, seconds(60)}; });
  RunOptions no_wait;
  no_wait.wait = false;
  RunResult first = run_job(journal, id, steps, no_wait);
  CHECK(first.stop == RunStop::waiting_on_ca);
  CHECK(first.job.state == JobState::ca_working);
  CHECK(first.retry_after == seconds(60));

  RunOptions deadline;
  deadline.deadline = std::chrono::steady_clock::now() + seconds(30);
  std::vector<seconds> slept;
  deadline.sleep = [&slept](seconds delay) { slept.push_back(delay); };
  CHECK(run_job(journal, id, steps, deadline).stop == RunStop::waiting_on_ca);
  // A retry in 60 s is past a deadline 30 s away: one last look at the deadline, then stop.
  REQUIRE(slept.size() == 1);
  CHECK(slept[0] <= seconds(30));
  CHECK(slept[0] >= seconds(29));

  RunOptions passed;
  passed.deadline = std::chrono::steady_clock::now() - seconds(1);
  passed.sleep = [](seconds) { FAIL("no sleep after the deadline"); };
  CHECK(run_job(journal, id, steps, passed).stop == RunStop::waiting_on_ca);
}

TEST_CASE("a step that throws leaves last_error; an in-flight step is rolled back at once") {
  ScratchDir dir;
  auto journal = Journal::open(dir.path());
  std::int64_t id = journal.create(seal_job()).id;
  StepTable steps;
  steps.on(JobState::need_key_pair, [](const Job&) { return StepResult{JobState::generating_key_pair}; })
      .on(JobState::generating_key_pair,
          [](const Job&) -> StepResult { throw TokenError("C_GenerateKeyPair: CKR_DEVICE_REMOVED"); });
  CHECK_THROWS_WITH_AS(run_job(journal, id, steps), "C_GenerateKeyPair: CKR_DEVICE_REMOVED", TokenError);
  Job job = journal.get(id);
  CHECK(job.state == JobState::need_key_pair);
  CHECK(job.last_error == "C_GenerateKeyPair: CKR_DEVICE_REMOVED");
  CHECK_FALSE(job.claimed_by.has_value());
  CHECK(journal.events(id).back().detail == "error: C_GenerateKeyPair: CKR_DEVICE_REMOVED");
}

TEST_CASE("run_job stops at a wait on a person and refuses a state without a step") {
  ScratchDir dir;
  auto journal = Journal::open(dir.path());
  std::int64_t id = journal.create(seal_job()).id;
  StepTable steps;
  steps.on(JobState::need_key_pair, [](const Job&) { return StepResult{JobState::need_user_pin, {}, "PIN locked"}; });
  RunResult result = run_job(journal, id, steps);
  CHECK(result.stop == RunStop::waiting_on_person);
  CHECK(result.job.waiting_from == JobState::need_key_pair);

  std::int64_t other = journal.create(seal_job("other")).id;
  CHECK_THROWS_WITH_AS(run_job(journal, other, StepTable{}), "no step for job state NEED_KEY_PAIR", std::logic_error);
  StepTable stuck;
  stuck.on(JobState::need_key_pair, [](const Job&) { return StepResult{JobState::need_key_pair}; });
  CHECK_THROWS_WITH_AS(run_job(journal, other, stuck),
                       "the step for NEED_KEY_PAIR stayed in its state without a retry time", std::logic_error);
}

TEST_CASE("workers racing to create the same job get one job; racing to claim it, one wins") {
  ScratchDir dir;
  { auto journal = Journal::open(dir.path()); }  // the file exists before the race
  constexpr int workers = 4;
  int results[2];
  REQUIRE(::pipe(results) == 0);
  std::vector<pid_t> children;
  for (int i = 0; i < workers; ++i) {
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      // Each reports its job id and whether its claim won, then holds the lease until killed.
      std::int64_t report[2] = {-1, 0};
      try {
        auto journal = Journal::open(dir.path());
        report[0] = journal.find_or_create(seal_job()).id;
        try {
          journal.claim(report[0]);
          report[1] = 1;
        } catch (const JobBusy&) {
        }
        (void)!::write(results[1], report, sizeof report);
        ::pause();
      } catch (...) {
        (void)!::write(results[1], report, sizeof report);
      }
      ::_exit(0);
    }
    children.push_back(child);
  }
  std::set<std::int64_t> ids;
  int winners = 0;
  for (int i = 0; i < workers; ++i) {
    std::int64_t report[2];
    REQUIRE(::read(results[0], report, sizeof report) == static_cast<ssize_t>(sizeof report));
    ids.insert(report[0]);
    winners += static_cast<int>(report[1]);
  }
  for (pid_t child : children) {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
  }
  ::close(results[0]);
  ::close(results[1]);
  CHECK(ids.size() == 1);
  CHECK(*ids.begin() > 0);
  CHECK(winners == 1);
  auto journal = Journal::open(dir.path());
  CHECK(journal.list().size() == 1);
  CHECK_NOTHROW(journal.claim(*ids.begin()));  // every holder is gone now
}
