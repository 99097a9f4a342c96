// `csr`: a PKCS#10 request signed by a key on the token, checked against its profile before it is
// written. `csr check FILE`: the same rules on any request, whoever made it.
#include <algorithm>
#include <cctype>
#include <iterator>
#include <vector>
#include <filesystem>
#include <fstream>
#include <optional>

#include "base/files.hpp"
#include "cli/registry.hpp"
#include "csr/builder.hpp"
#include "csr/token_signer.hpp"
#include "base/errors.hpp"
#include "qscd/pkcs11/error.hpp"
#include "qscd/pkcs11/keys.hpp"
#include "qscd/pkcs11/session.hpp"
#include "qscd/pkcs11/uri.hpp"
#include "certs/certbundle.hpp"
#include "cli/token_options.hpp"

namespace qscd::agent::cmd {

namespace {

struct CsrOptions {
  std::string key;
  TokenOptions token;  // --token, --pin-source, --allow-final-try as the token commands have them
  std::string profile;
  std::string subject_file;
  std::vector<std::string> set;
  std::string out;
  bool der = false;
  bool rsa_pss = false;
};

struct CheckOptions {
  std::string file;
  std::string profile;
};

nlohmann::json findings_json(const std::vector<csr::Finding>& findings) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& finding : findings) {
    list.push_back({{"rule", finding.rule}, {"field", finding.field}, {"found", finding.found},
                    {"expected", finding.expected}});
  }
  return list;
}

std::string subject_text(const X509_REQ* request) { return subject_line(X509_REQ_get_subject_name(request)); }

std::vector<unsigned char> read_file(const std::string& path) {
  const std::string text = read_input_file(path, "FILE");
  return {text.begin(), text.end()};
}

void run_check(const CheckOptions& options, Context& context) {
  const csr::Profile profile = csr::parse_profile(options.profile);
  const ossl::X509ReqPtr request = csr::parse_request(read_file(options.file), options.file);
  const auto findings = csr::lint_request(profile, request.get());
  CommandResult result;
  result.json = {{"file", options.file},
                 {"profile", csr::profile_name(profile)},
                 {"subject", subject_text(request.get())},
                 {"ok", findings.empty()},
                 {"findings", findings_json(findings)}};
  if (findings.empty()) {
    result.text = options.file + ": meets profile " + std::string(csr::profile_name(profile)) + "\n";
  } else {
    result.text = options.file + ": " + std::to_string(findings.size()) + " broken rule" +
                  (findings.size() == 1 ? "" : "s") + " of profile " + std::string(csr::profile_name(profile)) + "\n";
    for (const auto& finding : findings) result.text += "  " + csr::describe(finding) + "\n";
    result.status = CommandStatus::findings;
  }
  context.set_result(std::move(result));
}

// Where the public-key object is visible without a login (the usual CKA_PRIVATE=false), a key the
// profile does not allow is refused before the PIN is read or sent. Otherwise the same check runs
// after login, still before anything is signed.
void refuse_key_before_login(const p11::Session& session, const p11::Uri& key_uri, csr::Profile profile, bool rsa_pss) {
  std::optional<p11::ObjectHandle> public_object;
  try {
    // The URI names the private key (often with type=private, as p11tool prints it); its id and
    // label find the public half.
    public_object = p11::select_object(session, key_uri, CKO_PUBLIC_KEY, p11::UriClass::ignored);
  } catch (const p11::NotFound&) {
    return;
  } catch (const p11::Ambiguous&) {
    return;  // the private key decides after login
  }
  const auto key = p11::public_key(session, *public_object);
  csr::checked_scheme(profile, key.get(), rsa_pss);
}

// The e-Box environments (seed 000/001): one certificate per environment, never one key for two.
constexpr std::string_view ebox_environments[] = {"PRD", "ACC", "INT"};

// The environments a name mentions as a word ("ebox-acc" -> ACC).
std::vector<std::string> environments_named(std::string_view text) {
  std::vector<std::string> found;
  std::string word;
  auto flush = [&] {
    for (std::string_view environment : ebox_environments) {
      if (word == environment) found.emplace_back(environment);
    }
    word.clear();
  };
  for (char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c)) != 0) {
      word.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    } else {
      flush();
    }
  }
  flush();
  return found;
}

// A warning when the key was made or certified for another e-Box environment: its label names one,
// or a certificate on the token for the same CKA_ID has another environment's OU.
void warn_other_environment(const Context& context, const p11::Session& session, p11::ObjectHandle key,
                            const csr::SubjectInput& input) {
  std::string wanted;
  for (const auto& [name, value] : input) {
    if (name == "environment") wanted = value;
  }
  if (wanted.empty()) return;
  std::vector<std::string> others;
  const auto label = session.bytes(key, CKA_LABEL).value_or(p11::Bytes{});
  for (const std::string& named : environments_named(std::string(label.begin(), label.end()))) {
    if (named != wanted) others.push_back("its label '" + std::string(label.begin(), label.end()) + "' names " + named);
  }
  const auto id = session.bytes(key, CKA_ID).value_or(p11::Bytes{});
  for (p11::ObjectHandle object : id.empty() ? std::vector<p11::ObjectHandle>{} : p11::find_by_id(session, id)) {
    if (session.ulong(object, CKA_CLASS) != CKO_CERTIFICATE) continue;
    const auto der = session.bytes(object, CKA_VALUE).value_or(p11::Bytes{});
    const unsigned char* in = der.data();
    ossl::X509Ptr cert(d2i_X509(nullptr, &in, static_cast<long>(der.size())));
    if (!cert) continue;
    for (const auto& entry : csr::name_entries(X509_get_subject_name(cert.get()))) {
      const bool environment = std::find(std::begin(ebox_environments), std::end(ebox_environments), entry.value) != std::end(ebox_environments);
      if (entry.type == "OU" && environment && entry.value != wanted) {
        others.push_back("the token holds a " + entry.value + " certificate for it (serial " + serial_hex(cert.get()) + ")");
      }
    }
  }
  for (const std::string& why : others) {
    context.log.warn("this key looks like another e-Box environment's (" + why + "): Smals requires a distinct key and "
                     "certificate per environment; make a separate key for " + wanted);
  }
}

