// qscd-agent: the one place where errors become exit codes and results are printed.
#include <CLI/CLI.hpp>

#include <sys/prctl.h>
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <exception>
#include <optional>
#include <vector>
#include <iostream>
#include <string>
#include <string_view>

#include "base/stop.hpp"
#include "base/text.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/exit_code.hpp"

#ifndef QSCD_AGENT_VERSION
#define QSCD_AGENT_VERSION "0.0.0"
#endif

namespace {

using qscd::agent::ExitCode;

int as_int(ExitCode code) { return static_cast<int>(code); }

// The first word that is neither an option nor an option's value, when it is no command: the
// message naming it, the commands and the closest one.
std::optional<std::string> unknown_command(const CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg(argv[i]);
    if (arg == "--") return std::nullopt;
    if (arg.starts_with("-")) {
      const CLI::Option* option = app.get_option_no_throw(std::string(arg));
      if (option != nullptr && option->get_items_expected_max() > 0 && arg.find('=') == std::string_view::npos) ++i;
      continue;
    }
    std::vector<std::string> names;
    for (const CLI::App* command : app.get_subcommands([](const CLI::App*) { return true; })) names.push_back(command->get_name());
    if (std::find(names.begin(), names.end(), arg) != names.end()) return std::nullopt;
    const std::vector<std::string_view> views(names.begin(), names.end());
    return std::string(arg) + ": is not a command (" + qscd::agent::joined(views) + ")" + qscd::agent::did_you_mean(arg, views);
  }
  return std::nullopt;
}

int run(int argc, char** argv) {
  // A reader that went away (pinentry, a closed pipe on stdout) is an EPIPE
  // error to handle, not a signal that kills the agent; libcurl wants this too.
  std::signal(SIGPIPE, SIG_IGN);
  // SIGINT/SIGTERM stop a run at its next safe point (base/stop.hpp); `watch` blocks them and
  // reads them from its signalfd instead.
  qscd::agent::install_stop_handlers();
  qscd::agent::Context context;
  auto& options = context.options;

  CLI::App app{"qscd-agent: puts qualified e-seal and server certificates onto PKCS#11 tokens", "qscd-agent"};
  app.set_version_flag("--version", QSCD_AGENT_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // global options are accepted after the subcommand too
  app.add_option("--module", options.module, "PKCS#11 module (default: QSCD_AGENT_MODULE, config, p11-kit proxy)");
  app.add_option("--config", options.config_path, "TOML config file");
  app.add_option("--state-dir", options.state_dir, "journal folder (default: QSCD_AGENT_STATE_DIR, XDG state)");
  app.add_option("--api-url", options.api_url, "CertCentral Services API base URL");
  app.add_option("--ca-file", options.ca_file, "trust anchors for the API's TLS certificate");
  app.add_option("--api-key-source", options.api_key_source, "where the API key comes from (default env:CERTCENTRAL_API_KEY)");
  app.add_flag("--json", options.json, "print one JSON document on stdout");
  app.add_flag("-v,--verbose", options.verbose, "more logging on stderr (repeat for more)");
  app.add_flag("-q,--quiet", options.quiet, "less logging on stderr");
  app.parse_complete_callback([&context] {
    context.apply_verbosity();
    // Every run reads and checks the config before its command starts, whichever options it
    // uses: a bad value is exit 2 always, not only when a command happens to look it up.
    (void)context.config();
  });

  qscd::agent::register_commands(app, context);

  auto json_asked = [argc, argv] {
    bool json = false;
    for (int i = 1; i < argc && std::string_view(argv[i]) != "--"; ++i) json = json || std::string_view(argv[i]) == "--json";
    return json;
  };
  auto usage_error = [&](const std::string& message) {
    std::cerr << "qscd-agent: error: " << message << '\n';
    if (json_asked()) {
      nlohmann::json doc = {{"error", {{"exit_code", as_int(ExitCode::usage)}, {"message", message}}}};
      std::cout << doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    }
    return as_int(ExitCode::usage);
  };
  // A word where the command goes that names none is an error with the list, also before
  // --help (which would print the top-level help and exit 0 for a command that does not exist).
  if (auto unknown = unknown_command(app, argc, argv)) return usage_error(*unknown);

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);  // prints the usage message on stderr
    // --json promises one document on stdout, also when the command line itself is wrong.
    if (json_asked()) {
      nlohmann::json doc = {{"error", {{"exit_code", as_int(ExitCode::usage)}, {"message", e.what()}}}};
      std::cout << doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    }
    return as_int(ExitCode::usage);
  } catch (...) {
    qscd::agent::Failure failure = qscd::agent::failure_for(std::current_exception());
    nlohmann::json error = nlohmann::json::object();
    if (qscd::agent::stop_requested()) {
      // Stopped before a job was saved (a PIN prompt, a check before the journal): nothing to continue.
      failure = {ExitCode::failure, "stopped by " + qscd::agent::stop_signal_name() + " (" + failure.message +
                                        "); nothing was saved: run the command again"};
      error["stopped_by"] = qscd::agent::stop_signal_name();
    }
    context.log.error(failure.message);
    if (options.json) {
      error["exit_code"] = as_int(failure.code);
      error["message"] = failure.message;
      nlohmann::json doc = {{"error", error}};
      std::cout << doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    }
    return as_int(failure.code);
  }

  const auto& result = context.result();
  if (result && result->status == qscd::agent::CommandStatus::stopped) {
    context.log.warn("stopped by " + qscd::agent::stop_signal_name() + "; run the same command again to continue");
  }
  if (result) {
    if (options.json) {
      // Labels and subjects come from tokens and files: bytes that are not UTF-8 become U+FFFD.
      std::cout << result->json.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    } else if (result->raw) {
      std::cout.write(result->text.data(), static_cast<std::streamsize>(result->text.size()));
    } else if (!result->text.empty()) {
      std::cout << result->text;
      if (result->text.back() != '\n') std::cout << '\n';
    }
    std::cout.flush();
    return as_int(qscd::agent::exit_code_for(result->status));
  }
  return as_int(ExitCode::ok);
}

}  // namespace

int main(int argc, char** argv) {
#ifndef QSCD_ALLOW_CORE_DUMPS
  // PINs and the API key live in this process (and in libcurl's header buffers): no core dump
  // may carry them, and no other process of the same user may ptrace or read its memory.
  const rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
  int code = run(argc, argv);
  // Everything of ours is closed when run() returns: the module finalized, the journal and the
  // connection closed, the output written. What exit() would add is the libraries' teardown
  // (OpenSSL's, GnuTLS's and p11-kit's handlers and destructors), which only frees memory the
  // kernel takes back anyway (docs/performance.md, "the early _Exit").
#ifdef QSCD_SANITIZE
  return code;  // a QSCD_SANITIZE build: LeakSanitizer looks for leaks in exit()
#else
  std::cout.flush();
  std::fflush(nullptr);
  std::_Exit(code);
#endif
}
