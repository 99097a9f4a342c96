#pragma once
// How jobs look to people and to --json: the summary of `jobs`, and the
// evidence record of `jobs show ID`.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "journal/journal.hpp"
#include "journal/scheduler.hpp"

namespace qscd::agent {

// id, key, state, order id, last error, times.
nlohmann::json job_summary_json(const Job& job);
// Everything the journal keeps about a job, with its step timestamps: token
// serial, model and manufacturer; key CKA_ID; SHA-256 of SPKI, CSR and
// certificate; order id; certificate serial; the chain; the operator.
nlohmann::json job_evidence_json(const Job& job, const std::vector<JobEvent>& events);

// How a job's run ends for the exit code: waiting on the CA is 5 only when the CA has (or may
// have) our order or request; a job that stops before it could submit (the CA unreachable or
// rate-limiting every try) is a CA problem, 4, and is still saved for the next run.
CommandStatus command_status_for(RunStop stop, const Job& job);

// One line per job with a header line.
std::string jobs_table_text(const std::vector<Job>& jobs);
// The evidence record as "name: value" lines, then the steps.
std::string job_evidence_text(const Job& job, const std::vector<JobEvent>& events);

}  // namespace qscd::agent
