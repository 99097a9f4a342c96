#pragma once
// The generic driver of a job, after certmonger's iterate: a step function per
// state does one step and says which state comes next and when to run again;
// run_job() claims the job, commits each transition before the next step starts,
// and stops when the job is done, failed, waits on a person, or waits on the CA
// longer than the caller wants to wait.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "journal/job_state.hpp"
#include "journal/journal.hpp"

namespace qscd::agent {

struct StepResult {
  StepResult() = default;
  StepResult(JobState next_state, std::chrono::seconds retry = std::chrono::seconds::zero(), std::string text = {})
      : next(next_state), retry_after(retry), detail(std::move(text)) {}

  // The state to move to. The current state means "not yet, run me again after
  // retry_after" (retry_after must then be > 0).
  JobState next = JobState::failed;
  // When to run the next step; zero runs it at once.
  std::chrono::seconds retry_after{0};
  // The event row's text; for FAILED also the job's last_error.
  std::string detail;
  // Stored in the same transaction as the state change.
  JobUpdate update;
};

// One step of a job in its current state. Throwing leaves the job in its state
// (an in-flight state rolls back by the restart rule) with last_error set, and
// the exception reaches the caller.
using Step = std::function<StepResult(const Job&)>;

class StepTable {
 public:
  StepTable& on(JobState state, Step step);
  // A step that only names the next state and does nothing outside the journal: run_job
  // commits its move in the same transaction as the move into `state` (one fsync, not two).
  StepTable& on_effect_free(JobState state, Step step);
  [[nodiscard]] const Step* find(JobState state) const;
  [[nodiscard]] bool is_effect_free(JobState state) const;

 private:
  std::map<JobState, Step> steps_;
  std::set<JobState> effect_free_;
};

enum class RunStop {
  finished,           // MONITORING
  failed,             // FAILED; the job's last_error says why
  waiting_on_ca,      // a step asked to run again later than the caller waits (exit 5)
  waiting_on_person,  // NEED_USER_PIN / NEED_TOKEN and its step (if any) still waits
  stopped,            // a stop was asked for (SIGINT/SIGTERM); the job is saved where it was
};

struct RunOptions {
  // false: stop as soon as a step wants to run again later (--no-wait).
  bool wait = true;
  // Stop waiting (waiting_on_ca) at this time: a retry due after it runs once
  // more at the deadline instead, then the job stops waiting.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  // How to wait; std::this_thread::sleep_for when empty. Tests pass a fake.
  std::function<void(std::chrono::seconds)> sleep;
  // Asked before every step and after every wait: true ends the run with RunStop::stopped,
  // between steps, so no step is cut in half.
  std::function<bool()> stop_requested;
  // Called after every committed transition with the job and the event's text (one progress
  // line per step).
  std::function<void(const Job&, const std::string&)> on_transition;
  // Called before each wait with the job, the step's text (what it waits for) and the delay.
  std::function<void(const Job&, const std::string&, std::chrono::seconds)> on_wait;
  // Called when a step fails, before its error is rethrown: the job as it was when the step
  // began (its state names the step) and the error's text.
  std::function<void(const Job&, const std::string&)> on_step_error;
};

struct RunResult {
  Job job;
  RunStop stop;
  std::chrono::seconds retry_after{0};  // for waiting_on_ca
};

// Claims job `id` (JobBusy if another live worker has it), applies the restart
// rule, and steps it until it stops. Throws std::logic_error when the current
// state has no step in `steps` or a step breaks the rules.
RunResult run_job(Journal& journal, std::int64_t id, const StepTable& steps, const RunOptions& options = {});

// The moves of the effect-free steps that follow a move, as Journal::transition_chain and
// find_or_create ask for them: run_job commits them with the move before them. A step that
// throws, stays or asks for a wait ends the chain (the loop then runs it on its own). Each
// chained move's event text is appended to `details`.
Journal::NextMove effect_free_moves(const StepTable& steps, std::vector<std::string>& details);

// Test hook: when the environment variable QSCD_AGENT_TEST_CRASH_AT equals
// `point`, the process kills itself with SIGKILL. run_job calls it with the
// state name after each committed transition; a step may call it inside itself
// (e.g. "SUBMITTING:posted" after the POST returned, before the order id is stored).
void test_crash_point(std::string_view point);

}  // namespace qscd::agent
