// `keygen`: a key pair generated on the token with the attributes of the
// contract (sensitive, never extractable, sign only), printed as its URI.
#include "base/errors.hpp"
#include "base/text.hpp"
#include "cli/token_options.hpp"
#include "provision/token_run.hpp"
#include "qscd/pkcs11/keys.hpp"
#include "cli/registry.hpp"

namespace qscd::agent::cmd {

namespace {

struct KeygenOptions {
  TokenOptions token;
  std::string key_type;
  std::string label;
  std::string id;
  bool always_authenticate = false;
  bool allow_duplicate_label = false;
};

void keygen(Context& context, const KeygenOptions& options) {
  // Everything the user typed is checked before the token is touched.
  p11::KeyGenRequest request;
  try {
    request.type = p11::parse_key_type(options.key_type);
  } catch (const p11::InvalidArgument& e) {
    throw UsageError("--key-type", e.what());
  }
  if (options.label.empty()) throw UsageError("--label", "must not be empty");
  require_utf8_text(options.label, "--label", "the key label");
  request.label = options.label;
  if (!options.id.empty()) {
    try {
      request.id = p11::parse_hex_id(options.id);
    } catch (const p11::InvalidArgument& e) {
      throw UsageError("--id", e.what());
    }
  }
  request.always_authenticate = options.always_authenticate;

  OpenToken token = open_logged_in(context.tokens(), options.token);
  if (!options.allow_duplicate_label) {
    // Two keys under one label make every `object=` URI for it ambiguous.
    const LabelledKeys existing = labelled_keys(token.session, request.label);
    if (!existing.private_keys.empty() || !existing.public_keys.empty()) {
      throw UsageError("--label", "token '" + token.info.label + "' already holds a key labelled '" + request.label +
                                      "'; a second one would make object=" + request.label +
                                      " ambiguous: choose another --label, or add --allow-duplicate-label");
    }
  }
  context.log.progress("generating " + request.type.name() + " key pair '" + request.label + "' on token '" +
                       token.info.label + "'");
  p11::KeyPair pair;
  try {
    pair = p11::generate_key_pair(token.session, request);
  } catch (const p11::InvalidArgument& e) {
    throw UsageError("--id", e.what());
  }
  std::string algorithm = p11::key_algorithm_name(token.session, pair.public_key);
  std::string uri = p11::object_uri(token.info, pair.id, pair.label);
  token.session.close();

  CommandResult result;
  result.json = {{"token", token.info.label},
                 {"token_uri", p11::token_uri(token.info)},
                 {"key_type", request.type.name()},
                 {"algorithm", algorithm},
                 {"label", pair.label},
                 {"id", p11::to_hex(pair.id)},
                 {"always_authenticate", request.always_authenticate},
                 {"uri", uri}};
  result.text = "Generated " + algorithm + " key pair '" + pair.label + "' on token '" + token.info.label + "'.\n" +
                "  id:  " + p11::to_hex(pair.id) + (options.id.empty() ? " (SHA-1 of the public key)" : "") + "\n" +
                "  private key: sensitive, never extractable, sign only" +
                (request.always_authenticate ? ", PIN needed for every signature" : "") + "\n" + "  URI: " + uri +
                "\n";
  context.set_result(std::move(result));
}

}  // namespace

void add_keygen(CLI::App& app, Context& context) {
  auto options = std::make_shared<KeygenOptions>();
  CLI::App* command = app.add_subcommand("keygen", "generate a signing key pair on the token");
  add_token_option(*command, options->token);
  add_pin_options(*command, options->token);
  command->add_option("--key-type", options->key_type, "rsa:2048, rsa:3072, rsa:4096, ec:p256 or ec:p384")->required();
  command->add_option("--label", options->label, "CKA_LABEL of both halves")->required();
  command->add_option("--id", options->id, "CKA_ID in hex (default: SHA-1 of the public key, as NSS does)");
  command->add_flag("--allow-duplicate-label", options->allow_duplicate_label,
                    "make the pair even when a key with this label exists (object= URIs then name both)");
  command->add_flag("--always-authenticate", options->always_authenticate,
                    "require the PIN again for every signature (CKA_ALWAYS_AUTHENTICATE)");
  command->callback([&context, options] { keygen(context, *options); });
}

}  // namespace qscd::agent::cmd
