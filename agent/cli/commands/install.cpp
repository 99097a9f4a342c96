// `install --key URI (--cert FILE | --order ORDER_ID) [--trust FILE]`: puts an
// issued certificate and its chain on the token next to its key.
#include <memory>
#include <optional>
#include <string>

#include "ca/client_factory.hpp"
#include "ca/order_flow.hpp"
#include "qscd/api/error.hpp"
#include "certs/certbundle.hpp"
#include "certs/install.hpp"
#include "cli/token_options.hpp"
#include "qscd/pkcs11/keys.hpp"
#include "cli/registry.hpp"

namespace qscd::agent::cmd {

namespace {

struct InstallOptions {
  std::string key;
  std::string cert;
  std::string order;
  std::string trust;
  TokenOptions token;  // --pin-source, --allow-final-try; the token is --key's
  std::string profile;
  std::string product;
  std::string csr;
  std::string expect;  // --expect qualified|advanced
};

// The order's certificate and intermediates (pem_noroot), once it is issued:
// pending -> exit 5, rejected or unreachable -> exit 4.
std::vector<ossl::X509Ptr> download_chain(Context& context, const std::string& order_id) {
  api::Client client = make_api_client(context.ca_settings());
  OrderFlow flow(client);
  const OrderLook look = flow.look(order_id);
  if (look.kind == OrderLook::Kind::waiting) throw StillWaiting("order " + order_id + " is not issued yet (" + look.detail + ")");
  if (look.kind == OrderLook::Kind::refused) throw CaError(look.detail);
  return flow.download_for_order(order_id);
}

nlohmann::json certificate_json(const InstalledCertificate& cert) {
  return {{"subject", cert.subject}, {"serial", cert.serial_hex}, {"created", cert.created}};
}

CommandResult run_install(Context& context, const InstallOptions& options) {
  // Everything that can be refused without the token is read first, the local input before the CA.
  IssuanceExpectations expected = IssuanceExpectations::for_job(options.profile, options.product);
  if (!options.expect.empty()) expected.expect_at_least(parse_expected_seal(options.expect, "--expect"));
  if (!options.trust.empty()) (void)read_trust_file(options.trust, "--trust");
  std::vector<ossl::X509Ptr> certificates =
      options.order.empty() ? read_bundle_file(options.cert, "--cert") : download_chain(context, options.order);
  ossl::X509ReqPtr csr;
  if (!options.csr.empty()) csr = read_csr_file(options.csr);
  std::optional<std::filesystem::path> trust;
  if (!options.trust.empty()) trust = options.trust;
  expected.csr = csr.get();

  OpenKey target = open_key(context.tokens(), options.key, options.token,
                            {.access = p11::Session::Access::read_write, .login = KeyLogin::if_pin_given, .before_login = nullptr});
  const TokenKey key = find_token_key(target.session, target.uri);
  PreparedInstall prepared;
  try {
    prepared = prepare_install(std::move(certificates), key.public_key.get(), trust, expected);
  } catch (const CertificateRejected& e) {
    for (const auto& line : e.findings()) context.log.progress("check: " + line);
    throw;
  }
  const IssuanceReport& report = prepared.report;
  for (const auto& line : report.lines()) context.log.progress("check: " + line);
  if (!prepared.chain_verified) {
    context.log.warn(prepared.chain_warning + "; installing the chain as given (use --trust FILE to require it)");
  }
  bool chain_verified = prepared.chain_verified;
  InstallResult installed =
      install_certificates(target.session, key, prepared.end_entity.get(), prepared.intermediates);

  CommandResult result;
  result.json = {{"token_serial", target.info.serial},
                 {"key_id", p11::to_hex(key.id)},
                 {"key_label", key.label},
                 {"end_entity", certificate_json(installed.end_entity)},
                 {"intermediates", nlohmann::json::array()},
                 {"replaced", installed.replaced},
                 {"chain_verified", chain_verified},
                 {"checks", report.to_json()}};
  for (const auto& cert : installed.intermediates) result.json["intermediates"].push_back(certificate_json(cert));
  auto describe = [](const InstalledCertificate& cert) {
    return (cert.created ? "installed " : "already on the token: ") + cert.subject + " (serial " + cert.serial_hex + ")";
  };
  result.text = describe(installed.end_entity) + " with CKA_ID " + p11::to_hex(key.id) + "\n";
  for (const auto& cert : installed.intermediates) result.text += describe(cert) + "\n";
  if (installed.replaced > 0) {
    result.text += "removed " + std::to_string(installed.replaced) + " older certificate(s) with the same CKA_ID\n";
  }
  result.text += chain_verified ? "chain verified" : "chain NOT verified against a trust anchor";
  return result;
}

}  // namespace

void add_install(CLI::App& app, Context& context) {
  auto options = std::make_shared<InstallOptions>();
  CLI::App* cmd = app.add_subcommand("install", "put an issued certificate and its chain on the token next to its key");
  cmd->add_option("--key", options->key, "RFC 7512 URI of the key (pkcs11:token=...;id=%01)")->required();
  auto* cert = cmd->add_option("--cert", options->cert, "certificate file: PEM chain, DER, or PKCS#7 (.p7b, PEM or DER)")
                   ->check(CLI::ExistingFile);
  auto* order = cmd->add_option("--order", options->order, "CertCentral order id to download the certificate from");
  cert->excludes(order);
  order->excludes(cert);
  cmd->add_option("--trust", options->trust, "trust anchors (PEM); the chain must lead to one of them")
      ->check(CLI::ExistingFile);
  cmd->add_option("--pin-source", options->token.pin_source,
                  "log in first (prompt, pinentry, fd:N, file:PATH, env:NAME); needed by tokens that only write after login");
  cmd->add_flag("--allow-final-try", options->token.allow_final_try,
                "send the PIN even when one more wrong PIN would lock the token");
  cmd->add_option("--profile", options->profile, "check the certificate against this profile (pkio-eseal: nonRepudiation)");
  cmd->add_option("--product", options->product, "CertCentral product; a seal product's certificate must be the seal it promises");
  cmd->add_option("--expect", options->expect,
                  "the least a seal certificate must be: qualified (a qualified e-seal on a QSCD, QCP-l-qscd) or advanced (QCP-l)");
  cmd->add_option("--csr", options->csr, "the CSR the certificate was ordered with: show how the subjects differ")
      ->check(CLI::ExistingFile);
  cmd->callback([&context, options, cert, order] {
    if (cert->count() == 0 && order->count() == 0) throw UsageError("--cert/--order", "give one of them");
    context.set_result(run_install(context, *options));
  });
}

}  // namespace qscd::agent::cmd
