#pragma once
// Inside the journal only: how a job row is read and written, shared by journal.cpp (jobs and
// leases) and journal_moves.cpp (transitions). Not part of the folder's interface.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "journal/journal.hpp"
#include "journal/sqlite.hpp"

namespace qscd::agent::rows {

inline constexpr const char* now_sql = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

// The SELECT list read_job() reads, in its order.
extern const char* const job_columns;

// Who holds a job's lease.
struct Claim {
  std::optional<std::int64_t> pid;
  std::string start;
  std::string owner;
};

JobState state_column(const std::string& name);
Job read_job(const sql::Statement& row, Claim* claim = nullptr);
// One job by id, and who holds its lease when `claim` is given. Throws UnknownJob.
Job load_job(sql::Database& db, const std::filesystem::path& path, std::int64_t id, Claim* claim = nullptr);
void add_event(sql::Database& db, std::int64_t id, JobState state, const std::string& detail);

// SQLite's errors as the journal's.
template <typename F>
auto guarded(const std::filesystem::path& path, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const sql::Error& e) {
    throw JournalError("journal " + path.string() + ": " + e.what());
  }
}

}  // namespace qscd::agent::rows
