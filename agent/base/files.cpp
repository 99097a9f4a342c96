#include "base/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "base/errors.hpp"

namespace qscd::agent {

namespace {

[[noreturn]] void fail(std::string_view option, const std::filesystem::path& path, int error) {
  throw UsageError(std::string(option), "cannot write " + path.string() + ": " + std::strerror(error));
}

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

void write_file_atomically(const std::filesystem::path& path, std::string_view bytes, std::string_view option,
                           mode_t mode) {
  const std::filesystem::path folder = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  std::string temporary = (folder / ("." + path.filename().string() + ".XXXXXX")).string();
  // mkstemp: a fresh name, O_CREAT|O_EXCL, so nothing planted there is followed.
  int fd = ::mkostemp(temporary.data(), O_CLOEXEC);
  if (fd < 0) fail(option, path, errno);
  auto abandon = [&](int error) {
    ::close(fd);
    ::unlink(temporary.c_str());
    fail(option, path, error);
  };
  if (!write_all(fd, bytes) || ::fchmod(fd, mode) != 0 || ::fsync(fd) != 0) abandon(errno);
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    fail(option, path, error);
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    fail(option, path, error);
  }
  // The rename itself survives a crash only once the folder is on disk.
  int folder_fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (folder_fd < 0) fail(option, folder, errno);
  const bool synced = ::fsync(folder_fd) == 0;
  const int error = errno;
  ::close(folder_fd);
  if (!synced) fail(option, folder, error);
}

std::string read_input_file(const std::filesystem::path& path, std::string_view option, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(std::string(option), "cannot read " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().size() > max_bytes) {
    throw UsageError(std::string(option), path.string() + " is larger than " + std::to_string(max_bytes / 1024) + " KiB");
  }
  return text.str();
}

}  // namespace qscd::agent
