#pragma once
// The pieces every end-to-end `provision` test needs: a SoftHSM2 token, a
// state folder and secrets for the agent, the command line, and independent
// readers for what ended up on the token (pkcs11-tool), at the CA (the
// simulator's audit.jsonl) and in the chain (openssl verify).
#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../unit/scratch_dir.hpp"
#include "certcentral_sim.hpp"
#include "process.hpp"
#include "run_process.hpp"
#include "softhsm.hpp"
#include "test_pki.hpp"

namespace qscd::e2e {

using nlohmann::json;
using test::CertCentralSim;

inline constexpr const char* token_label = "e2e";
inline constexpr const char* user_pin = "123456";

// One object as `pkcs11-tool -O` lists it: "Private Key Object; RSA" and its indented fields.
struct TokenObject {
  std::string kind;  // "Private Key Object", "Public Key Object", "Certificate Object", ...
  std::map<std::string, std::string> fields;  // label, ID, subject, ...
  [[nodiscard]] std::string field(const std::string& name) const {
    auto it = fields.find(name);
    return it == fields.end() ? std::string() : it->second;
  }
};

inline std::string trim(const std::string& text) {
  auto first = text.find_first_not_of(" \t\r");
  if (first == std::string::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t\r") - first + 1);
}

inline std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// A hex serial without separators, case or leading zeros, so "0A:1B" == "a1b".
inline std::string normal_hex(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (std::isxdigit(static_cast<unsigned char>(c)) != 0) out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  auto first = out.find_first_not_of('0');
  return first == std::string::npos ? std::string("0") : out.substr(first);
}

inline std::vector<TokenObject> parse_objects(const std::string& listing) {
  std::vector<TokenObject> objects;
  std::istringstream in(listing);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line[0] != ' ' && line[0] != '\t') {
      objects.push_back({trim(line.substr(0, line.find(';'))), {}});
      continue;
    }
    auto colon = line.find(':');
    if (objects.empty() || colon == std::string::npos) continue;
    objects.back().fields.emplace(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
  }
  return objects;
}

// A hex CKA_ID out of a key URI's `id=%0a%1b` (empty when the URI names no id).
inline std::string id_of_uri(const std::string& uri) {
  auto at = uri.find("id=");
  while (at != std::string::npos && at > 0 && uri[at - 1] != ':' && uri[at - 1] != ';') at = uri.find("id=", at + 3);
  if (at == std::string::npos) return {};
  std::string hex;
  for (auto i = at + 3; i < uri.size() && uri[i] != ';' && uri[i] != '?'; ++i) {
    if (uri[i] != '%') hex.push_back(uri[i]);
  }
  return lower(hex);
}

inline std::string as_text(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_integer()) return std::to_string(value.get<std::int64_t>());
  return value.dump();
}

// Order-creating POSTs in the simulator's audit: POST .../order/certificate/<product>
// (not /order/certificate/<id>/reissue, not the pickup). Audit paths carry /services/v2.
// The sim writes a request's audit line just after it sent the answer, so a client killed
// right after an answer can be gone before the line is there: read until two reads 50 ms
// apart agree.
inline std::vector<json> settled_audit(const CertCentralSim& sim) {
  auto lines = sim.audit();
  for (int attempt = 0; attempt < 40; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto again = sim.audit();
    if (again.size() == lines.size()) return again;
    lines = std::move(again);
  }
  return lines;
}

// The orders the sim holds (saved before it answers the POST: no lag).
inline json sim_orders(const CertCentralSim& sim) { return sim.orders(); }

inline std::vector<json> order_posts(const CertCentralSim& sim, const std::string& product) {
  std::vector<json> posts;
  for (const auto& line : settled_audit(sim)) {
    if (line.value("method", "") == "POST" && line.value("path", "").ends_with("/order/certificate/" + product)) posts.push_back(line);
  }
  return posts;
}

// Requests that change something at the CA (POST, PUT, DELETE).
inline std::size_t changing_requests(const CertCentralSim& sim) {
  std::size_t n = 0;
  for (const auto& line : settled_audit(sim)) {
    std::string method = line.value("method", "");
    if (method == "POST" || method == "PUT" || method == "DELETE") ++n;
  }
  return n;
}

inline std::vector<test::Cert> read_pem_certs(const std::string& pem) {
  std::vector<test::Cert> certs;
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) certs.emplace_back(cert);
  return certs;
}

inline std::string pem_of(X509* cert) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(length)};
}

inline std::string sha256_hex_of_der(X509* cert) {
  unsigned char* der = nullptr;
  int length = i2d_X509(cert, &der);
  REQUIRE(length > 0);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(der, static_cast<std::size_t>(length), digest);
  OPENSSL_free(der);
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (unsigned char byte : digest) {
    hex.push_back(digits[byte >> 4U]);
    hex.push_back(digits[byte & 0x0fU]);
  }
  return hex;
}

inline std::string serial_hex(X509* cert) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string out = normal_hex(hex);
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

