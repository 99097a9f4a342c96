#pragma once
// `token init` in progress (docs/pkcs11.md, "An interrupted token init"). C_InitToken changes
// the label (and on SoftHSM2 a blank slot becomes a new token with a new serial) before C_InitPIN
// sets the user PIN, so a run killed between them leaves a token the same `--token` no longer
// names. The run records what it starts in the state folder before C_InitToken and marks the
// record done when the user PIN is set; a rerun of the same command finds the token by it.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "qscd/pkcs11/token.hpp"

namespace qscd::agent {

struct TokenInitRecord {
  std::string token_uri;  // --token as given; empty: the blank token picked without one
  std::string label;      // the new label
  std::string old_label;  // the token's label before
  std::string serial;     // the token's serial before (a blank SoftHSM2 slot has none)
  bool was_initialized = false;
  bool done = false;  // C_InitPIN succeeded: the init is complete
  std::vector<std::string> serials_before;  // every initialised token's serial before
  std::filesystem::path file;
};

// The record of an init of `token_uri` to `label` that did not finish, if any.
std::optional<TokenInitRecord> find_token_init(const std::filesystem::path& state_dir, const std::string& token_uri,
                                               const std::string& label);

// Written (fsynced) before C_InitToken.
TokenInitRecord begin_token_init(const std::filesystem::path& state_dir, const std::string& token_uri, const std::string& label,
                                 const p11::TokenInfo& token, const std::vector<p11::TokenInfo>& tokens);

// Marked done (atomically, with the token's serial now) once the user PIN is set: the same
// command run again then reports
// the init as done instead of finding no token by the old label (a run killed after C_InitPIN,
// before it printed its result, is finished too). Records stay, one per --token and --label.
void end_token_init(TokenInitRecord& record, const p11::TokenInfo& token);

// Forgets the record (its token changed since).
void drop_token_init(const TokenInitRecord& record) noexcept;

// The interrupted init's C_InitToken has run on `token`: its label is the new one where it was
// another before (or the token was blank). With the user PIN set, C_InitPIN has run too.
bool init_token_done(const TokenInitRecord& record, const p11::TokenInfo& token);

// The token the recorded init was working on: the one with the recorded serial (a serial does
// not change on re-initialisation, on SoftHSM2 as on a card), or for a blank token an
// initialised one with the new label and a serial no token had before; when the recorded serial
// is listed nowhere (SoftHSM2 lost the token mid-C_InitToken), the one blank token. Nullopt
// when there is not exactly one such token (the rerun then selects as a first run does).
std::optional<p11::TokenInfo> token_of_init(const TokenInitRecord& record, const std::vector<p11::TokenInfo>& tokens);

}  // namespace qscd::agent
