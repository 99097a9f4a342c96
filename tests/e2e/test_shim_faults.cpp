// Faults at every PKCS#11 call `provision` makes, through the fault shim (tests/p11shim) over
// SoftHSM2: the calls are those of a good run's trace (QSCD_SHIM_TRACE), and each is failed in
// turn with each answer that applies: the token pulled out there (QSCD_SHIM_REMOVE_AT: that call
// and every later one see it gone), CKR_DEVICE_ERROR, CKR_SESSION_HANDLE_INVALID (calls on a
// session) and CKR_PIN_INCORRECT (C_Login). Each row: exit 3 naming the step (or the call, before
// there is a job), nothing half-written on the token, at most one C_Login (never a second one
// after CKR_PIN_INCORRECT), then the rerun without the fault ("reinsertion") finishes with one
// order. One simulator for the whole table; each row gets a fresh copy of one token's files.
// Also the regression tests of issue 18 defect 9 (a half key pair left by a removal).
#include <regex>
#include <set>

#include "e2e_fixture.hpp"

using namespace qscd::e2e;
using qscd::test::CertCentralSim;
namespace fs = std::filesystem;

namespace {

// One line of the shim's trace: "C_Login CKR_OK 20113us slot=1 user=CKU_USER".
struct TracedCall {
  std::string function;
  std::string rv;
  std::string line;
};

std::vector<TracedCall> read_trace(const std::string& path) {
  std::vector<TracedCall> calls;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    TracedCall call;
    fields >> call.function >> call.rv;
    call.line = line;
    if (!call.function.empty()) calls.push_back(std::move(call));
  }
  return calls;
}

std::size_t logins(const std::vector<TracedCall>& calls) {
  return static_cast<std::size_t>(
      std::count_if(calls.begin(), calls.end(), [](const TracedCall& c) { return c.function == "C_Login"; }));
}

fs::path token_store() {
  std::ifstream in(std::getenv("SOFTHSM2_CONF"));
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("directories.tokendir = ")) return line.substr(std::strlen("directories.tokendir = "));
  }
  FAIL("no tokendir in SOFTHSM2_CONF");
  return {};
}

// The token's files as they were when `save` was called, put back by `restore`: a fresh token
// for each row in a few file copies instead of softhsm2-util.
class TokenSnapshot {
 public:
  explicit TokenSnapshot(fs::path copy) : store_(token_store()), copy_(std::move(copy)) {}
  void save() const {
    fs::remove_all(copy_);
    fs::copy(store_, copy_, fs::copy_options::recursive);
  }
  void restore() const {
    for (const auto& entry : fs::directory_iterator(store_)) fs::remove_all(entry.path());
    fs::copy(copy_, store_, fs::copy_options::recursive);
  }

 private:
  fs::path store_;
  fs::path copy_;
};

const char* shim_module() {
  const char* shim = std::getenv("QSCD_P11SHIM");
  REQUIRE_MESSAGE(shim != nullptr, "QSCD_P11SHIM is not set; run through ctest");
  return shim;
}

// No half pair: as many public as private keys labelled `label` (none or one), with one CKA_ID;
// at most one certificate with it.
void check_no_half_pair(const std::vector<TokenObject>& objects, const std::string& label) {
  const std::size_t privates = count_objects(objects, private_key, label);
  const std::size_t publics = count_objects(objects, public_key, label);
  CHECK(privates <= 1);
  CHECK(publics == privates);
  if (privates == 1 && publics == 1) {
    CHECK(lower(find_object(objects, private_key, label)->field("ID")) == lower(find_object(objects, public_key, label)->field("ID")));
  }
  CHECK(count_objects(objects, certificate, label) <= privates);
}

// The end state of a finished job: one pair, one certificate with its id, `certificates` in all.
void check_finished(const std::vector<TokenObject>& objects, const std::string& label, std::size_t certificates) {
  CHECK(count_objects(objects, private_key) == 1);
  CHECK(count_objects(objects, public_key) == 1);
  CHECK(count_objects(objects, private_key, label) == 1);
  CHECK(count_objects(objects, public_key, label) == 1);
  CHECK(count_objects(objects, certificate, label) == 1);
  CHECK(count_objects(objects, certificate) == certificates);
  const TokenObject* priv = find_object(objects, private_key, label);
  const TokenObject* pub = find_object(objects, public_key, label);
  const TokenObject* cert = find_object(objects, certificate, label);
  if (priv != nullptr && pub != nullptr && cert != nullptr) {
    CHECK(lower(pub->field("ID")) == lower(priv->field("ID")));
    CHECK(lower(cert->field("ID")) == lower(priv->field("ID")));
  }
}

