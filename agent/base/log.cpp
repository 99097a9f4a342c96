#include "base/log.hpp"

#include <cstdio>
#include <string>

namespace qscd::agent {

std::string single_line(std::string text) {
  while (!text.empty() && text.back() == '\n') text.pop_back();
  for (std::size_t at = text.find('\n'); at != std::string::npos; at = text.find('\n', at)) text.replace(at, 1, "; ");
  return text;
}

void Log::write(std::string_view prefix, std::string_view message) const {
  std::string line;
  line.reserve(prefix.size() + message.size() + 16);
  line.append("qscd-agent: ").append(prefix).append(message).push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

void Log::error(std::string_view message) const { write("error: ", message); }
void Log::warn(std::string_view message) const {
  if (level_ >= LogLevel::normal) write("warning: ", message);
}
void Log::progress(std::string_view message) const {
  if (level_ >= LogLevel::normal) write("", message);
}
void Log::info(std::string_view message) const {
  if (level_ >= LogLevel::verbose) write("", message);
}
void Log::debug(std::string_view message) const {
  if (level_ >= LogLevel::trace) write("debug: ", message);
}

}  // namespace qscd::agent
