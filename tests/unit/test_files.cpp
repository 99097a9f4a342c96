#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "base/files.hpp"
#include "base/errors.hpp"
#include "scratch_dir.hpp"

using qscd::agent::UsageError;
using qscd::agent::write_file_atomically;

namespace {

std::string read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::size_t entries(const std::filesystem::path& folder) {
  return static_cast<std::size_t>(
      std::distance(std::filesystem::directory_iterator(folder), std::filesystem::directory_iterator()));
}

}  // namespace

TEST_CASE("write_file_atomically: writes, replaces, leaves no temporary file, mode as asked") {
  ScratchDir dir;
  const auto target = dir.path() / "out.pem";
  write_file_atomically(target, "first", "--out");
  CHECK(read_all(target) == "first");
  write_file_atomically(target, "second", "--out", 0600);
  CHECK(read_all(target) == "second");
  struct stat st {};
  REQUIRE(::stat(target.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(entries(dir.path()) == 1);
}

TEST_CASE("write_file_atomically: a symlink at the target or at the old fixed .tmp name is not written through") {
  ScratchDir dir;
  const auto victim = dir.path() / "victim";
  std::ofstream(victim) << "untouched";
  const auto target = dir.path() / "out.csr";
  std::filesystem::create_symlink(victim, target);
  std::filesystem::create_symlink(victim, dir.path() / "out.csr.tmp");
  write_file_atomically(target, "request", "--out");
  CHECK(read_all(victim) == "untouched");
  CHECK_FALSE(std::filesystem::is_symlink(target));
  CHECK(read_all(target) == "request");
}

TEST_CASE("write_file_atomically: a missing folder is refused naming the option and path; nothing left behind") {
  ScratchDir dir;
  const std::string expected = "--out: cannot write " + (dir.path() / "no" / "out.der").string();
  CHECK_THROWS_WITH_AS(write_file_atomically(dir.path() / "no" / "out.der", "x", "--out"),
                       doctest::Contains(expected.c_str()), UsageError);
  std::filesystem::create_directory(dir.path() / "folder");
  CHECK_THROWS_WITH_AS(write_file_atomically(dir.path() / "folder", "x", "--out"), doctest::Contains("--out"), UsageError);
  CHECK(entries(dir.path()) == 1);
}
