#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "journal/job_state.hpp"

using namespace qscd::agent;

namespace {

std::string trim(const std::string& text) {
  auto begin = text.find_first_not_of(" \t");
  if (begin == std::string::npos) return {};
  auto end = text.find_last_not_of(" \t");
  return text.substr(begin, end - begin + 1);
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  std::string part;
  while (std::getline(stream, part, separator)) parts.push_back(trim(part));
  return parts;
}

struct DocRow {
  std::string kind;
  std::set<std::string> next;
  std::string restart;
};

// The rows between the transitions markers of docs/journal.md.
std::map<std::string, DocRow> doc_table() {
  const char* source = std::getenv("QSCD_TEST_SOURCE_DIR");
  REQUIRE(source != nullptr);
  std::ifstream doc(std::filesystem::path(source) / "docs" / "journal.md");
  REQUIRE(doc.good());
  std::map<std::string, DocRow> rows;
  bool inside = false;
  std::string line;
  while (std::getline(doc, line)) {
    if (line == "<!-- transitions:begin -->") {
      inside = true;
    } else if (line == "<!-- transitions:end -->") {
      inside = false;
    } else if (inside && line.starts_with("| ") && !line.starts_with("| state") && !line.starts_with("|---")) {
      auto cells = split(line.substr(1, line.size() - 2), '|');
      REQUIRE(cells.size() == 4);
      DocRow row{cells[1], {}, cells[3]};
      for (const auto& next : split(cells[2], ',')) {
        if (!next.empty()) row.next.insert(next);
      }
      CHECK_MESSAGE(rows.emplace(cells[0], row).second, "state listed twice: " << cells[0]);
    }
  }
  return rows;
}

std::string kind_of(JobState state) {
  if (is_terminal(state)) return "terminal";
  if (is_in_flight(state)) return "in flight";
  if (is_waiting_on_person(state)) return "waiting";
  return "safe";
}

}  // namespace

TEST_CASE("docs/journal.md's transition table is the code's") {
  auto rows = doc_table();
  CHECK(rows.size() == all_job_states().size());
  for (JobState state : all_job_states()) {
    std::string name(to_string(state));
    CAPTURE(name);
    auto found = rows.find(name);
    REQUIRE(found != rows.end());
    std::set<std::string> code_next;
    for (JobState next : allowed_next(state)) code_next.emplace(to_string(next));
    CHECK(found->second.next == code_next);
    CHECK(found->second.restart == to_string(restart_state(state)));
    CHECK(found->second.kind == kind_of(state));
  }
}

TEST_CASE("state names round-trip and unknown names are refused") {
  for (JobState state : all_job_states()) CHECK(parse_job_state(to_string(state)) == state);
  CHECK_FALSE(parse_job_state("CANCELLED").has_value());
  CHECK_FALSE(parse_job_state("need_key_pair").has_value());
}

TEST_CASE("a transition not in the table throws") {
  CHECK_NOTHROW(check_transition(JobState::need_to_submit, JobState::submitting));
  CHECK_THROWS_WITH_AS(check_transition(JobState::need_order_lookup, JobState::submitting),
                       "job state transition NEED_ORDER_LOOKUP -> SUBMITTING is not allowed", std::logic_error);
  CHECK_THROWS_WITH_AS(check_transition(JobState::monitoring, JobState::need_key_pair),
                       "job state transition MONITORING -> NEED_KEY_PAIR is not allowed", std::logic_error);
}

TEST_CASE("the restart rule rolls every in-flight state back to a safe one") {
  CHECK(restart_state(JobState::generating_key_pair) == JobState::need_key_pair);
  CHECK(restart_state(JobState::submitting) == JobState::need_order_lookup);
  CHECK(restart_state(JobState::installing) == JobState::need_to_install);
  for (JobState state : all_job_states()) {
    CAPTURE(to_string(state));
    JobState resumed = restart_state(state);
    CHECK_FALSE(is_in_flight(resumed));
    if (resumed != state) CHECK(is_allowed(state, resumed));
  }
}

TEST_CASE("no state except the terminal ones is a dead end, and SUBMITTING is never re-entered unsearched") {
  for (JobState state : all_job_states()) {
    CAPTURE(to_string(state));
    CHECK(allowed_next(state).empty() == is_terminal(state));
  }
  // Only NEED_TO_SUBMIT leads into SUBMITTING: a resume goes through NEED_ORDER_LOOKUP first.
  for (JobState state : all_job_states()) {
    if (state != JobState::need_to_submit) CHECK_FALSE(is_allowed(state, JobState::submitting));
  }
}
