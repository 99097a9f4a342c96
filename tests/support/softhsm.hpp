#pragma once
// A throwaway SoftHSM2 token store for one test: its own folder, its own
// softhsm2.conf, SOFTHSM2_CONF pointing at it (for this process and every
// child it starts), tokens made with softhsm2-util. After pkcs11-provider's
// tests/softhsm-init.sh. The folder is removed at the end of the test.
#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace qscd::test {

inline constexpr const char* softhsm_module = "/usr/lib/softhsm/libsofthsm2.so";

// Runs argv[0] with argv, stdout/stderr to /dev/null; returns the exit status.
inline int run_quietly(const std::vector<std::string>& argv) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    std::FILE* null = std::fopen("/dev/null", "w");
    if (null != nullptr) {
      ::dup2(::fileno(null), 1);
      ::dup2(::fileno(null), 2);
    }
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class SoftHsm {
 public:
  SoftHsm() {
    std::string pattern = (std::filesystem::temp_directory_path() / "qscd-softhsm-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    dir_ = pattern;
    std::filesystem::create_directory(dir_ / "tokens");
    std::ofstream(dir_ / "softhsm2.conf") << "directories.tokendir = " << (dir_ / "tokens").string()
                                          << "\nobjectstore.backend = file\nlog.level = ERROR\n";
    ::setenv("SOFTHSM2_CONF", (dir_ / "softhsm2.conf").c_str(), 1);
  }
  ~SoftHsm() {
    ::unsetenv("SOFTHSM2_CONF");
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  SoftHsm(const SoftHsm&) = delete;
  SoftHsm& operator=(const SoftHsm&) = delete;

  // A new initialised token in the first free slot.
  void add_token(const std::string& label, const std::string& so_pin = "12345678",
                 const std::string& user_pin = "123456") const {
    REQUIRE(run_quietly({"softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin",
                         user_pin}) == 0);
  }

  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

}  // namespace qscd::test
