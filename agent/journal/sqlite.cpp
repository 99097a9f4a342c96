#include "journal/sqlite.hpp"

#include <utility>

namespace qscd::agent::sql {

namespace {

[[noreturn]] void fail(sqlite3* db, int rc, std::string_view what) {
  std::string message = "SQLite: " + std::string(what) + ": ";
  message += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  throw Error(rc, message);
}

}  // namespace

Statement::Statement(sqlite3* db, std::string_view sql) : db_(db) {
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
  if (rc != SQLITE_OK) fail(db_, rc, "prepare");
}

Statement::Statement(sqlite3* db, sqlite3_stmt* cached, bool* in_use) noexcept : db_(db), stmt_(cached), in_use_(in_use) {
  *in_use_ = true;
}

Statement::~Statement() noexcept {
  if (in_use_ == nullptr) {
    sqlite3_finalize(stmt_);
    return;
  }
  if (stmt_ == nullptr) return;  // moved from
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  *in_use_ = false;
}

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)), in_use_(other.in_use_) {}

Statement& Statement::bind(int index, std::string_view text) {
  int rc = sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) fail(db_, rc, "bind");
  return *this;
}

Statement& Statement::bind(int index, std::int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK) fail(db_, rc, "bind");
  return *this;
}

Statement& Statement::bind(int index, const std::optional<std::int64_t>& value) {
  return value ? bind(index, *value) : bind_null(index);
}

Statement& Statement::bind_null(int index) {
  int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK) fail(db_, rc, "bind");
  return *this;
}

bool Statement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  fail(db_, rc, "step");
}

void Statement::run() {
  while (step()) {
  }
}

std::string Statement::text(int column) const {
  const unsigned char* value = sqlite3_column_text(stmt_, column);
  if (value == nullptr) return {};
  return {reinterpret_cast<const char*>(value), static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column))};
}

std::int64_t Statement::integer(int column) const { return sqlite3_column_int64(stmt_, column); }

std::optional<std::int64_t> Statement::optional_integer(int column) const {
  if (sqlite3_column_type(stmt_, column) == SQLITE_NULL) return std::nullopt;
  return integer(column);
}

Database::Database(const std::filesystem::path& path) {
  int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = "SQLite: open " + path.string() + ": " +
                          (db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(rc, message);
  }
  sqlite3_extended_result_codes(db_, 1);
}

Database::~Database() noexcept {
  for (auto& [sql, cached] : cache_) sqlite3_finalize(cached->stmt);
  sqlite3_close(db_);
}

Statement Database::prepare(std::string_view sql) {
  auto found = cache_.find(std::string(sql));
  if (found == cache_.end()) {
    auto cached = std::make_unique<Cached>();
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &cached->stmt,
                                nullptr);
    if (rc != SQLITE_OK) fail(db_, rc, "prepare");
    found = cache_.emplace(std::string(sql), std::move(cached)).first;
  }
  if (found->second->in_use) return Statement(db_, sql);
  return Statement(db_, found->second->stmt, &found->second->in_use);
}

void Database::exec(std::string_view sql) {
  std::string copy(sql);  // sqlite3_exec needs a NUL-terminated string
  int rc = sqlite3_exec(db_, copy.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) fail(db_, rc, "exec");
}

Transaction::Transaction(Database& db) : db_(db) { db_.prepare("BEGIN IMMEDIATE").run(); }

Transaction::~Transaction() noexcept {
  if (open_) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
  db_.prepare("COMMIT").run();
  open_ = false;
}

}  // namespace qscd::agent::sql
