#pragma once
// Small RAII wrappers over SQLite's C API: one owner per sqlite3* and per
// sqlite3_stmt*, errors as exceptions that carry SQLite's own message.
#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

namespace qscd::agent::sql {

class Error : public std::runtime_error {
 public:
  Error(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  [[nodiscard]] int code() const noexcept { return code_; }

 private:
  int code_;
};

class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);
  // Borrows a statement from a Database's cache: reset and given back, not finalized, at the end.
  Statement(sqlite3* db, sqlite3_stmt* cached, bool* in_use) noexcept;
  ~Statement() noexcept;
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are 1-based, as in SQLite. An empty optional binds NULL.
  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, const std::optional<std::int64_t>& value);
  Statement& bind_null(int index);

  // true while a row is available; false when done. Throws on error.
  bool step();
  // Runs a statement that returns no rows.
  void run();

  // Columns are 0-based, as in SQLite. NULL reads as "" / nullopt.
  [[nodiscard]] std::string text(int column) const;
  [[nodiscard]] std::int64_t integer(int column) const;
  [[nodiscard]] std::optional<std::int64_t> optional_integer(int column) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  bool* in_use_ = nullptr;  // set when borrowed from the cache
};

class Database {
 public:
  // Opens (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) `path`.
  explicit Database(const std::filesystem::path& path);
  ~Database() noexcept;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  void exec(std::string_view sql);
  // Compiled once per connection and kept (the journal runs the same few statements on every
  // transition; compiling them was a twentieth of a provisioning's CPU). A statement already
  // borrowed is compiled afresh for the nested use.
  [[nodiscard]] Statement prepare(std::string_view sql);
  [[nodiscard]] std::int64_t last_insert_rowid() const noexcept { return sqlite3_last_insert_rowid(db_); }
  [[nodiscard]] int changes() const noexcept { return sqlite3_changes(db_); }
  [[nodiscard]] sqlite3* handle() const noexcept { return db_; }

 private:
  struct Cached {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };
  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, std::unique_ptr<Cached>> cache_;
};

// BEGIN IMMEDIATE ... COMMIT; rolled back unless commit() was reached. IMMEDIATE
// takes the write lock at the start, so two writers queue on busy_timeout
// instead of failing with SQLITE_BUSY when a reader upgrades.
class Transaction {
 public:
  explicit Transaction(Database& db);
  ~Transaction() noexcept;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Database& db_;
  bool open_ = true;
};

}  // namespace qscd::agent::sql
