#pragma once
// Log and progress lines, always on stderr so stdout stays one document.
// Never pass a secret here: api::SecretBytes has no conversion to text on purpose.
#include <string>
#include <string_view>

namespace qscd::agent {

// A message with several lines (a list of candidates) joined with "; ": one journald line per
// event for the daemon.
std::string single_line(std::string text);

enum class LogLevel { quiet = 0, normal = 1, verbose = 2, trace = 3 };

class Log {
 public:
  void set_level(LogLevel level) noexcept { level_ = level; }
  [[nodiscard]] LogLevel level() const noexcept { return level_; }

  void error(std::string_view message) const;    // shown unless the process is killed
  void warn(std::string_view message) const;     // hidden by -q
  void progress(std::string_view message) const; // one line per step; hidden by -q
  void info(std::string_view message) const;     // -v
  void debug(std::string_view message) const;    // -vv

 private:
  void write(std::string_view prefix, std::string_view message) const;
  LogLevel level_ = LogLevel::normal;
};

}  // namespace qscd::agent