bool on_a_session(const std::string& function) {
  static const std::set<std::string> not_on_a_session = {"C_Initialize", "C_Finalize", "C_GetInfo", "C_GetSlotList",
                                                         "C_GetSlotInfo", "C_GetTokenInfo", "C_OpenSession",
                                                         "C_WaitForSlotEvent", "C_GetMechanismList", "C_GetMechanismInfo"};
  return !not_on_a_session.contains(function);
}

struct Row {
  std::string function;
  unsigned long ordinal = 0;  // the Nth call of `function` in the run
  std::string fault;          // CKR_DEVICE_REMOVED (pulled out there), CKR_DEVICE_ERROR, ...
};

std::string describe(const Row& row) { return row.function + "@" + std::to_string(row.ordinal) + " " + row.fault; }

}  // namespace

namespace {

// The table on one kind of slot: SoftHSM2's own (`slot_flags` empty: the key pair and the
// certificates copied onto the token) or a hardware slot (CKF_HW_SLOT: generated on the token,
// plain C_CreateObject), which make different calls.
void fault_table(const std::string& slot_flags) {
  INFO("slot flags: ", slot_flags.empty() ? std::string("none (a soft token)") : slot_flags);
  CertCentralSim sim({"--auto-approve", "--no-request-limits"});
  Workspace ws;
  ws.use_module(shim_module());
  if (!slot_flags.empty()) ws.set_env("QSCD_SHIM_SLOT_FLAGS_OR", slot_flags);
  const TokenSnapshot pristine(ws.path("pristine-token"));
  pristine.save();

  // The good run: the calls to fail, and the end state every row must reach.
  const std::string good_trace = ws.path("good.trace");
  ws.set_env("QSCD_SHIM_TRACE", good_trace);
  auto good = ws.provision(sim, quick_job("good"));
  REQUIRE_MESSAGE(good.exit_code == 0, good.err);
  const auto good_calls = read_trace(good_trace);
  REQUIRE(!good_calls.empty());
  for (const auto& call : good_calls) REQUIRE_MESSAGE(call.rv == "CKR_OK", call.line);
  const std::size_t certificates = count_objects(ws.objects(), certificate);
  REQUIRE(certificates >= 2);  // the end entity and at least one intermediate
  CHECK(logins(good_calls) == 1);

  std::vector<Row> rows;
  std::map<std::string, unsigned long> seen;
  for (const auto& call : good_calls) {
    const unsigned long ordinal = ++seen[call.function];
    rows.push_back({call.function, ordinal, "CKR_DEVICE_REMOVED"});
    rows.push_back({call.function, ordinal, "CKR_DEVICE_ERROR"});
    if (on_a_session(call.function)) rows.push_back({call.function, ordinal, "CKR_SESSION_HANDLE_INVALID"});
    if (call.function == "C_Login") rows.push_back({call.function, ordinal, "CKR_PIN_INCORRECT"});
  }
  MESSAGE(good_calls.size() << " calls in a good run, " << rows.size() << " rows");

  const std::regex step_named("step [A-Z_]+ failed: ");
  std::size_t row_number = 0;
  std::size_t failed_runs = 0;
  std::size_t finished_anyway = 0;
  for (const Row& row : rows) {
    ++row_number;
    const std::string label = "f" + std::to_string(row_number);
    INFO("row ", row_number, ": ", describe(row));
    pristine.restore();
    ws.unset_env("QSCD_SHIM_REMOVE_AT");
    ws.unset_env("QSCD_SHIM_FAIL");
    const std::string at = row.function + "@" + std::to_string(row.ordinal);
    // The token pulled out at a call on a slot or session; C_Initialize and C_Finalize are not
    // about a token, so there the module itself answers CKR_DEVICE_REMOVED.
    const bool pulled_out = row.fault == "CKR_DEVICE_REMOVED" && row.function != "C_Initialize" && row.function != "C_Finalize";
    if (pulled_out) {
      ws.set_env("QSCD_SHIM_REMOVE_AT", at);
    } else {
      ws.set_env("QSCD_SHIM_FAIL", at + ":" + row.fault);
    }
    const std::string trace = ws.path("row-" + std::to_string(row_number) + ".trace");
    ws.set_env("QSCD_SHIM_TRACE", trace);
    const std::size_t orders_before = sim_orders(sim).size();
    const Provision p = quick_job(label);

    auto faulted = ws.provision(sim, p);
    const auto calls = read_trace(trace);
    // Never a second login: not after a wrong PIN, not after any other failure.
    CHECK_MESSAGE(logins(calls) <= 1, faulted.err);
    if (row.fault == "CKR_PIN_INCORRECT") {
      REQUIRE(!calls.empty());
      const auto last_login = std::find_if(calls.rbegin(), calls.rend(), [](const TracedCall& c) { return c.function == "C_Login"; });
      CHECK(last_login != calls.rend());
      if (last_login != calls.rend()) CHECK(last_login->rv == "CKR_PIN_INCORRECT");
      CHECK(faulted.err.find("not retried") != std::string::npos);
    }
    // Whether the job exists: the agent says so as it starts it (a `jobs` process per row would
    // cost more than the row); the rerun below checks the journal's end state.
    const bool job_started = faulted.err.find("started job ") != std::string::npos;
    if (faulted.exit_code == 0) {
      // Only a fault the agent may shrug off (a session object's cleanup, the logout, the
      // module's end) leaves a finished job.
      ++finished_anyway;
      CHECK_MESSAGE((row.function == "C_DestroyObject" || row.function == "C_Logout" || row.function == "C_CloseSession" ||
                     row.function == "C_Finalize"),
                    faulted.err);
      const json out = json::parse(faulted.out, nullptr, false);
      CHECK_MESSAGE((out.is_object() && out.value("state", "") == "MONITORING"), faulted.out);
    } else {
      ++failed_runs;
      CHECK_MESSAGE(faulted.exit_code == 3, "exit " << faulted.exit_code << "\n" << faulted.err);
      if (job_started) {
        // Inside the job: the step is named.
        CHECK_MESSAGE(std::regex_search(faulted.err, step_named), faulted.err);
      } else if (!pulled_out) {
        CHECK_MESSAGE(faulted.err.find(row.function + " failed with " + row.fault) != std::string::npos, faulted.err);
      }
    }
    // A token pulled out mid-write keeps what it had (a lone half of a pair, say); a token that
    // stays in is left with nothing half-written.
    if (!pulled_out) check_no_half_pair(ws.objects(), label);

    ws.unset_env("QSCD_SHIM_REMOVE_AT");
    ws.unset_env("QSCD_SHIM_FAIL");
    ws.unset_env("QSCD_SHIM_TRACE");
    auto rerun = ws.provision(sim, p);
    CHECK_MESSAGE(rerun.exit_code == 0, "rerun: exit " << rerun.exit_code << "\n" << rerun.err << "\nfirst run:\n" << faulted.err);
    check_finished(ws.objects(), label, certificates);
    CHECK_MESSAGE(sim_orders(sim).size() == orders_before + 1, rerun.err);
    const json out = json::parse(rerun.out, nullptr, false);
    CHECK_MESSAGE((out.is_object() && out.value("state", "") == "MONITORING" && out.value("key_label", "") == label), rerun.out);
  }
  // The journal: one job per row and the good run's, every one finished.
  auto listed = ws.agent(sim, {"--json", "jobs"});
  REQUIRE_MESSAGE(listed.exit_code == 0, listed.err);
  const json journal = json::parse(listed.out);
  CHECK(journal["jobs"].size() == rows.size() + 1);
  for (const auto& job : journal["jobs"]) CHECK_MESSAGE(job["state"] == "MONITORING", job.dump());
  MESSAGE(failed_runs << " rows exited 3, " << finished_anyway << " finished despite the fault");
  CHECK(failed_runs > finished_anyway);
}

}  // namespace

