#pragma once
// What the renewal tests share: a provisioned pair that is due, `renew` runs, and the old pair's
// signature check.
#include "e2e_fixture.hpp"

namespace qscd::e2e {


// Certificates of new orders end in 2 days; reissues start now and last 10.
inline const std::vector<std::string> short_lived = {"--auto-approve", "--validity-days", "10", "--backdate-days", "8"};

inline const char* pair_label = "renewme";

inline std::vector<json> reissue_posts(const CertCentralSim& sim) {
  std::vector<json> posts;
  for (const auto& line : settled_audit(sim)) {
    if (line.value("method", "") == "POST" && line.value("path", "").ends_with("/reissue")) posts.push_back(line);
  }
  return posts;
}

// A provisioned pair to renew: EC P-256, ssl_basic. Returns the key's hex CKA_ID.
inline std::string provision_pair(const Workspace& ws, const CertCentralSim& sim) {
  auto made = ws.provision(sim, quick_job(pair_label));
  REQUIRE_MESSAGE(made.exit_code == 0, made.err);
  return id_of_uri(json::parse(made.out)["key_uri"].get<std::string>());
}

inline test::ProcessResult renew(const Workspace& ws, const CertCentralSim& sim, std::vector<std::string> extra = {},
                          const std::string& crash_at = {}) {
  std::vector<std::string> args = {"--json", "renew", "--token", std::string("pkcs11:token=") + token_label,
                                   "--pin-source", "file:" + ws.path("pin"), "--timeout", "60s"};
  args.insert(args.end(), extra.begin(), extra.end());
  std::map<std::string, std::string> env;
  if (!crash_at.empty()) env["QSCD_AGENT_TEST_CRASH_AT"] = crash_at;
  return ws.agent(sim, args, env);
}

inline json only_certificate(const test::ProcessResult& run) {
  json out = json::parse(run.out, nullptr, false);
  REQUIRE_MESSAGE(out.is_object(), "stdout: " << run.out << "\nstderr: " << run.err);
  REQUIRE(out["certificates"].size() == 1);
  return out["certificates"][0];
}

// The key with CKA_ID `id_hex` signs, on the token, and its certificate's public key verifies it:
// the pair is usable.
inline bool pair_signs(const Workspace& ws, const std::string& id_hex) {
  // SoftHSM2 signs with plain CKM_ECDSA: the digest is made here, as a signing service would.
  std::string data = ws.write("to-sign.bin", "a document to seal");
  std::string digest = ws.path("to-sign.sha256");
  if (test::run_command({"openssl", "dgst", "-sha256", "-binary", "-out", digest, data}).exit != 0) return false;
  std::string signature = ws.path("signature-" + id_hex + ".der");
  auto signed_ = test::run_command({"pkcs11-tool", "--module", test::softhsm_module, "--token-label", token_label, "--login",
                                    "--pin", user_pin, "--sign", "--id", id_hex, "-m", "ECDSA", "--signature-format",
                                    "openssl", "-i", digest, "-o", signature});
  if (signed_.exit != 0) {
    MESSAGE("pkcs11-tool --sign: " << signed_.err);
    return false;
  }
  std::string cert = ws.path("cert-" + id_hex + ".der");
  auto read = test::run_command({"pkcs11-tool", "--module", test::softhsm_module, "--token-label", token_label, "--read-object",
                                 "--type", "cert", "--id", id_hex, "-o", cert});
  if (read.exit != 0) return false;
  std::string pub = ws.path("cert-" + id_hex + ".pub.pem");
  auto extracted = test::run_command({"openssl", "x509", "-inform", "DER", "-in", cert, "-noout", "-pubkey", "-out", pub});
  if (extracted.exit != 0) return false;
  auto verified = test::run_command({"openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-sigfile", signature, "-in", digest});
  return verified.exit == 0;
}

inline std::string certificate_serial(const std::vector<TokenObject>& objects, const std::string& id_hex) {
  for (const auto& o : objects) {
    if (o.kind == certificate && lower(o.field("ID")) == id_hex) return normal_hex(o.field("serial"));
  }
  return {};
}


}  // namespace qscd::e2e
