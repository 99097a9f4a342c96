// The journal's transitions: one checked move, or a chain of them, each with its event row, in
// one transaction.
#include <unistd.h>

#include <stdexcept>

#include "journal/journal.hpp"
#include "journal/journal_rows.hpp"

namespace qscd::agent {

using rows::add_event;
using rows::Claim;
using rows::guarded;
using rows::load_job;
using rows::now_sql;
using rows::state_column;

Job Journal::transition(std::int64_t id, JobState from, JobState to, const std::string& detail,
                        const JobUpdate& update) {
  return transition_chain(id, from, Move{to, detail, update}, nullptr);
}

Job Journal::transition_chain(std::int64_t id, JobState from, const Move& first, const NextMove& next,
                              std::vector<Job>* passed) {
  return guarded(path_, [&] {
    sql::Transaction tx(*db_);
    Job moved = apply_move(id, from, first);
    if (passed != nullptr) passed->push_back(moved);
    moved = follow_chain(id, std::move(moved), next, passed);
    tx.commit();
    return moved;
  });
}

Job Journal::follow_chain(std::int64_t id, Job job, const NextMove& next, std::vector<Job>* passed) {
  while (next) {
    std::optional<Move> then = next(job);
    if (!then) break;
    job = apply_move(id, job.state, *then);
    if (passed != nullptr) passed->push_back(job);
  }
  return job;
}

Job Journal::apply_move(std::int64_t id, JobState from, const Move& move) {
  const JobState to = move.to;
  const std::string& detail = move.detail;
  const JobUpdate& update = move.update;
  check_transition(from, to);
  Claim holder;
  Job job = load_job(*db_, path_, id, &holder);
  if (holder.owner != owner_ || holder.pid != static_cast<std::int64_t>(::getpid())) {
    throw JournalError("journal: job " + std::to_string(id) + " is not claimed by this worker");
  }
  if (job.state != from) {
    throw JournalError("journal: job " + std::to_string(id) + " is in " + std::string(to_string(job.state)) +
                       ", not " + std::string(to_string(from)));
  }
  std::optional<JobState> waiting_from;
  if (is_waiting_on_person(to)) {
    // A wait remembers the safe state it started from; a wait that moves to
    // the other wait keeps it.
    waiting_from = is_waiting_on_person(from) ? job.waiting_from : restart_state(from);
  } else if (is_waiting_on_person(from) && to != JobState::failed && job.waiting_from != to) {
    throw std::logic_error("job " + std::to_string(id) + " waited in " + std::string(to_string(from)) + " from " +
                           (job.waiting_from ? std::string(to_string(*job.waiting_from)) : "nowhere") +
                           " and cannot return to " + std::string(to_string(to)));
  }

  auto stmt = db_->prepare(std::string(R"sql(UPDATE jobs SET
      state = ?1, waiting_from = ?2, last_error = ?3,
      key_id_hex = COALESCE(?4, key_id_hex), token_model = COALESCE(?5, token_model),
      token_manufacturer = COALESCE(?6, token_manufacturer), subject = COALESCE(?7, subject),
      csr_pem = COALESCE(?8, csr_pem), order_id = COALESCE(?9, order_id),
      request_id = COALESCE(?10, request_id), certificate_id = COALESCE(?11, certificate_id),
      spki_sha256 = COALESCE(?12, spki_sha256), csr_sha256 = COALESCE(?13, csr_sha256),
      cert_sha256 = COALESCE(?14, cert_sha256), cert_serial = COALESCE(?15, cert_serial),
      chain_pem = COALESCE(?16, chain_pem),
      submit_intent_at = CASE WHEN ?1 = 'SUBMITTING' AND submit_intent_at = '' THEN )sql") +
                           now_sql + " ELSE submit_intent_at END, updated_at = " + now_sql +
                           // A job that is done or failed is nobody's: the lease ends with the move.
                           ", claimed_by_pid = CASE WHEN ?18 THEN NULL ELSE claimed_by_pid END"
                           ", claim_start = CASE WHEN ?18 THEN NULL ELSE claim_start END"
                           ", claim_owner = CASE WHEN ?18 THEN NULL ELSE claim_owner END WHERE id = ?17");
  auto text = [&stmt](int index, const std::optional<std::string>& value) {
    if (value) {
      stmt.bind(index, *value);
    } else {
      stmt.bind_null(index);
    }
  };
  stmt.bind(1, to_string(to));
  if (waiting_from) {
    stmt.bind(2, to_string(*waiting_from));
  } else {
    stmt.bind_null(2);
  }
  stmt.bind(3, to == JobState::failed ? detail : std::string());
  text(4, update.key_id_hex);
  text(5, update.token_model);
  text(6, update.token_manufacturer);
  text(7, update.subject);
  text(8, update.csr_pem);
  stmt.bind(9, update.order_id).bind(10, update.request_id).bind(11, update.certificate_id);
  text(12, update.spki_sha256);
  text(13, update.csr_sha256);
  text(14, update.cert_sha256);
  text(15, update.cert_serial);
  text(16, update.chain_pem);
  stmt.bind(17, id).bind(18, static_cast<std::int64_t>(is_terminal(to) ? 1 : 0));
  stmt.run();
  add_event(*db_, id, to, detail);
  return load(id);
}

void Journal::record_error(std::int64_t id, const std::string& error) {
  guarded(path_, [&] {
    sql::Transaction tx(*db_);
    auto stmt = db_->prepare(std::string("UPDATE jobs SET last_error = ?1, updated_at = ") + now_sql +
                             " WHERE id = ?2 RETURNING state");
    stmt.bind(1, error).bind(2, id);
    if (!stmt.step()) throw UnknownJob(id, "job " + std::to_string(id) + ": no such job in " + path_.string());
    JobState state = state_column(stmt.text(0));
    stmt.run();
    add_event(*db_, id, state, "error: " + error);
    tx.commit();
    return 0;
  });
}

}  // namespace qscd::agent
