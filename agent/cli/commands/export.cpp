// `export --key URI [--format pem|der|p7b] [--out FILE]`: the certificate chain
// stored on the token for a key.
#include <unistd.h>

#include <memory>
#include <string>

#include "base/files.hpp"
#include "certs/certbundle.hpp"
#include "certs/install.hpp"
#include "cli/token_options.hpp"
#include "qscd/pkcs11/keys.hpp"
#include "cli/registry.hpp"

namespace qscd::agent::cmd {

namespace {

struct ExportOptions {
  std::string key;
  std::string format = "pem";
  std::string out;
  TokenOptions token;  // --pin-source, --allow-final-try; the token is --key's
};

CommandResult run_export(Context& context, const ExportOptions& options) {
  // Binary to stdout is fine into a file or a pipe; not onto a terminal, nor into --json's document.
  if (options.format != "pem" && options.out.empty()) {
    if (context.options.json) {
      throw UsageError("--out", "--format " + options.format + " is binary and --json prints its document on stdout: give --out FILE");
    }
    if (::isatty(STDOUT_FILENO) == 1) {
      throw UsageError("--out", "--format " + options.format + " is binary and stdout is a terminal: give --out FILE, or redirect stdout");
    }
  }
  OpenKey source = open_key(context.tokens(), options.key, options.token,
                            {.access = p11::Session::Access::read_only, .login = KeyLogin::if_pin_given, .before_login = nullptr});
  const TokenKey key = find_token_key(source.session, source.uri);
  std::vector<ossl::X509Ptr> chain = stored_chain(source.session, key);

  std::string bytes;
  if (options.format == "pem") {
    for (const auto& cert : chain) bytes += to_pem(cert.get());
  } else if (options.format == "der") {
    auto der = to_der(chain.front().get());  // DER holds one certificate: the end entity
    bytes.assign(der.begin(), der.end());
  } else {
    auto der = to_p7b(chain);
    bytes.assign(der.begin(), der.end());
  }

  CommandResult result;
  result.json = {{"token_serial", source.info.serial},
                 {"key_id", p11::to_hex(key.id)},
                 {"format", options.format},
                 {"certificates", nlohmann::json::array()}};
  for (const auto& cert : chain) {
    result.json["certificates"].push_back({{"subject", subject_line(X509_get_subject_name(cert.get()))},
                                           {"serial", serial_hex(cert.get())},
                                           {"pem", to_pem(cert.get())}});
  }
  if (options.out.empty()) {
    result.text = bytes;
    result.raw = options.format != "pem";  // written as it is: no newline after DER
  } else {
    write_file_atomically(options.out, bytes, "--out");
    result.json["out"] = options.out;
    result.text = "wrote " + std::to_string(options.format == "der" ? 1 : chain.size()) + " certificate(s) to " +
                  options.out + " (" + options.format + ")";
  }
  return result;
}

}  // namespace

void add_export(CLI::App& app, Context& context) {
  auto options = std::make_shared<ExportOptions>();
  CLI::App* cmd = app.add_subcommand("export", "write the certificate chain stored on the token for a key");
  cmd->add_option("--key", options->key, "RFC 7512 URI of the key")->required();
  cmd->add_option("--format", options->format, "pem (end entity and chain), der (end entity only), p7b (DER PKCS#7)")
      ->check(CLI::IsMember({"pem", "der", "p7b"}));
  cmd->add_option("--out", options->out, "file to write (default stdout; binary formats only when it is not a terminal)");
  cmd->add_option("--pin-source", options->token.pin_source, "log in first, for tokens that hide their public keys");
  cmd->add_flag("--allow-final-try", options->token.allow_final_try,
                "send the PIN even when one more wrong PIN would lock the token");
  cmd->callback([&context, options] { context.set_result(run_export(context, *options)); });
}

}  // namespace qscd::agent::cmd
