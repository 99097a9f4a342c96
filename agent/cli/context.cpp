#include "cli/context.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/errors.hpp"
#include "base/stop.hpp"
#include "certs/certbundle.hpp"
#include "qscd/api/client.hpp"
#include "qscd/api/error.hpp"
#include "qscd/pkcs11/module.hpp"

namespace qscd::agent {

Context::Context() = default;
Context::~Context() = default;

void Context::apply_verbosity() {
  if (options.quiet) {
    log.set_level(LogLevel::quiet);
  } else if (options.verbose >= 2) {
    log.set_level(LogLevel::trace);
  } else if (options.verbose == 1) {
    log.set_level(LogLevel::verbose);
  }
}

const Config& Context::config() {
  if (!config_) {
    std::optional<std::filesystem::path> path;
    if (!options.config_path.empty()) path = options.config_path;
    config_ = load_config(path);
  }
  return *config_;
}

Config Context::load_config_again() const {
  std::optional<std::filesystem::path> path;
  if (!options.config_path.empty()) path = options.config_path;
  return load_config(path);
}

Context::ModuleChoice Context::module_choice() {
  if (!options.module.empty()) return {options.module, "--module"};
  if (const char* env = std::getenv("QSCD_AGENT_MODULE"); env != nullptr && *env != '\0') {
    return {env, "QSCD_AGENT_MODULE"};
  }
  const Config& loaded = config();
  if (const auto& configured = loaded.pkcs11_module) {
    return {*configured, "pkcs11.module of " + (loaded.source ? loaded.source->string() : std::string("the config"))};
  }
  return {p11::Module::default_path(), "the default module (no --module, QSCD_AGENT_MODULE or pkcs11.module)"};
}

p11::Module& Context::module() {
  if (!module_) {
    ModuleChoice choice = module_choice();
    log.debug("loading PKCS#11 module " + choice.path + " (" + choice.origin + ")");
    module_ = std::make_unique<p11::Module>(choice.path, choice.origin);
  }
  return *module_;
}

TokenAccess Context::tokens() {
  return TokenAccess{[this]() -> p11::Module& { return module(); }, log};
}

CaSettings Context::ca_settings() {
  CaSettings settings;
  const Config& loaded = config();
  if (!options.api_url.empty()) {
    settings.base_url = options.api_url;
  } else if (loaded.api_base_url) {
    settings.base_url = *loaded.api_base_url;
    // Named as the config's key: the user never typed --api-url.
    try {
      api::check_base_url(settings.base_url);
    } catch (const api::ConfigError& e) {
      std::string why = e.what();
      if (why.starts_with("--api-url: ")) why = why.substr(11);
      throw UsageError("api.base_url", why + " (" + settings.base_url + ")");
    }
  }
  std::string ca_file_option;
  if (!options.ca_file.empty()) {
    settings.ca_file = options.ca_file;
    ca_file_option = "--ca-file";
  } else if (loaded.api_ca_file) {
    settings.ca_file = *loaded.api_ca_file;
    ca_file_option = "api.ca_file";
  }
  // Bad input, not an unreachable CA: curl would only fail on it at the first request (exit 4).
  if (!settings.ca_file.empty()) (void)read_trust_file(settings.ca_file, ca_file_option, true);
  if (!options.api_key_source.empty()) {
    settings.key_source = options.api_key_source;
  } else if (loaded.api_key_source) {
    settings.key_source = *loaded.api_key_source;
  }
  settings.pickup_path = loaded.api_pickup_path;
  if (log.level() >= LogLevel::trace) settings.trace = &log;
  settings.progress = &log;
  settings.cancelled = [] { return stop_requested(); };
  return settings;
}

ProvisionServices Context::provision_services() {
  ProvisionServices services{tokens(), [this] { return state_dir(); }, ca_settings(), std::nullopt};
  if (const auto& command = config().post_install_hook) services.post_install = PostInstallHook{*command, config().post_install_timeout};
  return services;
}

std::filesystem::path Context::state_dir() {
  std::filesystem::path dir;
  if (!options.state_dir.empty()) {
    dir = options.state_dir;
  } else if (const char* env = std::getenv("QSCD_AGENT_STATE_DIR"); env != nullptr && *env != '\0') {
    dir = env;
  } else if (const auto& configured = config().state_dir) {
    dir = *configured;
  } else if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg != nullptr && *xdg != '\0') {
    dir = std::filesystem::path(xdg) / "qscd-agent";
  } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    dir = std::filesystem::path(home) / ".local" / "state" / "qscd-agent";
  } else {
    throw UsageError("--state-dir", "no state folder: set --state-dir, QSCD_AGENT_STATE_DIR or HOME");
  }
  // Only a folder the agent makes gets its mode set (0700); an existing one is used as it is,
  // and refused when others could plant or swap the journal in it.
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    std::error_code ec;
    if (dir.has_parent_path()) std::filesystem::create_directories(dir.parent_path(), ec);
    if (ec) throw UsageError("--state-dir", "cannot create " + dir.parent_path().string() + ": " + ec.message());
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      throw UsageError("--state-dir", "cannot create " + dir.string() + ": " + std::strerror(errno));
    }
    ::chmod(dir.c_str(), 0700);  // the umask may have taken bits off, never added any
    if (::stat(dir.c_str(), &st) != 0) throw UsageError("--state-dir", "cannot read " + dir.string() + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) throw UsageError("--state-dir", dir.string() + " is not a folder");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 || st.st_uid != ::geteuid()) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw UsageError("--state-dir", dir.string() + " (mode " + mode + ", owner uid " + std::to_string(st.st_uid) +
                                        ") must belong to uid " + std::to_string(::geteuid()) +
                                        " and not be writable by group or others; give a folder of your own (it is made with mode 0700)");
  }
  return dir;
}

}  // namespace qscd::agent
