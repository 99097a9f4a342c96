// The kill matrix: `provision` SIGKILLed (QSCD_AGENT_TEST_CRASH_AT) at every step
// boundary, then run again without the hook. The job must finish, the CA must
// have seen exactly one order-creating POST, and the token must hold exactly one
// key for the job. Fast on purpose: EC P-256, ssl_basic, a sim issuing at once.
#include "e2e_fixture.hpp"

using namespace qscd::e2e;
using qscd::test::CertCentralSim;

namespace {

struct CrashPoint {
  const char* name;
  std::size_t posts_before_resume;  // order POSTs the killed run must already have made
};

// The happy path's transitions, in order, plus the two kills inside a step:
// key generated but not recorded, order placed but its id not stored.
const CrashPoint crash_points[] = {
    {"GENERATING_KEY_PAIR", 0}, {"GENERATING_KEY_PAIR:generated", 0},
    {"HAVE_KEY_PAIR", 0},       {"NEED_CSR", 0},
    {"HAVE_CSR", 0},            {"NEED_TO_SUBMIT", 0},
    {"SUBMITTING", 0},          {"SUBMITTING:posted", 1},
    {"CA_WORKING", 1},          {"NEED_TO_INSTALL", 1},
    {"INSTALLING", 1},          {"MONITORING", 1},
};

constexpr int killed_by_sigkill = 128 + 9;

// One crash point: killed by the hook, then resumed. Failures are CHECKs that end only this
// point (a REQUIRE would end the whole matrix and hide the points after it).
void kill_and_resume(const CrashPoint& point) {
  INFO("crash point ", std::string(point.name));
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  Provision p = quick_job("kill");

  auto killed = ws.provision(sim, p, point.name);
  CHECK_MESSAGE(killed.exit_code == killed_by_sigkill, "the hook did not kill: exit " << killed.exit_code << "\n" << killed.err);
  if (killed.exit_code != killed_by_sigkill) return;
  CHECK(order_posts(sim, p.product).size() == point.posts_before_resume);
  CHECK(sim_orders(sim).size() == point.posts_before_resume);

  auto resumed = ws.provision(sim, p);
  CHECK_MESSAGE(resumed.exit_code == 0, "exit " << resumed.exit_code << "\nstdout: " << resumed.out << "\nstderr: " << resumed.err);
  json out = json::parse(resumed.out, nullptr, false);
  CHECK_MESSAGE(out.is_object(), resumed.out);
  if (resumed.exit_code != 0 || !out.is_object()) return;
  CHECK(out.value("state", "") == "MONITORING");

  auto posts = order_posts(sim, p.product);
  CHECK(posts.size() == 1);
  if (!posts.empty()) CHECK(as_text(posts[0]["order_id"]) == as_text(out["order_id"]));

  auto objects = ws.objects();
  CHECK(count_objects(objects, private_key) == 1);
  CHECK(count_objects(objects, private_key, p.label) == 1);
  CHECK(count_objects(objects, public_key, p.label) == 1);
  CHECK(count_objects(objects, certificate, p.label) == 1);
  const TokenObject* priv = find_object(objects, private_key, p.label);
  const TokenObject* cert = find_object(objects, certificate, p.label);
  if (priv != nullptr && cert != nullptr) CHECK(lower(cert->field("ID")) == lower(priv->field("ID")));

  // One job for the job key, not a second one started next to the killed one.
  auto jobs = ws.agent(sim, {"--json", "jobs"});
  CHECK_MESSAGE(jobs.exit_code == 0, jobs.err);
  if (jobs.exit_code == 0) CHECK(json::parse(jobs.out)["jobs"].size() == 1);
}

}  // namespace

TEST_CASE("kill matrix: SIGKILL at every step boundary, rerun: finished, one order POST, one key") {
  for (const auto& point : crash_points) kill_and_resume(point);
}

