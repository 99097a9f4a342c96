#include "journal/journal_rows.hpp"

#include <stdexcept>

namespace qscd::agent {

std::string_view to_string(JobKind kind) { return kind == JobKind::renewal ? "renewal" : "provision"; }

std::string_view to_string(RenewalPath path) { return path == RenewalPath::new_order ? "new_order" : "reissue"; }

namespace rows {

const char* const job_columns =
    "id, token_serial, key_label, profile, product, state, waiting_from, job_tag, token_model, "
    "token_manufacturer, key_id_hex, subject, operator_name, csr_pem, order_id, request_id, certificate_id, "
    "submit_intent_at, spki_sha256, csr_sha256, cert_sha256, cert_serial, chain_pem, last_error, created_at, "
    "updated_at, claimed_by_pid, claim_start, claim_owner, kind, renews_serial, old_key_id_hex, old_order_id, "
    "renewal_path, key_type";

JobState state_column(const std::string& name) {
  auto state = parse_job_state(name);
  if (!state) throw JournalError("journal: unknown job state '" + name + "'");
  return *state;
}

Job read_job(const sql::Statement& row, Claim* claim) {
  Job job;
  job.id = row.integer(0);
  job.key = {row.text(1), row.text(2), row.text(3), row.text(4), row.text(30)};
  job.state = state_column(row.text(5));
  if (auto waiting = row.text(6); !waiting.empty()) job.waiting_from = state_column(waiting);
  job.job_tag = row.text(7);
  job.token_model = row.text(8);
  job.token_manufacturer = row.text(9);
  job.key_id_hex = row.text(10);
  job.subject = row.text(11);
  job.operator_name = row.text(12);
  job.csr_pem = row.text(13);
  job.order_id = row.optional_integer(14);
  job.request_id = row.optional_integer(15);
  job.certificate_id = row.optional_integer(16);
  job.submit_intent_at = row.text(17);
  job.spki_sha256 = row.text(18);
  job.csr_sha256 = row.text(19);
  job.cert_sha256 = row.text(20);
  job.cert_serial = row.text(21);
  job.chain_pem = row.text(22);
  job.last_error = row.text(23);
  job.created_at = row.text(24);
  job.updated_at = row.text(25);
  if (auto pid = row.optional_integer(26)) job.claimed_by = static_cast<pid_t>(*pid);
  if (claim != nullptr) *claim = {row.optional_integer(26), row.text(27), row.text(28)};
  const std::string kind = row.text(29);
  if (kind == "renewal") {
    job.kind = JobKind::renewal;
    RenewalOf renewal;
    renewal.key_id_hex = row.text(31);
    renewal.order_id = row.optional_integer(32);
    const std::string path = row.text(33);
    if (path != "reissue" && path != "new_order") throw JournalError("journal: job " + std::to_string(job.id) + " has renewal path '" + path + "'");
    renewal.path = path == "new_order" ? RenewalPath::new_order : RenewalPath::reissue;
    renewal.key_type = row.text(34);
    job.renewal = std::move(renewal);
  } else if (kind != "provision") {
    throw JournalError("journal: job " + std::to_string(job.id) + " has unknown kind '" + kind + "'");
  }
  return job;
}

Job load_job(sql::Database& db, const std::filesystem::path& path, std::int64_t id, Claim* claim) {
  auto stmt = db.prepare(std::string("SELECT ") + job_columns + " FROM jobs WHERE id = ?1");
  stmt.bind(1, id);
  if (!stmt.step()) throw UnknownJob(id, "job " + std::to_string(id) + ": no such job in " + path.string());
  return read_job(stmt, claim);
}

void add_event(sql::Database& db, std::int64_t id, JobState state, const std::string& detail) {
  auto stmt = db.prepare(std::string("INSERT INTO job_events (job_id, state, at, detail) VALUES (?1, ?2, ") +
                         now_sql + ", ?3)");
  stmt.bind(1, id).bind(2, to_string(state)).bind(3, detail);
  stmt.run();
}

}  // namespace rows
}  // namespace qscd::agent