// What a provision run asks for.
struct Provision {
  std::string profile;
  std::string product;
  std::string key_type;  // empty: no --key-type/--label (a --key URI in `extra` brings the key)
  std::string label;
  std::vector<std::string> subject;  // "--subject-file F" or "--set a=b" ...
  std::string order_body;            // the --order-file content
  std::vector<std::string> extra;    // --approve, --no-wait, --trust F, ...
  std::string pin_source;            // empty: the workspace's 0600 PIN file
};

// A token "e2e" on its own SoftHSM2, with the agent's state, config, PIN file and order file
// in one scratch folder. The agent gets its PIN from a 0600 file and the API key from its
// environment: neither is ever on its argv.
class Workspace {
 public:
  Workspace() {
    hsm_.add_token(token_label, "12345678", user_pin);
    pin_file_ = write("pin", user_pin);
    config_file_ = write("agent.toml", "");
  }

  std::string write(const std::string& name, const std::string& content) const {
    auto path = dir_.path() / name;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                                 std::filesystem::perm_options::replace);
    return path.string();
  }

  [[nodiscard]] std::string path(const std::string& name) const { return (dir_.path() / name).string(); }
  // Another token on the same SoftHSM2, with the same PINs (for --all).
  void add_token(const std::string& label) { hsm_.add_token(label, "12345678", user_pin); }
  [[nodiscard]] std::string state_dir() const { return path("state"); }
  // The PKCS#11 module every agent run gets (SoftHSM2 unless a test puts the fault shim over it),
  // and variables added to every agent run's environment (the shim's knobs).
  void use_module(const std::string& module) { module_ = module; }
  void set_env(const std::string& name, const std::string& value) { env_[name] = value; }
  // --ca-file for every agent run instead of the sim's root (empty: the sim's root again).
  void use_ca_file(const std::string& file) { ca_file_ = file; }
  void unset_env(const std::string& name) { env_.erase(name); }

  // qscd-agent with the global options first, then `args`; the API key and `env` in its environment.
  test::ProcessResult agent(const CertCentralSim& sim, const std::vector<std::string>& args,
                            const std::map<std::string, std::string>& env = {}) const {
    return start_agent(sim, args, env)->wait();
  }
  // The same, started and left running (to signal it); `fd3` becomes its fd 3.
  std::unique_ptr<test::RunningProcess> start_agent(const CertCentralSim& sim, const std::vector<std::string>& args,
                                                    const std::map<std::string, std::string>& env = {}, int fd3 = -1) const {
    return test::start_process(agent_argv(sim, args), agent_env(env), fd3);
  }
  // The command line and the environment of those runs.
  [[nodiscard]] std::vector<std::string> agent_argv(const CertCentralSim& sim, const std::vector<std::string>& args) const {
    std::vector<std::string> full = {test::agent_binary(), "--config", config_file_, "--module", module_,
                                     "--state-dir", state_dir(), "--api-url", sim.url(), "--ca-file", ca_file_.empty() ? sim.ca_file() : ca_file_,
                                     "--api-key-source", "env:CERTCENTRAL_API_KEY"};
    full.insert(full.end(), args.begin(), args.end());
    return full;
  }
  [[nodiscard]] std::map<std::string, std::string> agent_env(const std::map<std::string, std::string>& env = {}) const {
    std::map<std::string, std::string> merged = env_;
    merged["CERTCENTRAL_API_KEY"] = CertCentralSim::api_key;
    for (const auto& [name, value] : env) merged[name] = value;
    return merged;
  }

  // `--json provision ...` with the contract's flags; `crash_at` sets the test hook; `api_key`
  // replaces the key the simulator accepts.
  test::ProcessResult provision(const CertCentralSim& sim, const Provision& p, const std::string& crash_at = {},
                                const std::string& api_key = {}) const {
    std::map<std::string, std::string> env;
    if (!crash_at.empty()) env["QSCD_AGENT_TEST_CRASH_AT"] = crash_at;
    if (!api_key.empty()) env["CERTCENTRAL_API_KEY"] = api_key;
    return agent(sim, provision_args(p), env);
  }

  // The arguments of `provision` above.
  [[nodiscard]] std::vector<std::string> provision_args(const Provision& p) const {
    std::string order_file = write("order-" + p.label + ".json", p.order_body);
    std::vector<std::string> args = {"--json", "provision", "--token", std::string("pkcs11:token=") + token_label,
                                     "--pin-source", p.pin_source.empty() ? "file:" + pin_file_ : p.pin_source, "--profile", p.profile, "--product", p.product,
                                     "--order-file", order_file};
    // A bound on every run, unless the test sets its own.
    if (std::find(p.extra.begin(), p.extra.end(), "--timeout") == p.extra.end()) args.insert(args.end(), {"--timeout", "60s"});
    if (!p.key_type.empty()) args.insert(args.end(), {"--key-type", p.key_type, "--label", p.label});
    args.insert(args.end(), p.subject.begin(), p.subject.end());
    args.insert(args.end(), p.extra.begin(), p.extra.end());
    return args;
  }

  // `jobs show ID --json`: the job's evidence record.
  json job_evidence(const CertCentralSim& sim, const std::string& job_id) const {
    auto shown = agent(sim, {"--json", "jobs", "show", job_id});
    REQUIRE_MESSAGE(shown.exit_code == 0, shown.err);
    return json::parse(shown.out);
  }

  // The token as pkcs11-tool sees it after logging in (the test tool may have the PIN on its argv).
  [[nodiscard]] std::string listing() const {
    auto listed = test::run_command({"pkcs11-tool", "--module", test::softhsm_module, "--token-label", token_label,
                                     "--login", "--pin", user_pin, "-O"});
    REQUIRE_MESSAGE(listed.exit == 0, listed.err);
    return listed.out;
  }
  [[nodiscard]] std::vector<TokenObject> objects() const { return parse_objects(listing()); }

  [[nodiscard]] std::string token_serial() const {
    auto listed = test::run_command({"pkcs11-tool", "--module", test::softhsm_module, "-L"});
    REQUIRE(listed.exit == 0);
    std::istringstream in(listed.out);
    std::string line, label, serial;
    while (std::getline(in, line)) {
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = trim(line.substr(0, colon)), value = trim(line.substr(colon + 1));
      if (name == "token label") label = value;
      if (name == "serial num" && label == token_label) return value;
    }
    FAIL("token " << token_label << " not listed by pkcs11-tool -L");
    return {};
  }

  // The public key with CKA_ID `id_hex`, read from the token by pkcs11-tool (DER SPKI).
  [[nodiscard]] test::Pkey public_key(const std::string& id_hex) const {
    std::string out = path("pub-" + id_hex + ".der");
    auto read = test::run_command({"pkcs11-tool", "--module", test::softhsm_module, "--token-label", token_label,
                                   "--read-object", "--type", "pubkey", "--id", id_hex, "-o", out});
    REQUIRE_MESSAGE(read.exit == 0, read.err);
    std::string der = test::slurp(out);
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    test::Pkey key(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
    REQUIRE(key != nullptr);
    return key;
  }

 private:
  test::SoftHsm hsm_;
  ScratchDir dir_;
  std::string pin_file_;
  std::string config_file_;
  std::string module_ = test::softhsm_module;
  std::string ca_file_;
  std::map<std::string, std::string> env_;
};

