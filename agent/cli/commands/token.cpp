// `token init | change-pin | unblock`: the officer's PIN and token set-up.
#include "base/errors.hpp"
#include "base/text.hpp"
#include "cli/token_options.hpp"
#include "token/init_record.hpp"
#include "qscd/pkcs11/admin.hpp"
#include "qscd/pkcs11/login.hpp"
#include "qscd/pkcs11/module.hpp"
#include "cli/registry.hpp"

namespace qscd::agent::cmd {

namespace {

// The token layer says what is wrong with a new PIN; which option it came from
// is the command's to say (`token init` takes the new SO PIN from --so-pin-source).
template <typename Action>
void naming_new_pin(const char* so_pin_option, Action action) {
  try {
    action();
  } catch (const p11::NewPinRejected& e) {
    throw UsageError(e.user() == CKU_SO ? so_pin_option : "--new-pin-source", e.what());
  }
}

struct AdminOptions {
  TokenOptions token;
  std::string so_pin_source;
  std::string new_pin_source;
  std::string label;
  bool force = false;
  bool so = false;
};

void init(Context& context, const AdminOptions& options) {
  if (options.label.empty() || options.label.size() > 32) throw UsageError("--label", "must be 1 to 32 bytes");
  require_utf8_text(options.label, "--label", "the token label");
  p11::Module& module = context.module();
  // Without --token, only a blank token is picked: re-initialising must be asked for by name.
  // The token is chosen and checked (nothing is changed) before the PINs are read: on a blank
  // token the SO PIN is a new one, asked twice from a prompt.
  auto scope = options.token.token.empty() ? p11::TokenScope::uninitialized : p11::TokenScope::any;
  // A run of this same command that was killed between C_InitToken and C_InitPIN left its token
  // under the new label (or, blank, as a new token): the record it wrote finds it again.
  const std::string asked = options.token.token_uri().value_or("");
  const std::filesystem::path state_dir = context.state_dir();
  std::optional<p11::TokenInfo> interrupted;
  bool init_token_ran = false;  // the interrupted run's C_InitToken took effect
  std::optional<TokenInitRecord> record = find_token_init(state_dir, asked, options.label);
  if (record) interrupted = token_of_init(*record, p11::list_tokens(module));
  if (record && record->done) {
    // This command finished before (maybe killed before it said so): its token is as it left it.
    if (interrupted && interrupted->initialized && interrupted->label == options.label && interrupted->user_pin_initialized) {
      const p11::TokenInfo& done = *interrupted;
      CommandResult result;
      result.json = {{"slot", done.slot}, {"label", done.label}, {"serial", done.serial}, {"uri", p11::token_uri(done)}, {"already_done", true}};
      result.text = "Token '" + done.label + "' (slot " + std::to_string(done.slot) + ", serial " + done.serial +
                    ") was initialised by this command before; nothing changed.\n  URI: " + p11::token_uri(done) + "\n";
      context.set_result(std::move(result));
      return;
    }
    drop_token_init(*record);  // the token changed since: this is a new init
    record.reset();
    interrupted.reset();
  }
  if (record && interrupted) {
    init_token_ran = init_token_done(*record, *interrupted);
    // The whole init is done again on it, also when only C_InitPIN was left: which of
    // C_InitToken's writes a kill cut short is the module's affair, the rerun's result is not.
    if (!record->serial.empty() && interrupted->serial != record->serial && record->was_initialized) {
      context.log.warn("the token with serial " + record->serial + " that an interrupted init was re-initialising is gone from " +
                       "the module (lost inside C_InitToken); initialising the one blank token, in slot " +
                       std::to_string(interrupted->slot) + ", in its place");
    } else {
      context.log.progress("finishing the interrupted init of the token in slot " + std::to_string(interrupted->slot) +
                           " (serial " + interrupted->serial + ")");
    }
  }
  p11::TokenInfo token = interrupted ? *interrupted : p11::select_token(module, options.token.token_uri(), scope);
  // An interrupted init whose C_InitToken ran already had the erase asked for: what it left
  // (its label, maybe a user PIN) is its own to finish.
  if (token.initialized && !options.force && !init_token_ran) {
    // Counted without logging in (no user PIN needed to find out): private objects are invisible
    // here, so zero does not mean empty once a user PIN is set (a QSCD's key is a private object).
    const std::size_t objects = p11::count_public_objects(module, token.slot);
    std::string holds;
    if (objects > 0) {
      holds = "holds " + std::to_string(objects) + " public objects (private ones are not counted without a PIN)";
    } else if (token.user_pin_initialized) {
      holds = "has a user PIN, so it may hold private objects (keys) that cannot be seen without logging in";
    }
    if (!holds.empty()) {
      throw UsageError("--force", "token '" + token.label + "' " + holds + "; initialising erases them all. Add --force to do so");
    }
  }
  // A PIN that must not be sent (locked, final try without --allow-final-try) is refused before
  // anyone is asked to type it.
  if (token.initialized) p11::check_pin_flags(token, CKU_SO, options.token.login_options());
  api::SecretBytes so_pin = token.initialized ? read_pin(options.so_pin_source, "SO PIN", "--so-pin-source")
                                          : read_new_pin(options.so_pin_source, "new SO PIN", "--so-pin-source");
  api::SecretBytes user_pin = read_new_pin(options.new_pin_source, "new user PIN", "--new-pin-source");
  context.log.progress("initialising the token in slot " + std::to_string(token.slot) + " as '" + options.label + "'");
  TokenInitRecord started = begin_token_init(state_dir, asked, options.label, token, p11::list_tokens(module));
  naming_new_pin("--so-pin-source", [&] {
    p11::init_token(module, token.slot, so_pin.bytes(), options.label, user_pin.bytes(),
                    {.allow_final_try = options.token.allow_final_try});
  });
  p11::TokenInfo fresh = p11::read_token_info(module, token.slot);
  end_token_init(started, fresh);
  CommandResult result;
  result.json = {{"slot", fresh.slot}, {"label", fresh.label}, {"serial", fresh.serial}, {"uri", p11::token_uri(fresh)}};
  result.text = "Token initialised: '" + fresh.label + "' (slot " + std::to_string(fresh.slot) + ", serial " +
                fresh.serial + "); the user PIN is set.\n  URI: " + p11::token_uri(fresh) + "\n";
  context.set_result(std::move(result));
}

void change_pin(Context& context, const AdminOptions& options) {
  const CK_USER_TYPE user = options.so ? CKU_SO : CKU_USER;
  p11::Module& module = context.module();
  p11::TokenInfo token = p11::select_token(module, options.token.token_uri());
  p11::LoginOptions login = options.token.login_options();
  login.allow_to_be_changed = true;  // changing it is what a "to be changed" PIN asks for
  // Refused before anyone types a PIN: a locked one, or a final try without --allow-final-try.
  p11::check_pin_flags(token, user, login);
  api::SecretBytes old_pin = options.so ? read_pin(options.so_pin_source, "current SO PIN", "--so-pin-source")
                                    : read_pin(options.token.pin_source, "current user PIN", "--pin-source");
  p11::Session session(module, token.slot, p11::Session::Access::read_write);
  // The current PIN is checked (a login) before the new one is asked for: a wrong one is refused
  // at once, not after the new PIN was typed twice. C_SetPIN then changes the logged-in user's PIN.
  p11::login(session, user, old_pin.bytes(), login);
  api::SecretBytes new_pin = read_new_pin(options.new_pin_source, options.so ? "new SO PIN" : "new user PIN",
                                      "--new-pin-source");
  naming_new_pin("--new-pin-source", [&] {
    p11::change_pin(session, user, old_pin.bytes(), new_pin.bytes(), {.allow_final_try = options.token.allow_final_try});
  });
  session.close();
  CommandResult result;
  result.json = {{"token", token.label}, {"uri", p11::token_uri(token)}, {"changed", options.so ? "so" : "user"}};
  result.text = std::string("The ") + p11::pin_name(user) + " of token '" + token.label + "' is changed.\n";
  context.set_result(std::move(result));
}

void unblock(Context& context, const AdminOptions& options) {
  p11::Module& module = context.module();
  p11::TokenInfo token = p11::select_token(module, options.token.token_uri());
  p11::check_pin_flags(token, CKU_SO, options.token.login_options());
  api::SecretBytes so_pin = read_pin(options.so_pin_source, "SO PIN", "--so-pin-source");
  p11::Session session(module, token.slot, p11::Session::Access::read_write);
  // The SO PIN is checked before the new user PIN is asked for.
  p11::login(session, CKU_SO, so_pin.bytes(), options.token.login_options());
  api::SecretBytes new_pin = read_new_pin(options.new_pin_source, "new user PIN", "--new-pin-source");
  naming_new_pin("--new-pin-source", [&] {
    p11::unblock_user_pin(session, so_pin.bytes(), new_pin.bytes(), {.allow_final_try = options.token.allow_final_try});
  });
  session.close();
  CommandResult result;
  result.json = {{"token", token.label}, {"uri", p11::token_uri(token)}, {"unblocked", true}};
  result.text = "The user PIN of token '" + token.label + "' is reset and unlocked.\n";
  context.set_result(std::move(result));
}

void add_final_try(CLI::App& command, AdminOptions& options) {
  command.add_flag("--allow-final-try", options.token.allow_final_try,
                   "send a PIN even when one more wrong PIN would lock it");
}

}  // namespace

void add_token(CLI::App& app, Context& context) {
  auto options = std::make_shared<AdminOptions>();
  CLI::App* token = app.add_subcommand("token", "set up a token and manage its PINs");
  token->require_subcommand(1);

  CLI::App* init_command = token->add_subcommand("init", "initialise a token: SO PIN, label, first user PIN");
  add_token_option(*init_command, options->token);
  init_command->add_option("--label", options->label, "token label (1 to 32 bytes)")->required();
  init_command->add_option("--so-pin-source", options->so_pin_source, "SO PIN source (the current one on a used token)");
  init_command->add_option("--new-pin-source", options->new_pin_source, "source of the new user PIN");
  init_command->add_flag("--force", options->force, "re-initialise a token that holds objects, erasing them");
  add_final_try(*init_command, *options);
  init_command->callback([&context, options] { init(context, *options); });

  CLI::App* change = token->add_subcommand("change-pin", "change the user PIN (or with --so the SO PIN)");
  add_token_option(*change, options->token);
  change->add_flag("--so", options->so, "change the SO PIN (old one from --so-pin-source)");
  change->add_option("--pin-source", options->token.pin_source, "current user PIN source");
  change->add_option("--so-pin-source", options->so_pin_source, "current SO PIN source (with --so)");
  change->add_option("--new-pin-source", options->new_pin_source, "source of the new PIN");
  add_final_try(*change, *options);
  change->callback([&context, options] { change_pin(context, *options); });

  CLI::App* unblock_command = token->add_subcommand("unblock", "reset a locked user PIN with the SO PIN");
  add_token_option(*unblock_command, options->token);
  unblock_command->add_option("--so-pin-source", options->so_pin_source, "SO PIN source");
  unblock_command->add_option("--new-pin-source", options->new_pin_source, "source of the new user PIN");
  add_final_try(*unblock_command, *options);
  unblock_command->callback([&context, options] { unblock(context, *options); });
}

}  // namespace qscd::agent::cmd
