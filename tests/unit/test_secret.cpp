#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "base/errors.hpp"
#include "base/secret.hpp"

using qscd::agent::read_secret;
using qscd::agent::push_secret_byte;
using qscd::api::SecretBytes;
using qscd::agent::UsageError;

namespace {

std::filesystem::path temp_file(const std::string& content, std::filesystem::perms perms) {
  char pattern[] = "/tmp/qscd-secret-XXXXXX";
  int fd = ::mkstemp(pattern);
  REQUIRE(fd >= 0);
  ::close(fd);
  std::ofstream(pattern) << content;
  std::filesystem::permissions(pattern, perms);
  return pattern;
}

}  // namespace

TEST_CASE("file: source reads one line and drops the newline") {
  auto path = temp_file("1234\n", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  SecretBytes pin = read_secret("file:" + path.string(), "user PIN", "--pin-source");
  CHECK(pin.view() == "1234");
  std::filesystem::remove(path);
}

TEST_CASE("file: source refuses a group- or world-readable file, naming the option and the rule") {
  using std::filesystem::perms;
  for (auto extra : {perms::group_read, perms::others_read, perms::others_write}) {
    auto path = temp_file("1234\n", perms::owner_read | perms::owner_write | extra);
    CHECK_THROWS_WITH_AS(read_secret("file:" + path.string(), "user PIN", "--pin-source"),
                         doctest::Contains("--pin-source"), UsageError);
    CHECK_THROWS_WITH_AS(read_secret("file:" + path.string(), "user PIN", "--pin-source"),
                         doctest::Contains("must not be readable or writable by group or others"), UsageError);
    std::filesystem::remove(path);
  }
}

TEST_CASE("env: and fd: sources") {
  ::setenv("QSCD_TEST_PIN", "987654", 1);
  CHECK(read_secret("env:QSCD_TEST_PIN", "user PIN", "--pin-source").view() == "987654");
  CHECK(std::getenv("QSCD_TEST_PIN") == nullptr);  // read once, then gone from the environment
  CHECK_THROWS_WITH_AS(read_secret("env:QSCD_TEST_PIN", "user PIN", "--pin-source"),
                       doctest::Contains("QSCD_TEST_PIN is not set"), UsageError);

  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  REQUIRE(::write(fds[1], "4321\r\nrest", 10) == 10);
  ::close(fds[1]);
  CHECK(read_secret("fd:" + std::to_string(fds[0]), "user PIN", "--pin-source").view() == "4321");
  ::close(fds[0]);
  CHECK_THROWS_AS(read_secret("fd:x", "user PIN", "--pin-source"), UsageError);
  CHECK_THROWS_WITH_AS(read_secret("fd:999", "user PIN", "--pin-source"), doctest::Contains("not open"), UsageError);
}

TEST_CASE("unknown and empty sources are usage errors") {
  CHECK_THROWS_WITH_AS(read_secret("1234", "user PIN", "--pin-source"), doctest::Contains("unknown secret source"),
                       UsageError);
  ::setenv("QSCD_TEST_EMPTY", "", 1);
  CHECK_THROWS_WITH_AS(read_secret("env:QSCD_TEST_EMPTY", "user PIN", "--pin-source"), doctest::Contains("is empty"),
                       UsageError);
  ::unsetenv("QSCD_TEST_EMPTY");
}

TEST_CASE("a secret read by the agent wipes on clear and refuses to grow past its fixed size") {
  SecretBytes secret;
  for (char c : std::string("secret")) push_secret_byte(secret, static_cast<unsigned char>(c));
  const unsigned char* data = secret.bytes().data();
  secret.clear();
  CHECK(secret.empty());
  for (int i = 0; i < 6; ++i) CHECK(data[i] == 0);
  SecretBytes big;
  for (std::size_t i = 0; i < SecretBytes::default_capacity; ++i) push_secret_byte(big, 'x');
  CHECK_THROWS_WITH_AS(push_secret_byte(big, 'x'), "secret: longer than 4096 bytes", UsageError);
}

TEST_CASE("a source longer than 4096 bytes is a usage error naming the option") {
  ::setenv("QSCD_TEST_LONG", std::string(4097, 'x').c_str(), 1);
  CHECK_THROWS_WITH_AS(read_secret("env:QSCD_TEST_LONG", "user PIN", "--pin-source"),
                       "--pin-source: the user PIN in QSCD_TEST_LONG is longer than 4096 bytes", UsageError);
  ::unsetenv("QSCD_TEST_LONG");
  ::setenv("QSCD_TEST_LONGEST", std::string(4096, 'x').c_str(), 1);
  CHECK(read_secret("env:QSCD_TEST_LONGEST", "user PIN", "--pin-source").size() == 4096);
}

TEST_CASE("pinentry source: reads the PIN through an Assuan responder (tests/support/fake-pinentry.sh)") {
  const char* source_dir = std::getenv("QSCD_TEST_SOURCE_DIR");
  REQUIRE(source_dir != nullptr);
  const std::string fake = std::string(source_dir) + "/tests/support/fake-pinentry.sh";
  ::setenv("PINENTRY_PROGRAM", fake.c_str(), 1);
  CHECK(read_secret("pinentry", "user PIN", "--pin-source").view() == "1234");
  ::setenv("PINENTRY_PROGRAM", "/nonexistent", 1);
  CHECK_THROWS_WITH_AS(read_secret("pinentry", "user PIN", "--pin-source"),
                       "--pin-source: cannot run the pinentry program '/nonexistent' (set PINENTRY_PROGRAM or install pinentry)",
                       UsageError);
  ::unsetenv("PINENTRY_PROGRAM");
}
