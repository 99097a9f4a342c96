// `tokens`: every slot with a token, what the token says about itself and its
// PINs, and the key/certificate pairs on it grouped by CKA_ID. Without a PIN
// only public objects are visible; with --pin-source the private keys too.
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/x509.h>

#include <map>
#include <memory>

#include "base/errors.hpp"
#include "certs/certbundle.hpp"
#include "cli/token_options.hpp"
#include "qscd/pkcs11/keys.hpp"
#include "qscd/pkcs11/module.hpp"
#include "cli/registry.hpp"

namespace qscd::agent::cmd {

namespace {

struct CertificateSummary {
  std::string subject;
  std::string not_after;
};

// Subject and expiry of a DER certificate; nullopt when it does not parse.
std::optional<CertificateSummary> summarize_certificate(const p11::Bytes& der) {
  const unsigned char* in = der.data();
  std::unique_ptr<X509, decltype(&X509_free)> cert(d2i_X509(nullptr, &in, static_cast<long>(der.size())), X509_free);
  if (!cert) return std::nullopt;
  CertificateSummary summary{subject_line(X509_get_subject_name(cert.get())), {}};
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &tm) == 1) {
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%d", &tm);
    summary.not_after = buffer;
  }
  return summary;
}

struct ObjectGroup {
  p11::Bytes id;
  std::string label;
  std::string algorithm;
  bool private_key = false;
  bool public_key = false;
  std::optional<CertificateSummary> certificate;
  int other = 0;
};

nlohmann::json pin_json(const p11::PinState& state) {
  return {{"state", state.describe()},
          {"count_low", state.count_low},
          {"final_try", state.final_try},
          {"locked", state.locked},
          {"to_be_changed", state.to_be_changed}};
}

std::vector<ObjectGroup> read_objects(const p11::Session& session) {
  std::map<p11::Bytes, ObjectGroup> groups;
  for (p11::ObjectHandle object : session.find(p11::AttributeTemplate{})) {
    CK_OBJECT_CLASS object_class = session.ulong(object, CKA_CLASS).value_or(CKO_DATA);
    p11::Bytes id = session.bytes(object, CKA_ID).value_or(p11::Bytes{});
    ObjectGroup& group = groups[id];
    group.id = id;
    p11::Attribute label = session.attribute(object, CKA_LABEL);
    if (group.label.empty() && label.present()) group.label = label.as_string();
    switch (object_class) {
      case CKO_PRIVATE_KEY:
        group.private_key = true;
        if (group.algorithm.empty()) group.algorithm = p11::key_algorithm_name(session, object);
        break;
      case CKO_PUBLIC_KEY:
        group.public_key = true;
        group.algorithm = p11::key_algorithm_name(session, object);
        break;
      case CKO_CERTIFICATE:
        if (auto value = session.bytes(object, CKA_VALUE); value && !group.certificate) {
          group.certificate = summarize_certificate(*value);
        }
        break;
      default:
        ++group.other;
    }
  }
  std::vector<ObjectGroup> result;
  for (auto& [id, group] : groups) result.push_back(std::move(group));
  return result;
}

