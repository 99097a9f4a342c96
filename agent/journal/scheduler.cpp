#include "journal/scheduler.hpp"

#include <csignal>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <thread>

namespace qscd::agent {

StepTable& StepTable::on(JobState state, Step step) {
  steps_[state] = std::move(step);
  return *this;
}

StepTable& StepTable::on_effect_free(JobState state, Step step) {
  steps_[state] = std::move(step);
  effect_free_.insert(state);
  return *this;
}

bool StepTable::is_effect_free(JobState state) const { return effect_free_.contains(state); }

const Step* StepTable::find(JobState state) const {
  auto found = steps_.find(state);
  return found == steps_.end() ? nullptr : &found->second;
}

void test_crash_point(std::string_view point) {
  const char* crash_at = std::getenv("QSCD_AGENT_TEST_CRASH_AT");
  if (crash_at != nullptr && point == crash_at) std::raise(SIGKILL);
}

namespace {

std::string error_text(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown error";
  }
}

}  // namespace

Journal::NextMove effect_free_moves(const StepTable& steps, std::vector<std::string>& details) {
  return [&steps, &details](const Job& now) -> std::optional<Journal::Move> {
    if (!steps.is_effect_free(now.state)) return std::nullopt;
    const Step* effect_free = steps.find(now.state);
    if (effect_free == nullptr) return std::nullopt;
    StepResult next;
    try {
      next = (*effect_free)(now);
    } catch (const std::exception&) {
      // Not inside the chain's transaction: the loop runs the step again on its own, where
      // a failure is recorded as any step's is.
      return std::nullopt;
    }
    if (next.next == now.state || next.retry_after > std::chrono::seconds::zero()) return std::nullopt;
    details.push_back(next.detail);
    return Journal::Move{next.next, std::move(next.detail), std::move(next.update)};
  };
}

RunResult run_job(Journal& journal, std::int64_t id, const StepTable& steps, const RunOptions& options) {
  JobLease lease(journal, id);
  Job job = lease.job();
  bool last_look = false;  // the deadline falls before the next retry: this is the final look
  for (;;) {
    if (job.state == JobState::monitoring) return {job, RunStop::finished};
    if (job.state == JobState::failed) return {job, RunStop::failed};
    if (options.stop_requested && options.stop_requested()) return {job, RunStop::stopped};
    const Step* step = steps.find(job.state);
    if (step == nullptr) {
      if (is_waiting_on_person(job.state)) return {job, RunStop::waiting_on_person};
      throw std::logic_error("no step for job state " + std::string(to_string(job.state)));
    }

    StepResult result;
    try {
      result = (*step)(job);
    } catch (...) {
      auto error = std::current_exception();
      std::string text = error_text(error);
      if (is_in_flight(job.state)) {
        journal.transition(id, job.state, restart_state(job.state), "rolled back after: " + text);
      }
      journal.record_error(id, text);
      if (options.on_step_error) options.on_step_error(job, text);
      std::rethrow_exception(error);
    }

    if (result.next == job.state) {
      if (result.retry_after <= std::chrono::seconds::zero()) {
        throw std::logic_error("the step for " + std::string(to_string(job.state)) +
                               " stayed in its state without a retry time");
      }
      if (is_waiting_on_person(job.state)) return {job, RunStop::waiting_on_person, result.retry_after};
    } else {
      // Effect-free steps after this one move in the same commit.
      // A move that asks for a wait is not chained past: the wait comes first.
      std::vector<std::string> details{result.detail};
      const Journal::NextMove then =
          result.retry_after <= std::chrono::seconds::zero() ? effect_free_moves(steps, details) : Journal::NextMove{};
      std::vector<Job> passed;
      job = journal.transition_chain(id, job.state, Journal::Move{result.next, result.detail, result.update}, then, &passed);
      for (std::size_t i = 0; i < passed.size(); ++i) {
        if (options.on_transition) options.on_transition(passed[i], details[i]);
        test_crash_point(to_string(passed[i].state));
      }
    }

    if (result.retry_after > std::chrono::seconds::zero() && !is_terminal(job.state)) {
      if (!options.wait || last_look) return {journal.get(id), RunStop::waiting_on_ca, result.retry_after};
      std::chrono::seconds delay = result.retry_after;
      if (options.deadline) {
        auto left = std::chrono::duration_cast<std::chrono::seconds>(*options.deadline - std::chrono::steady_clock::now());
        if (left <= std::chrono::seconds::zero()) return {journal.get(id), RunStop::waiting_on_ca, result.retry_after};
        if (left < delay) {
          // One more look exactly at the deadline rather than giving up early.
          delay = left;
          last_look = true;
        }
      }
      if (options.on_wait) options.on_wait(job, result.detail, delay);
      if (options.sleep) {
        options.sleep(delay);
      } else {
        std::this_thread::sleep_for(delay);
      }
    }
  }
}

}  // namespace qscd::agent
