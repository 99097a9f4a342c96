// Issue 18, "Crash safety beyond the planned points": `provision` and `install` SIGKILLed at
// random delays across their whole run and, for a quarter of the trials, at a random PKCS#11
// call (the shim's QSCD_SHIM_KILL at a call the run makes, so the short token steps are hit as
// often as the CA's), each followed by the same command to completion. Counted: finished reruns,
// order POSTs per job (1), key pairs per job (1), jobs left unfinished (0), where the kills
// landed. Seeded: QSCD_KILL_SEED=N repeats a run. Figures in docs/reliability.md.
#include "random_kill.hpp"
#include "test_ca.hpp"

using namespace qscd::e2e;
using qscd::test::CertCentralSim;

namespace {

std::chrono::microseconds random_delay(std::mt19937_64& rng, std::chrono::microseconds whole) {
  return std::chrono::microseconds(std::uniform_int_distribution<long>(0, whole.count())(rng));
}

}  // namespace

TEST_CASE("randomized kill: provision killed anywhere, the same command finishes with one order and one key per job") {
  const std::uint64_t seed = kill_seed();
  MESSAGE("seed " << seed << " (QSCD_KILL_SEED=" << seed << " repeats this run)");
  std::mt19937_64 rng(seed);
  // Each CA answer 10 ms late: the CA's part of the run is long enough to be hit, the run short.
  CertCentralSim sim({"--auto-approve", "--no-request-limits", "--slow-ms", "10"});
  std::vector<std::unique_ptr<Workspace>> workspaces;
  auto fresh_workspace = [&] {
    workspaces.push_back(std::make_unique<Workspace>());
    workspaces.back()->use_module(shim_module());
    return workspaces.back().get();
  };
  Workspace* ws = fresh_workspace();

  // One run, unkilled: how long it takes and which PKCS#11 calls it makes.
  const std::string calls = ws->path("calls");
  const KilledRun whole = run_killed(ws->agent_argv(sim, ws->provision_args(quick_job("calibration"))),
                                     ws->agent_env({{"QSCD_SHIM_COUNT_FILE", calls}}), std::nullopt);
  REQUIRE(whole.exit_code == 0);
  const std::vector<std::string> points = kill_points(calls);
  REQUIRE(points.size() > 10);
  // Most of a run is the process starting, the module loading and the login, before the job
  // exists: half the delays are drawn from the job's own steps (its last part) instead.
  const std::chrono::microseconds steps = std::min(job_span(*ws, sim, "calibration"), whole.ran);

  KillTally tally;
  constexpr int trials = 60;
  for (int trial = 0; trial < trials; ++trial) {
    if (trial > 0 && trial % 12 == 0) ws = fresh_workspace();  // a fresh token every 12 jobs
    const Provision p = quick_job("r" + std::to_string(trial));
    const std::size_t audit_from = settled_audit(sim).size();
    std::map<std::string, std::string> env = ws->agent_env();
    std::optional<std::chrono::microseconds> delay;
    std::string how;
    if (std::uniform_int_distribution<int>(0, 3)(rng) == 0) {
      const std::string& point = points[std::uniform_int_distribution<std::size_t>(0, points.size() - 1)(rng)];
      env["QSCD_SHIM_KILL"] = point;
      how = "at " + point;
    } else {
      const bool in_steps = std::uniform_int_distribution<int>(0, 1)(rng) == 0;
      delay = in_steps ? whole.ran - steps + random_delay(rng, steps) : random_delay(rng, whole.ran);
      how = "after " + std::to_string(delay->count()) + " us";
    }
    INFO("trial " << trial << ", killed " << how);
    ++tally.trials;
    const KilledRun killed = run_killed(ws->agent_argv(sim, ws->provision_args(p)), env, delay);
    if (killed.exit_code == killed_by_sigkill) {
      ++tally.killed;
      if (const auto cut = softhsm_cut_files(); !cut.empty()) {
        ++tally.module_lost;
        ++tally.landed[std::string(delay ? "delay: " : "PKCS#11 call: ") + "inside SoftHSM2's rewrite of " + cut.front()];
        workspaces.pop_back();  // that token is gone: its jobs are not counted
        ws = fresh_workspace();
        continue;
      }
      const std::string state = job_state(*ws, sim, p.label);
      ++tally.landed[(delay ? "delay: " : "PKCS#11 call: ") + state];
    } else {
      CHECK_MESSAGE(killed.exit_code == 0, "the run to be killed ended with " << killed.exit_code);
      ++tally.finished_first;
    }

    auto rerun = ws->provision(sim, p);
    CHECK_MESSAGE(rerun.exit_code == 0, "rerun exit " << rerun.exit_code << ": " << rerun.err);
    const json out = json::parse(rerun.out, nullptr, false);
    const bool finished = rerun.exit_code == 0 && out.is_object() && out.value("state", "") == "MONITORING";
    if (finished) ++tally.reruns_finished;
    const std::size_t orders = placed_since(settled_audit(sim), audit_from, "/order/certificate/" + p.product);
    CHECK(orders == 1);
    if (orders != 1) ++tally.extra_orders;
    const auto objects = ws->objects();
    const std::size_t keys = count_objects(objects, private_key, p.label);
    CHECK(keys == 1);
    CHECK(count_objects(objects, public_key, p.label) == 1);
    const std::size_t certificates = count_objects(objects, certificate, p.label);
    CHECK_MESSAGE(certificates == 1, "the token after the rerun:\n" << ws->listing());
    if (keys != 1) ++tally.extra_keys;
  }
  for (const auto& w : workspaces) {
    auto listed = w->agent(sim, {"--json", "jobs"});
    REQUIRE(listed.exit_code == 0);
    const json jobs = json::parse(listed.out)["jobs"];  // a copy: a range-for over a temporary's member dangles
  for (const auto& job : jobs) {
      if (job.value("state", "") != "MONITORING") ++tally.stuck;
    }
  }
  MESSAGE(tally.report("provision (one unkilled run: " + std::to_string(whole.ran.count() / 1000) + " ms, its job's steps " +
                       std::to_string(steps.count() / 1000) + " ms, " +
                       std::to_string(points.size()) + " PKCS#11 calls)"));
  CHECK(tally.reruns_finished + tally.module_lost == trials);
  CHECK(tally.killed >= trials / 3);  // the kills did land: most runs were cut short
  CHECK(tally.extra_orders == 0);
  CHECK(tally.extra_keys == 0);
  CHECK(tally.stuck == 0);
}