void list(Context& context, const TokenOptions& options) {
  std::optional<api::SecretBytes> pin;
  if (!options.pin_source.empty()) pin = read_secret(options.pin_source, "user PIN", "--pin-source");
  p11::Module& module = context.module();
  std::optional<p11::Uri> filter;
  if (auto uri = options.token_uri()) filter = p11::Uri::parse(*uri);

  std::vector<p11::TokenInfo> tokens;
  for (auto& token : p11::list_tokens(module)) {
    if (!filter || filter->matches(token)) tokens.push_back(std::move(token));
  }
  if (filter && tokens.empty()) throw p11::NotFound("no token matches " + filter->text(), filter->text());
  if (pin) {
    std::size_t initialized = 0;
    for (const auto& token : tokens) initialized += token.initialized ? 1 : 0;
    if (initialized > 1) throw UsageError("--pin-source", "a PIN belongs to one token: name it with --token");
  }

  CommandResult result;
  result.json["module"] = module.path();
  result.json["tokens"] = nlohmann::json::array();
  std::string& text = result.text;
  if (tokens.empty()) text = "No token present (module " + module.path() + ").\n";
  for (const auto& token : tokens) {
    nlohmann::json entry = {{"slot", token.slot},
                            {"label", token.label},
                            {"serial", token.serial},
                            {"manufacturer", token.manufacturer},
                            {"model", token.model},
                            {"initialized", token.initialized}};
    text += "Slot " + std::to_string(token.slot) + ": ";
    if (!token.initialized) {
      text += "token not initialised (" + token.manufacturer + ", " + token.model +
              "); set it up with `qscd-agent token init`\n\n";
      result.json["tokens"].push_back(entry);
      continue;
    }
    entry["uri"] = p11::token_uri(token);
    entry["user_pin"] = pin_json(token.user);
    entry["so_pin"] = pin_json(token.so);
    entry["user_pin_initialized"] = token.user_pin_initialized;
    text += "token '" + token.label + "'\n";
    text += "  Manufacturer: " + token.manufacturer + "\n";
    text += "  Model:        " + token.model + "\n";
    text += "  Serial:       " + token.serial + "\n";
    text += "  URI:          " + p11::token_uri(token) + "\n";
    text += "  User PIN:     " + (token.user_pin_initialized ? token.user.describe() : std::string("not set")) + "\n";
    text += "  SO PIN:       " + token.so.describe() + "\n";

    p11::Session session(module, token.slot, p11::Session::Access::read_only);
    bool logged_in = false;
    if (pin) {
      p11::login(session, CKU_USER, pin->bytes(), options.login_options());
      logged_in = true;
    }
    entry["logged_in"] = logged_in;
    entry["objects"] = nlohmann::json::array();
    std::vector<ObjectGroup> groups = read_objects(session);
    text += std::string("  Objects") + (logged_in ? "" : " (public only; add --pin-source to see private keys)") + ":" +
            (groups.empty() ? " none\n" : "\n");
    for (const auto& group : groups) {
      std::string parts;
      auto add = [&parts](bool present, const char* name) {
        if (!present) return;
        if (!parts.empty()) parts += " + ";
        parts += name;
      };
      add(group.private_key, "private key");
      add(group.public_key, "public key");
      add(group.certificate.has_value(), "certificate");
      if (group.other > 0) add(true, "other objects");
      std::string uri = p11::object_uri(token, group.id, group.label);
      text += "    id " + (group.id.empty() ? std::string("(none)") : p11::to_hex(group.id)) + "  '" + group.label +
              "'  " + (group.algorithm.empty() ? std::string{} : group.algorithm + "  ") + parts + "\n";
      if (group.certificate) {
        text += "      certificate: " + group.certificate->subject + ", expires " + group.certificate->not_after + "\n";
      }
      text += "      " + uri + "\n";
      nlohmann::json object = {{"id", p11::to_hex(group.id)},    {"label", group.label},
                               {"uri", uri},                     {"algorithm", group.algorithm},
                               {"private_key", group.private_key}, {"public_key", group.public_key},
                               {"certificate", nullptr}};
      if (group.certificate) {
        object["certificate"] = {{"subject", group.certificate->subject}, {"not_after", group.certificate->not_after}};
      }
      entry["objects"].push_back(object);
    }
    text += "\n";
    result.json["tokens"].push_back(entry);
  }
  while (text.size() > 1 && text.ends_with("\n\n")) text.pop_back();
  context.set_result(std::move(result));
}

}  // namespace

void add_tokens(CLI::App& app, Context& context) {
  auto options = std::make_shared<TokenOptions>();
  CLI::App* command = app.add_subcommand("tokens", "list slots, tokens, PIN states and the keys and certificates on them");
  command->add_option("--token", options->token, "only tokens matching this PKCS#11 URI");
  command->add_option("--pin-source", options->pin_source,
                      "also list private objects, logging in with this PIN (prompt, pinentry, fd:N, file:PATH, env:NAME)");
  command->add_flag("--allow-final-try", options->allow_final_try,
                    "send the PIN even when one more wrong PIN would lock the token");
  command->callback([&context, options] { list(context, *options); });
}

}  // namespace qscd::agent::cmd