TEST_CASE("a fault at every PKCS#11 call of provision on a soft token: exit 3 naming the step, nothing half-written, one C_Login, the rerun finishes with one order") {
  fault_table("");
}

TEST_CASE("a fault at every PKCS#11 call of provision on a hardware slot (a card): the same") {
  fault_table("CKF_HW_SLOT");
}

TEST_CASE("issue 18 defect 9: a private key an interrupted key generation left without its public key is removed (EC) and the pair made again") {
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  ws.use_module(shim_module());
  const Provision p = quick_job("seal");
  // The job exists and waits in key generation.
  ws.set_env("QSCD_SHIM_FAIL", "C_GenerateKeyPair:CKR_DEVICE_ERROR");
  auto failed = ws.provision(sim, p);
  REQUIRE_MESSAGE(failed.exit_code == 3, failed.err);
  CHECK(failed.err.find("step GENERATING_KEY_PAIR failed: C_GenerateKeyPair failed with CKR_DEVICE_ERROR") != std::string::npos);
  ws.unset_env("QSCD_SHIM_FAIL");
  // What the agent before the fix left after a removal at C_GetAttributeValue during the copies:
  // the private key, without its public key.
  REQUIRE(qscd::test::run_command({"pkcs11-tool", "--module", qscd::test::softhsm_module, "--token-label", token_label, "--login",
                                   "--pin", user_pin, "--keypairgen", "--key-type", "EC:prime256v1", "--id", "0d0e",
                                   "--label", p.label})
              .exit == 0);
  REQUIRE(qscd::test::run_command({"pkcs11-tool", "--module", qscd::test::softhsm_module, "--token-label", token_label, "--login",
                                   "--pin", user_pin, "--delete-object", "--type", "pubkey", "--id", "0d0e"})
              .exit == 0);
  auto half = ws.objects();
  REQUIRE(count_objects(half, private_key, p.label) == 1);
  REQUIRE(count_objects(half, public_key, p.label) == 0);

  auto resumed = ws.provision(sim, p);
  REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.err);
  CHECK(resumed.err.find("removed the private key an interrupted run left without its public key (id 0d0e)") != std::string::npos);
  auto objects = ws.objects();
  check_finished(objects, p.label, count_objects(objects, certificate));
  CHECK(lower(find_object(objects, private_key, p.label)->field("ID")) != "0d0e");
  CHECK(order_posts(sim, p.product).size() == 1);
}

