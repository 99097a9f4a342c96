#pragma once
// The states of a job (a provisioning or a renewal), after certmonger (doc/design.txt): NEED_X is
// about to do X, X-ING is doing it, HAVE_X has done it, NEED_USER_PIN and
// NEED_TOKEN wait on a person. The allowed transitions are one table in
// job_state.cpp; docs/journal.md carries the same table and a unit test keeps
// the two equal.
#include <optional>
#include <span>
#include <string_view>

namespace qscd::agent {

enum class JobState {
  need_key_pair,
  generating_key_pair,
  have_key_pair,
  need_csr,
  have_csr,
  need_to_submit,
  submitting,
  need_order_lookup,
  ca_working,
  need_to_install,
  installing,
  retiring_old,
  monitoring,
  need_user_pin,
  need_token,
  failed,
};

// Every state, in the order of the enum.
std::span<const JobState> all_job_states();

// "NEED_KEY_PAIR", ... as stored in the journal and shown to users.
std::string_view to_string(JobState state);
// The inverse of to_string; nullopt for an unknown name.
std::optional<JobState> parse_job_state(std::string_view name);

// The states a job may move to from `from`.
std::span<const JobState> allowed_next(JobState from);
bool is_allowed(JobState from, JobState to);
// Throws std::logic_error naming both states when the table does not allow it.
void check_transition(JobState from, JobState to);

// No step runs from here: MONITORING (done) and FAILED (the CA refused for good).
// RETIRING_OLD, a renewal's last step (the replaced pair relabelled and removed), is idempotent
// and so safe: a restart runs it again from where it stopped.
bool is_terminal(JobState state);
// Waits on a person: NEED_USER_PIN, NEED_TOKEN.
bool is_waiting_on_person(JobState state);
// Work is in flight and a killed process may have left it half done:
// GENERATING_KEY_PAIR, SUBMITTING, INSTALLING.
bool is_in_flight(JobState state);

// The restart rule: the state a job found in `state` with no live owner resumes
// from. In-flight states roll back (GENERATING_KEY_PAIR -> NEED_KEY_PAIR,
// SUBMITTING -> NEED_ORDER_LOOKUP, INSTALLING -> NEED_TO_INSTALL); every other
// state is already safe and maps to itself.
JobState restart_state(JobState state);

}  // namespace qscd::agent
