#pragma once
// Test harness for certcentral-sim: starts it on an ephemeral loopback port in
// its own temporary folder, waits until it writes its port file, and stops it
// (SIGTERM, then SIGKILL) when the object goes. Header-only, POSIX.
//
//   qscd::test::CertCentralSim sim({"--issue-after-polls", "2"});
//   client_options.base_url = sim.url();   // https://127.0.0.1:PORT/services/v2
//   client_options.ca_file = sim.ca_file(); // the sim's test root
//   ... sim.audit() gives the audit log lines as JSON.
//
// The binary comes from QSCD_CERTCENTRAL_SIM (set by CTest for every doctest).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace qscd::test {

class CertCentralSim {
 public:
  static constexpr const char* api_key = "sim-test-key-0123456789abcdef";

  explicit CertCentralSim(std::vector<std::string> extra_args = {}) {
    const char* binary = std::getenv("QSCD_CERTCENTRAL_SIM");
    if (binary == nullptr || *binary == '\0') throw std::runtime_error("QSCD_CERTCENTRAL_SIM is not set (run through ctest)");
    std::string pattern = (std::filesystem::temp_directory_path() / "qscd-sim-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    args_ = {binary, "--state-dir", dir_.string(), "--port", "0", "--api-key", api_key, "--lifetime", "900"};
    base_args_ = args_.size();
    args_.insert(args_.end(), extra_args.begin(), extra_args.end());
    launch();
  }

  // Restarts on the same folder with other flags (a fault for the next runs only).
  void restart(const std::vector<std::string>& extra_args) {
    args_.resize(base_args_);
    args_.insert(args_.end(), extra_args.begin(), extra_args.end());
    restart();
  }

  // Stops the sim and starts it again on the same folder (a new port): what it kept is what it
  // saved.
  void restart() {
    stop();
    std::filesystem::remove(dir_ / "port");
    launch();
  }

  ~CertCentralSim() {
    stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  CertCentralSim(const CertCentralSim&) = delete;
  CertCentralSim& operator=(const CertCentralSim&) = delete;

  // SIGTERM, wait up to 10 s, then SIGKILL. Returns the exit status (or -1).
  int stop() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 500; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return -1;
  }

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::string url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/services/v2"; }
  [[nodiscard]] std::string ca_file() const { return (dir_ / "root-ca.pem").string(); }
  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }
  [[nodiscard]] std::string ca_pem() const {
    std::ifstream in(ca_file(), std::ios::binary);
    std::ostringstream content;
    content << in.rdbuf();
    return content.str();
  }

  // The orders the sim holds, by id (the last line for each in DIR/orders.jsonl, written before
  // the answer that changed it: no lag).
  [[nodiscard]] nlohmann::json orders() const {
    nlohmann::json orders = nlohmann::json::object();
    std::ifstream in(dir_ / "orders.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      nlohmann::json saved = nlohmann::json::parse(line, nullptr, false);
      if (saved.is_discarded() || !saved.contains("id")) continue;  // cut short by a kill
      orders[saved["id"].get<std::string>()] = saved["order"];
    }
    return orders;
  }

  // The sim writes a request's audit line just after the answer went out, so a client can be
  // faster than the log: wait until the file has stopped growing (at most a second).
  [[nodiscard]] std::vector<nlohmann::json> audit() const {
    std::error_code ec;
    std::uintmax_t size = std::filesystem::file_size(dir_ / "audit.jsonl", ec);
    for (int quiet = 0, looks = 0; quiet < 2 && looks < 50; ++looks) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      std::uintmax_t now = std::filesystem::file_size(dir_ / "audit.jsonl", ec);
      quiet = now == size ? quiet + 1 : 0;
      size = now;
    }
    std::vector<nlohmann::json> lines;
    std::ifstream in(dir_ / "audit.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
    }
    return lines;
  }

  // Everything the sim wrote, for "the key appears nowhere" checks.
  [[nodiscard]] std::string all_files_text() const {
    std::string text;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_)) {
      if (!entry.is_regular_file()) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      std::ostringstream content;
      content << in.rdbuf();
      text += content.str();
    }
    return text;
  }

 private:
  void launch() {
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& arg : args_) argv.push_back(arg.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!std::filesystem::exists(dir_ / "port")) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("certcentral-sim exited during start");
      }
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("certcentral-sim did not start in 30 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::ifstream in(dir_ / "port");
    in >> port_;
  }

  std::filesystem::path dir_;
  std::vector<std::string> args_;
  std::size_t base_args_ = 0;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace qscd::test