TEST_CASE("killed after the POST, before the order id is stored: the resume adopts the order it placed and approves it") {
  CertCentralSim sim;  // the order waits for approval: the resume must approve the order it adopts
  Workspace ws;
  Provision p = quick_job("adopt");
  p.extra = {"--approve", "--poll-interval", "1s"};

  auto killed = ws.provision(sim, p, "SUBMITTING:posted");
  REQUIRE_MESSAGE(killed.exit_code == killed_by_sigkill, "exit " << killed.exit_code << "\n" << killed.err);
  auto placed = order_posts(sim, p.product);
  REQUIRE(placed.size() == 1);
  std::string order_id = as_text(placed[0]["order_id"]);

  // The killed run had not stored the order id.
  auto before = ws.agent(sim, {"--json", "jobs"});
  REQUIRE_MESSAGE(before.exit_code == 0, before.err);
  json listed = json::parse(before.out)["jobs"];
  REQUIRE(listed.size() == 1);
  CHECK(listed[0]["order_id"].is_null());
  std::string job_id = as_text(listed[0]["id"]);

  auto resumed = ws.provision(sim, p);
  REQUIRE_MESSAGE(resumed.exit_code == 0, "exit " << resumed.exit_code << "\nstderr: " << resumed.err);
  CHECK(order_posts(sim, p.product).size() == 1);
  json out = json::parse(resumed.out);
  CHECK(as_text(out["order_id"]) == order_id);
  CHECK(as_text(out["job_id"]) == job_id);
  std::size_t approvals = 0;
  for (const auto& line : settled_audit(sim)) {
    if (line.value("method", "") == "PUT" && line.value("path", "").find("/request/") != std::string::npos) ++approvals;
  }
  CHECK(approvals == 1);

  json evidence = ws.job_evidence(sim, job_id);
  CHECK(as_text(evidence["order_id"]) == order_id);
  bool looked_up = false;
  for (const auto& step : evidence["steps"]) looked_up = looked_up || step.value("state", "") == "NEED_ORDER_LOOKUP";
  CHECK_MESSAGE(looked_up, "no NEED_ORDER_LOOKUP step in the job's evidence: " << evidence["steps"].dump());
  // The sim holds that one order, and it carries the job's CSR.
  json orders = sim_orders(sim);
  REQUIRE(orders.size() == 1);
  REQUIRE(orders.contains(order_id));
  auto flat = [](std::string text) {
    text.erase(std::remove_if(text.begin(), text.end(), [](unsigned char c) { return std::isspace(c) != 0; }), text.end());
    return text;
  };
  CHECK(flat(orders[order_id]["certificate"]["csr"].get<std::string>()) == flat(evidence["csr_pem"].get<std::string>()));
}

TEST_CASE("killed between the key pair's two copies onto the token: the resume removes the lone public key, then finishes") {
  const char* shim = std::getenv("QSCD_P11SHIM");
  REQUIRE_MESSAGE(shim != nullptr, "QSCD_P11SHIM is not set; run through ctest");
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  ws.use_module(shim);
  Provision p = quick_job("halfway");
  // The fault shim kills the agent as it asks for the second copy: the private half's, since the
  // public half goes first (a private key alone could not give the resume its CSR's public key).
  ws.set_env("QSCD_SHIM_KILL", "C_CopyObject@2");
  auto killed = ws.provision(sim, p);
  REQUIRE_MESSAGE(killed.exit_code == killed_by_sigkill, "exit " << killed.exit_code << "\n" << killed.err);
  auto left = ws.objects();
  CHECK(left.size() == 1);
  CHECK(count_objects(left, public_key, p.label) == 1);
  CHECK(order_posts(sim, p.product).empty());

  ws.unset_env("QSCD_SHIM_KILL");
  auto resumed = ws.provision(sim, p);
  REQUIRE_MESSAGE(resumed.exit_code == 0, "exit " << resumed.exit_code << "\nstderr: " << resumed.err);
  CHECK(resumed.err.find("removed the public key an interrupted run left without its private key") != std::string::npos);
  CHECK(order_posts(sim, p.product).size() == 1);
  auto objects = ws.objects();
  CHECK(count_objects(objects, private_key, p.label) == 1);
  CHECK(count_objects(objects, public_key, p.label) == 1);
  CHECK(count_objects(objects, certificate, p.label) == 1);
  const TokenObject* priv = find_object(objects, private_key, p.label);
  const TokenObject* pub = find_object(objects, public_key, p.label);
  const TokenObject* cert = find_object(objects, certificate, p.label);
  REQUIRE((priv != nullptr && pub != nullptr && cert != nullptr));
  CHECK(lower(pub->field("ID")) == lower(priv->field("ID")));
  CHECK(lower(cert->field("ID")) == lower(priv->field("ID")));
}