TEST_CASE("randomized kill: install killed anywhere, the same command finishes with one certificate per key") {
  const std::uint64_t seed = kill_seed() + 1;
  MESSAGE("seed " << seed - 1 << " (+1 for install)");
  std::mt19937_64 rng(seed);
  CertCentralSim sim;
  std::unique_ptr<Workspace> workspace;
  Workspace* ws = nullptr;
  auto fresh_workspace = [&] {
    workspace.reset();  // its SoftHsm first: one SOFTHSM2_CONF at a time
    workspace = std::make_unique<Workspace>();
    workspace->use_module(shim_module());
    ws = workspace.get();
  };
  fresh_workspace();
  const std::string token = std::string("pkcs11:token=") + token_label;
  // A root and an intermediate: install writes the end entity and the intermediate.
  auto root_key = qscd::test_ca::ec_key();
  qscd::test_ca::CertSpec root_spec;
  root_spec.subject = {{"CN", "Random Kill Root"}};
  root_spec.public_key = root_key.get();
  root_spec.extensions = qscd::test_ca::ca_extensions(false);
  auto root = qscd::test_ca::issue(root_spec, nullptr, root_key.get());
  auto issuing_key = qscd::test_ca::ec_key();
  qscd::test_ca::CertSpec issuing_spec;
  issuing_spec.subject = {{"CN", "Random Kill Issuing CA"}};
  issuing_spec.public_key = issuing_key.get();
  issuing_spec.extensions = qscd::test_ca::ca_extensions(true);
  auto issuing = qscd::test_ca::issue(issuing_spec, root.get(), root_key.get());

  // A key on the token and its certificate chain in a file.
  auto prepare = [&](const std::string& label, int n) {
    char id[8];
    std::snprintf(id, sizeof id, "%04x", n);
    const std::string pin = "file:" + ws->path("pin");
    auto made = ws->agent(sim, {"keygen", "--token", token, "--pin-source", pin, "--key-type", "ec:p256", "--label", label, "--id", id});
    REQUIRE_MESSAGE(made.exit_code == 0, made.err);
    auto key = ws->public_key(id);
    qscd::test_ca::CertSpec leaf_spec;
    leaf_spec.subject = {{"CN", label + ".example.nl"}};
    leaf_spec.public_key = key.get();
    auto leaf = qscd::test_ca::issue(leaf_spec, issuing.get(), issuing_key.get());
    const std::string file = ws->write(label + ".pem", qscd::test_ca::pem(leaf.get()) + qscd::test_ca::pem(issuing.get()));
    return std::vector<std::string>{"install", "--key", token + ";object=" + label, "--cert", file, "--pin-source", pin};
  };

  const std::string calls = ws->path("install-calls");
  const KilledRun whole = run_killed(ws->agent_argv(sim, prepare("calibration", 0xffff)), ws->agent_env({{"QSCD_SHIM_COUNT_FILE", calls}}),
                                     std::nullopt);
  REQUIRE(whole.exit_code == 0);
  const std::vector<std::string> points = kill_points(calls);
  REQUIRE(!points.empty());

  KillTally tally;
  constexpr int trials = 30;
  for (int trial = 0; trial < trials; ++trial) {
    const std::string label = "i" + std::to_string(trial);
    const std::vector<std::string> command = prepare(label, trial);
    std::map<std::string, std::string> env = ws->agent_env();
    std::optional<std::chrono::microseconds> delay;
    std::string how;
    if (std::uniform_int_distribution<int>(0, 2)(rng) == 0) {
      const std::string& point = points[std::uniform_int_distribution<std::size_t>(0, points.size() - 1)(rng)];
      env["QSCD_SHIM_KILL"] = point;
      how = "at " + point;
    } else {
      delay = random_delay(rng, whole.ran);
      how = "after " + std::to_string(delay->count()) + " us";
    }
    INFO("trial " << trial << ", killed " << how);
    ++tally.trials;
    const KilledRun killed = run_killed(ws->agent_argv(sim, command), env, delay);
    if (killed.exit_code == killed_by_sigkill) {
      ++tally.killed;
      if (const auto cut = softhsm_cut_files(); !cut.empty()) {
        ++tally.module_lost;
        ++tally.landed[std::string(delay ? "delay: " : "PKCS#11 call: ") + "inside SoftHSM2's rewrite of " + cut.front()];
        fresh_workspace();
        continue;
      }
      const std::size_t written = count_objects(ws->objects(), certificate, label);
      ++tally.landed[std::string(delay ? "delay: " : "PKCS#11 call: ") + (written == 0 ? "no certificate written" : "end entity written")];
    } else {
      CHECK_MESSAGE(killed.exit_code == 0, "the run to be killed ended with " << killed.exit_code);
      ++tally.finished_first;
    }
    auto rerun = ws->agent(sim, command);
    CHECK_MESSAGE(rerun.exit_code == 0, "rerun exit " << rerun.exit_code << ": " << rerun.err);
    if (rerun.exit_code == 0) ++tally.reruns_finished;
    const auto objects = ws->objects();
    CHECK(count_objects(objects, certificate, label) == 1);
    const std::size_t keys = count_objects(objects, private_key, label);
    CHECK(keys == 1);
    if (keys != 1) ++tally.extra_keys;
    std::size_t issuing_copies = 0;
    for (const auto& o : objects) {
      if (o.kind == certificate && o.field("subject").find("Random Kill Issuing CA") != std::string::npos) {
        ++issuing_copies;
      }
    }
    CHECK_MESSAGE(issuing_copies == 1, "the intermediate is on the token " << issuing_copies << " times");
  }
  CHECK(sim.audit().empty());
  MESSAGE(tally.report("install (one unkilled run: " + std::to_string(whole.ran.count() / 1000) + " ms, " +
                       std::to_string(points.size()) + " PKCS#11 calls)"));
  CHECK(tally.reruns_finished + tally.module_lost == trials);
  CHECK(tally.killed >= trials / 3);  // the kills did land: most runs were cut short
  CHECK(tally.extra_keys == 0);
}
