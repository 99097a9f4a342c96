// Issue 18, "Crash safety beyond the planned points", for `renew`: a due pair (provisioned
// unkilled), `renew` SIGKILLed at a random delay or a random PKCS#11 call of its run, then the
// same command to completion. Counted as for provision (random_kill.hpp): one reissue per
// renewal job, one key pair left under the label, no job unfinished. Seeded: QSCD_KILL_SEED.
#include "random_kill.hpp"
#include "renew_fixture.hpp"

using namespace qscd::e2e;
using qscd::test::CertCentralSim;

TEST_CASE("randomized kill: renew killed anywhere, the same command finishes with one reissue and one key pair") {
  const std::uint64_t seed = kill_seed() + 2;
  MESSAGE("seed " << seed - 2 << " (+2 for renew)");
  std::mt19937_64 rng(seed);
  std::vector<std::string> options = short_lived;
  options.insert(options.end(), {"--no-request-limits", "--slow-ms", "10"});
  CertCentralSim sim(options);
  auto renew_args = [](const Workspace& ws) {
    return std::vector<std::string>{"--json", "renew", "--token", std::string("pkcs11:token=") + token_label,
                                    "--pin-source", "file:" + ws.path("pin"), "--timeout", "60s"};
  };

  std::chrono::microseconds whole{};
  std::vector<std::string> points;
  {
    Workspace ws;
    ws.use_module(shim_module());
    provision_pair(ws, sim);
    const std::string calls = ws.path("calls");
    const KilledRun run = run_killed(ws.agent_argv(sim, renew_args(ws)), ws.agent_env({{"QSCD_SHIM_COUNT_FILE", calls}}), std::nullopt);
    REQUIRE(run.exit_code == 0);
    whole = run.ran;
    points = kill_points(calls);
  }
  REQUIRE(points.size() > 10);

  KillTally tally;
  constexpr int trials = 22;
  for (int trial = 0; trial < trials; ++trial) {
    Workspace ws;
    ws.use_module(shim_module());
    const std::string old_id = provision_pair(ws, sim);
    const std::size_t audit_from = settled_audit(sim).size();
    std::map<std::string, std::string> env = ws.agent_env();
    std::optional<std::chrono::microseconds> delay;
    std::string how;
    if (std::uniform_int_distribution<int>(0, 3)(rng) == 0) {
      const std::string& point = points[std::uniform_int_distribution<std::size_t>(0, points.size() - 1)(rng)];
      env["QSCD_SHIM_KILL"] = point;
      how = "at " + point;
    } else {
      delay = std::chrono::microseconds(std::uniform_int_distribution<long>(0, whole.count())(rng));
      how = "after " + std::to_string(delay->count()) + " us";
    }
    INFO("trial " << trial << ", killed " << how);
    ++tally.trials;
    const KilledRun killed = run_killed(ws.agent_argv(sim, renew_args(ws)), env, delay);
    if (killed.exit_code == killed_by_sigkill) {
      ++tally.killed;
      if (const auto cut = softhsm_cut_files(); !cut.empty()) {
        ++tally.module_lost;
        ++tally.landed[std::string(delay ? "delay: " : "PKCS#11 call: ") + "inside SoftHSM2's rewrite of " + cut.front()];
        continue;
      }
      auto listed = ws.agent(sim, {"--json", "jobs"});
      REQUIRE(listed.exit_code == 0);
      const json jobs = json::parse(listed.out)["jobs"];
      const std::string state = jobs.size() < 2 ? std::string("no renewal job yet") : jobs.back().value("state", "");
      ++tally.landed[(delay ? "delay: " : "PKCS#11 call: ") + state];
    } else {
      CHECK_MESSAGE(killed.exit_code == 0, "the run to be killed ended with " << killed.exit_code);
      ++tally.finished_first;
    }

    auto rerun = renew(ws, sim);
    CHECK_MESSAGE(rerun.exit_code == 0, "rerun exit " << rerun.exit_code << ": " << rerun.err);
    if (rerun.exit_code == 0) ++tally.reruns_finished;
    const auto audit = settled_audit(sim);
    const std::size_t reissues = placed_since(audit, audit_from, "/reissue");
    CHECK(reissues == 1);
    CHECK(placed_since(audit, audit_from, "/order/certificate/ssl_basic") == 0);
    if (reissues != 1) ++tally.extra_orders;
    const auto objects = ws.objects();
    const std::size_t keys = count_objects(objects, private_key);
    CHECK(keys == 1);
    CHECK(count_objects(objects, certificate, pair_label) == 1);
    const TokenObject* key = find_object(objects, private_key, pair_label);
    CHECK((key != nullptr && lower(key->field("ID")) != old_id));
    if (keys != 1) ++tally.extra_keys;
    auto listed = ws.agent(sim, {"--json", "jobs"});
    REQUIRE(listed.exit_code == 0);
    const json jobs = json::parse(listed.out)["jobs"];  // a copy: a range-for over a temporary's member dangles
  for (const auto& job : jobs) {
      if (job.value("state", "") != "MONITORING") ++tally.stuck;
    }
  }
  MESSAGE(tally.report("renew (one unkilled run: " + std::to_string(whole.count() / 1000) + " ms, " + std::to_string(points.size()) +
                       " PKCS#11 calls)"));
  CHECK(tally.reruns_finished + tally.module_lost == trials);
  CHECK(tally.killed >= trials / 3);  // the kills did land: most runs were cut short
  CHECK(tally.extra_orders == 0);
  CHECK(tally.extra_keys == 0);
  CHECK(tally.stuck == 0);
}
