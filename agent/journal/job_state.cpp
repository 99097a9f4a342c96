#include "journal/job_state.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <string>
#include <vector>

namespace qscd::agent {

namespace {

using S = JobState;

struct StateRow {
  JobState state;
  std::string_view name;
  std::vector<JobState> next;
};

// The transition table. docs/journal.md holds the same table (tests/unit/test_job_state.cpp
// compares them). Leaving for NEED_USER_PIN / NEED_TOKEN is allowed only from states whose
// step talks to the token; coming back goes to the safe state the wait started from.
const std::array<StateRow, 16>& table() {
  static const std::array<StateRow, 16> rows{{
      {S::need_key_pair, "NEED_KEY_PAIR", {S::generating_key_pair, S::need_user_pin, S::need_token, S::failed}},
      {S::generating_key_pair, "GENERATING_KEY_PAIR",
       {S::have_key_pair, S::need_key_pair, S::need_user_pin, S::need_token, S::failed}},
      {S::have_key_pair, "HAVE_KEY_PAIR", {S::need_csr}},
      {S::need_csr, "NEED_CSR", {S::have_csr, S::need_user_pin, S::need_token, S::failed}},
      {S::have_csr, "HAVE_CSR", {S::need_to_submit}},
      {S::need_to_submit, "NEED_TO_SUBMIT", {S::submitting, S::failed}},
      {S::submitting, "SUBMITTING", {S::ca_working, S::need_order_lookup, S::need_to_submit, S::failed}},
      {S::need_order_lookup, "NEED_ORDER_LOOKUP", {S::ca_working, S::need_to_submit, S::failed}},
      {S::ca_working, "CA_WORKING", {S::need_to_install, S::need_token, S::failed}},
      {S::need_to_install, "NEED_TO_INSTALL", {S::installing, S::need_user_pin, S::need_token, S::failed}},
      {S::installing, "INSTALLING",
       {S::retiring_old, S::monitoring, S::need_to_install, S::need_user_pin, S::need_token, S::failed}},
      {S::retiring_old, "RETIRING_OLD", {S::monitoring, S::need_user_pin, S::need_token, S::failed}},
      {S::monitoring, "MONITORING", {}},
      {S::need_user_pin, "NEED_USER_PIN",
       {S::need_key_pair, S::need_csr, S::ca_working, S::need_to_install, S::retiring_old, S::need_token, S::failed}},
      {S::need_token, "NEED_TOKEN",
       {S::need_key_pair, S::need_csr, S::ca_working, S::need_to_install, S::retiring_old, S::need_user_pin, S::failed}},
      {S::failed, "FAILED", {}},
  }};
  return rows;
}

const StateRow& row(JobState state) {
  const auto& rows = table();
  auto index = static_cast<std::size_t>(state);
  if (index >= rows.size() || rows[index].state != state) throw std::logic_error("job state table out of order");
  return rows[index];
}

const std::array<JobState, 16> states{S::need_key_pair,  S::generating_key_pair, S::have_key_pair, S::need_csr,
                                      S::have_csr,       S::need_to_submit,      S::submitting,    S::need_order_lookup,
                                      S::ca_working,     S::need_to_install,     S::installing,    S::retiring_old,
                                      S::monitoring,     S::need_user_pin,       S::need_token,    S::failed};

}  // namespace

std::span<const JobState> all_job_states() { return states; }

std::string_view to_string(JobState state) { return row(state).name; }

std::optional<JobState> parse_job_state(std::string_view name) {
  for (const auto& r : table()) {
    if (r.name == name) return r.state;
  }
  return std::nullopt;
}

std::span<const JobState> allowed_next(JobState from) { return row(from).next; }

bool is_allowed(JobState from, JobState to) {
  auto next = allowed_next(from);
  return std::find(next.begin(), next.end(), to) != next.end();
}

void check_transition(JobState from, JobState to) {
  if (!is_allowed(from, to)) {
    throw std::logic_error("job state transition " + std::string(to_string(from)) + " -> " +
                           std::string(to_string(to)) + " is not allowed");
  }
}

bool is_terminal(JobState state) { return state == S::monitoring || state == S::failed; }

bool is_waiting_on_person(JobState state) { return state == S::need_user_pin || state == S::need_token; }

bool is_in_flight(JobState state) {
  return state == S::generating_key_pair || state == S::submitting || state == S::installing;
}

JobState restart_state(JobState state) {
  switch (state) {
    case S::generating_key_pair:
      return S::need_key_pair;
    case S::submitting:
      return S::need_order_lookup;
    case S::installing:
      return S::need_to_install;
    default:
      return state;
  }
}

}  // namespace qscd::agent