// Nothing happened anywhere: no object on the token, no request at the CA, no job.
inline void check_untouched(const Workspace& ws, const CertCentralSim& sim) {
  CHECK(ws.objects().empty());
  CHECK(settled_audit(sim).empty());
  auto jobs = ws.agent(sim, {"--json", "jobs"});
  REQUIRE_MESSAGE(jobs.exit_code == 0, jobs.err);
  CHECK(json::parse(jobs.out)["jobs"].empty());
}

inline std::size_t count_objects(const std::vector<TokenObject>& objects, const std::string& kind, const std::string& label = {}) {
  return static_cast<std::size_t>(std::count_if(objects.begin(), objects.end(), [&](const TokenObject& o) {
    return o.kind == kind && (label.empty() || o.field("label") == label);
  }));
}

inline const TokenObject* find_object(const std::vector<TokenObject>& objects, const std::string& kind, const std::string& label) {
  for (const auto& o : objects) {
    if (o.kind == kind && o.field("label") == label) return &o;
  }
  return nullptr;
}

inline const char* private_key = "Private Key Object";
inline const char* public_key = "Public Key Object";
inline const char* certificate = "Certificate Object";

// The order bodies, as tests/api and api/src/order.cpp's validate() accept them.
inline std::string server_order_body(const std::string& cn, const std::string& oin) {
  return json{{"organization", {{"id", 112233}}},
              {"csa_agreed_to", true},
              {"order_validity", {{"years", 1}}},
              {"certificate", {{"common_name", cn}, {"dns_names", {cn}}, {"oin", oin}}}}
      .dump();
}
inline std::string eseal_order_body() {
  return json{{"organization", {{"id", 112233}}},
              {"csa_agreed_to", true},
              {"provisioning_method", "csr"},
              {"order_validity", {{"years", 1}}},
              {"certificate", {{"signature_hash", "sha256"}}}}
      .dump();
}
inline std::string ssl_order_body(const std::string& cn) {
  return json{{"organization", {{"id", 112233}}},
              {"order_validity", {{"years", 1}}},
              {"certificate", {{"common_name", cn}, {"dns_names", {cn}}}}}
      .dump();
}

inline std::string golden_subject(const std::string& profile) {
  const char* source = std::getenv("QSCD_TEST_SOURCE_DIR");
  REQUIRE(source != nullptr);
  return (std::filesystem::path(source) / "tests/data/csr/golden" / (profile + ".toml")).string();
}

// The fast job of the kill matrix: generic subject, ssl_basic, EC P-256.
inline Provision quick_job(const std::string& label) {
  return {"generic", "ssl_basic", "ec:p256", label,
          {"--set", "C=NL", "--set", "O=Voorbeeld BV", "--set", "CN=e2e.example.nl"},
          ssl_order_body("e2e.example.nl"), {}, {}};
}

}  // namespace qscd::e2e
