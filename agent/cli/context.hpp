#pragma once
// What every command gets: the global options, the config, the log, the one
// PKCS#11 module of the process (loaded on first use) and the place to put its
// result. Commands never print; main() prints the result they leave here.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/config.hpp"
#include "base/log.hpp"
#include "ca/client_factory.hpp"
#include "provision/provisioner.hpp"
#include "token/token_access.hpp"

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

// How a command that did not throw ended; main() maps it to the contract's exit code.
enum class CommandStatus {
  done,
  findings,           // the input was read and breaks rules (csr check): bad input
  waiting_on_ca,      // the job is saved and CertCentral has not issued yet
  waiting_on_person,  // the job waits on the token or its PIN
  failed_at_ca,       // the CA refused, or its certificate can never fit
  stopped,            // SIGINT/SIGTERM: the job is saved; the same command continues it (exit 5)
};

// What a command leaves for main() to print: one JSON document for --json, human text otherwise.
struct CommandResult {
  nlohmann::json json = nlohmann::json::object();
  std::string text;
  CommandStatus status = CommandStatus::done;
  bool raw = false;  // `text` is bytes for stdout as they are (export --format der|p7b)
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
  // Reads the config again from --config (or the default places), without making it the one in
  // force; throws UsageError when it is bad (watch's SIGHUP).
  Config load_config_again() const;
  // Makes `config` the one in force (the module stays the one loaded).
  void replace_config(Config config) { config_ = std::move(config); }
  // --module, then QSCD_AGENT_MODULE, then config pkcs11.module, then p11-kit's proxy.
  std::string module_path() { return module_choice().path; }
  // Loads the module on first use; the same one for the rest of the process.
  p11::Module& module();
  // The module (on first use) and the log, for the token layer's helpers.
  TokenAccess tokens();
  // The CertCentral settings: --api-url, --ca-file, --api-key-source, then the config, then the
  // defaults.
  CaSettings ca_settings();
  // What a job needs from the process.
  ProvisionServices provision_services();
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