TEST_CASE("issue 18 defect 9: an RSA private key left without its public key gets it rebuilt from its own values") {
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  ws.use_module(shim_module());
  Provision p = quick_job("seal");
  p.key_type = "rsa:2048";
  ws.set_env("QSCD_SHIM_FAIL", "C_GenerateKeyPair:CKR_DEVICE_REMOVED");
  REQUIRE(ws.provision(sim, p).exit_code == 3);
  ws.unset_env("QSCD_SHIM_FAIL");
  REQUIRE(qscd::test::run_command({"pkcs11-tool", "--module", qscd::test::softhsm_module, "--token-label", token_label, "--login",
                                   "--pin", user_pin, "--keypairgen", "--key-type", "rsa:2048", "--id", "0a0b", "--label", p.label})
              .exit == 0);
  REQUIRE(qscd::test::run_command({"pkcs11-tool", "--module", qscd::test::softhsm_module, "--token-label", token_label, "--login",
                                   "--pin", user_pin, "--delete-object", "--type", "pubkey", "--id", "0a0b"})
              .exit == 0);

  auto resumed = ws.provision(sim, p);
  REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.err);
  CHECK(resumed.err.find("rebuilt the public key of the private key an interrupted run left without it (id 0a0b)") != std::string::npos);
  auto objects = ws.objects();
  check_finished(objects, p.label, count_objects(objects, certificate));
  CHECK(lower(find_object(objects, private_key, p.label)->field("ID")) == "0a0b");
  // The rebuilt public key is the private key's: the certificate issued for it holds it.
  auto evidence = ws.job_evidence(sim, std::to_string(json::parse(resumed.out)["job_id"].get<std::int64_t>()));
  auto chain = read_pem_certs(evidence["chain_pem"].get<std::string>());
  REQUIRE(!chain.empty());
  auto on_token = ws.public_key("0a0b");
  CHECK(EVP_PKEY_eq(X509_get0_pubkey(chain.front().get()), on_token.get()) == 1);
  CHECK(order_posts(sim, p.product).size() == 1);
}

