#pragma once
// What every command gets: the global options, the config, the log, the one
// PKCS#11 module of the process (loaded on first use) and the place to put its
// result. Commands never print; main() prints the result they leave here.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "config.hpp"
#include "exit_code.hpp"
#include "log.hpp"

namespace qscd::p11 {
class Module;
}

namespace qscd::agent {

struct GlobalOptions {
  std::string module;          // --module
  std::string config_path;     // --config
  std::string state_dir;       // --state-dir
  std::string api_url;         // --api-url
  std::string ca_file;         // --ca-file
  std::string api_key_source;  // --api-key-source
  bool json = false;           // --json
  int verbose = 0;             // -v (repeatable)
  bool quiet = false;          // -q
};

// What a command leaves for main() to print: one JSON document for --json,
// human text otherwise. `exit` is ok unless the command finished with a
// non-error outcome such as "waiting" (5).
struct CommandResult {
  nlohmann::json json = nlohmann::json::object();
  std::string text;
  ExitCode exit = ExitCode::ok;
};

class Context {
 public:
  Context();
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  GlobalOptions options;
  Log log;

  // Applies -v/-q to the log; called once options are parsed.
  void apply_verbosity();

  const Config& config();
  // --module, then QSCD_AGENT_MODULE, then config pkcs11.module, then p11-kit's proxy.
  std::string module_path() { return module_choice().path; }
  // Loads the module on first use; the same one for the rest of the process.
  p11::Module& module();
  // --state-dir, then QSCD_AGENT_STATE_DIR, then config agent.state_dir, then
  // $XDG_STATE_HOME/qscd-agent (~/.local/state/qscd-agent). Created 0700.
  std::filesystem::path state_dir();

  void set_result(CommandResult result) { result_ = std::move(result); }
  [[nodiscard]] const std::optional<CommandResult>& result() const { return result_; }

 private:
  // The module path and where it came from, for the ModuleLoadError a bad one gives.
  struct ModuleChoice {
    std::string path;
    std::string origin;
  };
  ModuleChoice module_choice();

  std::optional<Config> config_;
  std::unique_ptr<p11::Module> module_;
  std::optional<CommandResult> result_;
};

}  // namespace qscd::agent