void run_csr(const CsrOptions& options, Context& context) {
  // Everything that can be refused without the token is refused first.
  if (options.key.empty()) throw UsageError("--key", "required: the PKCS#11 URI of the private key");
  if (options.profile.empty()) throw UsageError("--profile", "required: be-ebox, pkio-server, pkio-eseal or generic");
  const csr::Profile profile = csr::parse_profile(options.profile);
  if (options.subject_file.empty() == options.set.empty()) {
    throw UsageError("subject", "give either --subject-file FILE or --set name=value (repeatable)");
  }
  if (options.der && options.out.empty()) throw UsageError("--der", "needs --out FILE (DER is not written to a terminal)");
  if (!options.out.empty()) {
    const auto folder = std::filesystem::absolute(options.out).parent_path();
    if (!std::filesystem::is_directory(folder)) throw UsageError("--out", "no such folder: " + folder.string());
  }
  const csr::SubjectInput input = options.subject_file.empty() ? csr::parse_set_options(options.set)
                                                               : csr::read_subject_file(options.subject_file, profile);
  const csr::Subject subject = csr::prepare_subject(profile, input);
  const KeyAccess access{.access = p11::Session::Access::read_only,  // a CSR never changes the token
                         .login = KeyLogin::required,
                         .before_login = [profile, &options](const p11::Session& session, const p11::Uri& uri) {
                           refuse_key_before_login(session, uri, profile, options.rsa_pss);
                         }};
  OpenKey opened = open_key(context.tokens(), options.key, options.token, access);
  p11::Session& session = opened.session;
  const p11::TokenInfo& token = opened.info;
  const p11::ObjectHandle key = p11::select_object(session, opened.uri, CKO_PRIVATE_KEY);
  if (profile == csr::Profile::be_ebox) warn_other_environment(context, session, key, input);
  // The same PIN again for a CKA_ALWAYS_AUTHENTICATE key's context-specific login.
  std::optional<std::span<const unsigned char>> context_pin;
  if (opened.pin) context_pin = opened.pin->bytes();
  const p11::LoginOptions login_options = options.token.login_options();
  csr::TokenSigner signer(session, key, context_pin, login_options);
  csr::checked_scheme(profile, signer.public_key(), options.rsa_pss);  // refuse the key before signing anything
  context.log.progress("signing the CSR with " + csr::describe_key(signer.public_key()) + " key on token '" +
                       token.label + "'");
  const ossl::X509ReqPtr request = csr::build_request(profile, subject, signer, options.rsa_pss);
  const std::string algorithm = OBJ_nid2ln(X509_REQ_get_signature_nid(request.get()));

  CommandResult result;
  result.json = {{"profile", csr::profile_name(profile)},
                 {"subject", subject_text(request.get())},
                 {"key", csr::describe_key(signer.public_key())},
                 {"signature_algorithm", algorithm}};
  if (options.out.empty()) {
    result.json["pem"] = csr::request_pem(request.get());
    result.text = csr::request_pem(request.get());
  } else {
    csr::write_request(request.get(), options.out, options.der);
    result.json["out"] = options.out;
    result.json["format"] = options.der ? "der" : "pem";
    result.text = "wrote " + options.out + " (" + (options.der ? "DER" : "PEM") + ", " + algorithm + ", profile " +
                  std::string(csr::profile_name(profile)) + ")\n";
  }
  context.set_result(std::move(result));
}

}  // namespace

void add_csr(CLI::App& app, Context& context) {
  auto options = std::make_shared<CsrOptions>();
  CLI::App* csr = app.add_subcommand("csr", "a PKCS#10 request signed by a key on the token, checked against a profile");
  csr->add_option("--key", options->key, "PKCS#11 URI of the private key");
  add_token_option(*csr, options->token);  // default: the token part of --key
  csr->add_option("--profile", options->profile, "be-ebox, pkio-server, pkio-eseal or generic");
  auto* file = csr->add_option("--subject-file", options->subject_file, "TOML subject file");
  auto* set = csr->add_option("--set", options->set, "subject field name=value (repeatable, order kept)");
  file->excludes(set);
  csr->add_option("--out", options->out, "write the request here (default: PEM on stdout)");
  csr->add_flag("--der", options->der, "write DER instead of PEM");
  csr->add_flag("--rsa-pss", options->rsa_pss, "sign with RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32)");
  add_pin_options(*csr, options->token);
  csr->require_subcommand(0, 1);

  auto check_options = std::make_shared<CheckOptions>();
  CLI::App* check = csr->add_subcommand("check", "lint any CSR (PEM or DER) against a profile; exit 2 on any broken rule");
  check->add_option("file", check_options->file, "the CSR")->required();
  check->add_option("--profile", check_options->profile, "be-ebox, pkio-server, pkio-eseal or generic")->required();
  check->callback([check_options, &context] { run_check(*check_options, context); });

  csr->callback([options, check, &context] {
    if (check->parsed()) return;  // `csr check` ran its own callback
    run_csr(*options, context);
  });
}

}  // namespace qscd::agent::cmd
