#include "token/init_record.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <system_error>

#include "base/errors.hpp"
#include "base/files.hpp"
#include "base/hex.hpp"

namespace qscd::agent {

namespace {

// One folder of small records, one per init started: "name hex-value" lines, the values hex so
// a label or URI can hold any byte.
std::filesystem::path folder(const std::filesystem::path& state_dir) { return state_dir / "token-init"; }

std::string hex_of(const std::string& text) {
  return hex_lower(std::span(reinterpret_cast<const unsigned char*>(text.data()), text.size()));
}

std::optional<std::string> from_hex(const std::string& hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    unsigned value = 0;
    for (std::size_t j = i; j < i + 2; ++j) {
      const char c = hex[j];
      value <<= 4U;
      if (c >= '0' && c <= '9') value |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') value |= static_cast<unsigned>(c - 'a' + 10);
      else return std::nullopt;
    }
    out.push_back(static_cast<char>(value));
  }
  return out;
}

std::optional<TokenInitRecord> read_record(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  TokenInitRecord record;
  record.file = file;
  std::string name, value;
  std::string line;
  bool complete = false;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    value.clear();
    if (!(fields >> name)) continue;
    fields >> value;
    const auto text = from_hex(value);
    if (!text) return std::nullopt;
    if (name == "uri") record.token_uri = *text;
    else if (name == "label") record.label = *text;
    else if (name == "serial") record.serial = *text;
    else if (name == "old_label") record.old_label = *text;
    else if (name == "initialized") record.was_initialized = *text == "1";
    else if (name == "before") record.serials_before.push_back(*text);
    else if (name == "done") record.done = *text == "1";
    else if (name == "end") complete = true;
  }
  if (!complete) return std::nullopt;  // never half a record: it is written atomically anyway
  return record;
}

}  // namespace

std::optional<TokenInitRecord> find_token_init(const std::filesystem::path& state_dir, const std::string& token_uri,
                                               const std::string& label) {
  std::error_code error;
  std::filesystem::directory_iterator entries(folder(state_dir), error);
  if (error) return std::nullopt;
  for (const auto& entry : entries) {
    if (!entry.is_regular_file(error) || entry.path().extension() != ".init") continue;
    auto record = read_record(entry.path());
    if (record && record->token_uri == token_uri && record->label == label) return record;
  }
  return std::nullopt;
}

namespace {

void write_record(const TokenInitRecord& record) {
  std::string text = "uri " + hex_of(record.token_uri) + "\nlabel " + hex_of(record.label) + "\nserial " + hex_of(record.serial) +
                     "\nold_label " + hex_of(record.old_label) + "\ninitialized " + hex_of(record.was_initialized ? "1" : "0") +
                     "\ndone " + hex_of(record.done ? "1" : "0") + "\n";
  for (const std::string& serial : record.serials_before) text += "before " + hex_of(serial) + "\n";
  text += "end\n";
  write_file_atomically(record.file, text, "--state-dir", 0600);
}

}  // namespace

TokenInitRecord begin_token_init(const std::filesystem::path& state_dir, const std::string& token_uri, const std::string& label,
                                 const p11::TokenInfo& token, const std::vector<p11::TokenInfo>& tokens) {
  TokenInitRecord record;
  record.token_uri = token_uri;
  record.label = label;
  record.serial = token.serial;
  record.old_label = token.label;
  record.was_initialized = token.initialized;
  for (const p11::TokenInfo& other : tokens) {
    if (other.initialized) record.serials_before.push_back(other.serial);
  }
  const std::filesystem::path dir = folder(state_dir);
  std::error_code error;
  std::filesystem::create_directory(dir, error);
  if (error) throw UsageError("--state-dir", "cannot create " + dir.string() + ": " + error.message());
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all, std::filesystem::perm_options::replace, error);
  // One record per --token and label: a rerun replaces its own.
  record.file = dir / (hex_of(token_uri + '\n' + label).substr(0, 120) + ".init");
  write_record(record);
  return record;
}

void end_token_init(TokenInitRecord& record, const p11::TokenInfo& token) {
  record.done = true;
  record.serial = token.serial;
  record.was_initialized = true;
  write_record(record);
}

void drop_token_init(const TokenInitRecord& record) noexcept {
  std::error_code ignored;
  std::filesystem::remove(record.file, ignored);
}

std::optional<p11::TokenInfo> token_of_init(const TokenInitRecord& record, const std::vector<p11::TokenInfo>& tokens) {
  std::vector<const p11::TokenInfo*> found;
  if (!record.serial.empty()) {
    for (const auto& token : tokens) {
      if (token.serial == record.serial) found.push_back(&token);
    }
  }
  if (found.empty() && !record.was_initialized) {
    for (const auto& token : tokens) {
      const bool new_token = std::find(record.serials_before.begin(), record.serials_before.end(), token.serial) ==
                             record.serials_before.end();
      if (token.initialized && token.label == record.label && new_token) found.push_back(&token);
    }
  }
  if (found.empty() && record.was_initialized && !record.serial.empty()) {
    // The re-initialised token is listed under no serial at all: SoftHSM2 rewrites its
    // token.object in place, so a kill inside C_InitToken can leave it unreadable, and the module
    // then lists only its free blank slot. The token's storage is lost either way (its objects
    // were being erased): the one blank token present takes its place.
    for (const auto& token : tokens) {
      if (!token.initialized) found.push_back(&token);
    }
  }
  if (found.size() != 1) return std::nullopt;
  return *found.front();
}

}  // namespace qscd::agent

namespace qscd::agent {

bool init_token_done(const TokenInitRecord& record, const p11::TokenInfo& token) {
  return token.initialized && token.label == record.label && (!record.was_initialized || record.old_label != record.label);
}

}  // namespace qscd::agent
