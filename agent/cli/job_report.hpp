#pragma once
// How jobs look to people and to --json: the summary of `jobs`, and the
// evidence record of `jobs show ID`.
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/context.hpp"
#include "journal/journal.hpp"
#include "journal/scheduler.hpp"

namespace qscd::agent {

// A job's state for people: MONITORING reads "done (monitoring for renewal)"; the others are
// their names (docs/journal.md). --json keeps the names.
std::string state_text(JobState state);

// id, key, state, order id, last error, times.
nlohmann::json job_summary_json(const Job& job);
// Everything the journal keeps about a job, with its step timestamps: token
// serial, model and manufacturer; key CKA_ID; SHA-256 of SPKI, CSR and
// certificate; order id; certificate serial; the chain; the operator.
nlohmann::json job_evidence_json(const Job& job, const std::vector<JobEvent>& events);

// One line per job with a header line.
std::string jobs_table_text(const std::vector<Job>& jobs);
// The evidence record as "name: value" lines, then the steps.
std::string job_evidence_text(const Job& job, const std::vector<JobEvent>& events);

// The line a job report ends with when the run did not finish: waiting for CertCentral, waiting
// on a person (the job's last error), or failed (the last error, then `after_failure`); "" when it
// finished.
std::string run_stop_text(RunStop stop, const Job& job, std::string_view after_failure = {});

// What the way a job's run stopped means for the command (provision, renew): waiting on the CA
// is 5 only when the CA has (or may have) our order or request; a job that stopped before it
// could submit (the CA unreachable or rate-limiting every try) is a CA problem, 4, and is still
// saved for the next run.
CommandStatus command_status(RunStop stop, const Job& job);
// The worse of the two, for a command over several jobs: a failure or a person's wait over the
// CA's wait over done; of a failure and a person's wait, the one seen first (`so_far`).
CommandStatus worse(CommandStatus so_far, CommandStatus status);

}  // namespace qscd::agent
