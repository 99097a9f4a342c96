#pragma once
// Helpers for the CSR tests: a private temporary folder, files, running openssl and the agent.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace csr_test {

inline std::filesystem::path source_dir() {
  const char* dir = std::getenv("QSCD_TEST_SOURCE_DIR");
  if (dir == nullptr) throw std::runtime_error("QSCD_TEST_SOURCE_DIR is not set (run through ctest)");
  return dir;
}

inline std::filesystem::path data_dir() { return source_dir() / "tests" / "data" / "csr"; }

// A folder of its own under the system temp folder, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "qscd-csr-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline std::vector<unsigned char> read_bytes(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error("cannot read " + path.string());
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << text;
}

struct Run {
  int exit = -1;
  std::string out;  // stdout; stderr goes to `err`
  std::string err;
};

// Runs `command` through /bin/sh; stdout captured, stderr captured through a temp file.
inline Run run(const std::string& command) {
  const std::string err_path = (std::filesystem::temp_directory_path() /
                                ("qscd-csr-err-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand())))
                                   .string();
  Run result;
  FILE* pipe = ::popen((command + " 2>" + err_path).c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed");
  std::array<char, 4096> buffer{};
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.out.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  result.exit = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream err(err_path);
  std::stringstream text;
  text << err.rdbuf();
  result.err = text.str();
  std::filesystem::remove(err_path);
  return result;
}

inline std::string quote(const std::filesystem::path& path) { return "'" + path.string() + "'"; }

// The attribute names `openssl asn1parse` shows for the subject's OBJECTs, in order (the
// algorithm OIDs of the key and signature are left out).
inline std::vector<std::string> subject_oids_by_asn1parse(const std::filesystem::path& csr) {
  const Run parsed = run("openssl asn1parse -in " + quote(csr));
  if (parsed.exit != 0) throw std::runtime_error("openssl asn1parse failed: " + parsed.err);
  static const std::vector<std::string> attribute_names{
      "countryName",         "organizationName", "organizationalUnitName", "commonName",
      "localityName",        "stateOrProvinceName", "serialNumber",        "organizationIdentifier"};
  std::vector<std::string> names;
  std::istringstream lines(parsed.out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find("OBJECT") == std::string::npos) continue;
    const auto colon = line.rfind(':');
    std::string name = line.substr(colon + 1);
    while (!name.empty() && name.back() == ' ') name.pop_back();
    for (const auto& known : attribute_names) {
      if (name == known) names.push_back(name);
    }
  }
  return names;
}

}  // namespace csr_test