TEST_CASE("issue 18 defect 9: the token failing the check of the private key's copy leaves no half pair; the rerun finishes") {
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  ws.use_module(shim_module());
  const Provision p = quick_job("seal");
  // Find the read that checks the private half's copy: the C_GetAttributeValue after the second
  // C_CopyObject of a good run's key generation.
  const std::string trace = ws.path("good.trace");
  {
    const TokenSnapshot pristine(ws.path("pristine"));
    pristine.save();
    ws.set_env("QSCD_SHIM_TRACE", trace);
    REQUIRE(ws.provision(sim, quick_job("probe")).exit_code == 0);
    ws.unset_env("QSCD_SHIM_TRACE");
    pristine.restore();
  }
  unsigned long reads = 0;
  unsigned long copies = 0;
  unsigned long check_read = 0;
  for (const auto& call : read_trace(trace)) {
    if (call.function == "C_GetAttributeValue") ++reads;
    if (call.function == "C_CopyObject") ++copies;
    if (copies == 2 && call.function == "C_GetAttributeValue" && check_read == 0) check_read = reads;
  }
  REQUIRE(check_read > 0);
  for (const char* how : {"QSCD_SHIM_FAIL", "QSCD_SHIM_REMOVE_AT"}) {
    INFO(how);
    const TokenSnapshot pristine(ws.path("pristine"));
    pristine.restore();
    const std::string at = "C_GetAttributeValue@" + std::to_string(check_read);
    ws.set_env(how, std::string(how) == "QSCD_SHIM_FAIL" ? at + ":CKR_DEVICE_REMOVED" : at);
    Provision job = p;
    job.label = std::string("seal-") + (std::string(how) == "QSCD_SHIM_FAIL" ? "fail" : "removed");
    auto failed = ws.provision(sim, job);
    ws.unset_env(how);
    CHECK_MESSAGE(failed.exit_code == 3, failed.err);
    CHECK(failed.err.find("step GENERATING_KEY_PAIR failed: C_GetAttributeValue failed with CKR_DEVICE_REMOVED") != std::string::npos);
    // Failing only that read, the token is there for the cleanup: nothing is left of the pair.
    if (std::string(how) == "QSCD_SHIM_FAIL") {
      auto left = ws.objects();
      CHECK(count_objects(left, private_key, job.label) == 0);
      CHECK(count_objects(left, public_key, job.label) == 0);
    }
    auto resumed = ws.provision(sim, job);
    CHECK_MESSAGE(resumed.exit_code == 0, resumed.err);
    auto objects = ws.objects();
    check_finished(objects, job.label, count_objects(objects, certificate));
  }
}

TEST_CASE("the shim as a smart card: a second PIN for CKA_ALWAYS_AUTHENTICATE keys (the eToken's Digital Signature PIN), latency per call, the trace") {
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  ws.use_module(shim_module());
  const std::string token = std::string("pkcs11:token=") + token_label;
  const std::string trace = ws.path("card.trace");
  ws.set_env("QSCD_SHIM_SIGN_PIN", "654321");
  ws.set_env("QSCD_SHIM_TRACE", trace);
  // C_GenerateKeyPair as slow as a card's, everything else 1 ms.
  ws.set_env("QSCD_SHIM_LATENCY", "default:1ms,C_GenerateKeyPair:400ms");
  const auto started = std::chrono::steady_clock::now();
  auto made = ws.agent(sim, {"--json", "keygen", "--token", token, "--pin-source", "file:" + ws.path("pin"), "--key-type", "ec:p256",
                             "--label", "seal", "--always-authenticate"});
  REQUIRE_MESSAGE(made.exit_code == 0, made.err);
  CHECK(std::chrono::steady_clock::now() - started >= std::chrono::milliseconds(400));
  bool slow_keygen = false;
  for (const auto& call : read_trace(trace)) {
    if (call.function != "C_GenerateKeyPair") continue;
    std::istringstream fields(call.line);
    std::string function, rv, took;
    fields >> function >> rv >> took;
    slow_keygen = std::stol(took) >= 400000;
  }
  CHECK(slow_keygen);
  const std::string key_uri = json::parse(made.out)["uri"].get<std::string>();
  Provision p = quick_job("seal");
  p.key_type.clear();

  // The user PIN for the signature: the card refuses it once, and it is not sent again.
  std::filesystem::remove(trace);
  p.extra = {"--key", key_uri};
  auto refused = ws.provision(sim, p);
  CHECK(refused.exit_code == 3);
  CHECK(refused.err.find("the signature PIN") != std::string::npos);
  CHECK(refused.err.find("not retried") != std::string::npos);
  std::size_t context_logins = 0;
  std::size_t refused_logins = 0;
  for (const auto& call : read_trace(trace)) {
    if (call.function != "C_Login" || call.line.find("user=CKU_CONTEXT_SPECIFIC") == std::string::npos) continue;
    ++context_logins;
    if (call.rv == "CKR_PIN_INCORRECT") ++refused_logins;
  }
  CHECK(context_logins == 1);
  CHECK(refused_logins == 1);

  // The signature PIN: the CSR is signed, the job finishes.
  p.extra = {"--key", key_uri, "--sign-pin-source", "file:" + ws.write("sign-pin", "654321")};
  auto provisioned = ws.provision(sim, p);
  REQUIRE_MESSAGE(provisioned.exit_code == 0, provisioned.err);
  CHECK(json::parse(provisioned.out)["state"] == "MONITORING");
}
