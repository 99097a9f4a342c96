#include "base/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cstdint>
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
  // O_NONBLOCK: opening a FIFO for reading must not wait for a writer; anything but a regular
  // file is refused before a byte is read.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) throw UsageError(std::string(option), "cannot read " + path.string() + ": " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw UsageError(std::string(option), "cannot read " + path.string() + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) {
    const char* kind = S_ISDIR(st.st_mode) ? "a folder" : S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : "not a regular file";
    throw UsageError(std::string(option), path.string() + " is " + kind + "; give a regular file");
  }
  const std::string too_large = path.string() + " is larger than " + std::to_string(max_bytes / 1024) + " KiB";
  if (static_cast<std::uintmax_t>(st.st_size) > max_bytes) throw UsageError(std::string(option), too_large);
  // At most one byte past the cap: a file that grows while it is read is still refused, not slurped.
  std::string text;
  char buffer[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw UsageError(std::string(option), "cannot read " + path.string() + ": " + std::strerror(errno));
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > max_bytes) throw UsageError(std::string(option), too_large);
  }
  return text;
}

}  // namespace qscd::agent
