// SIGINT and SIGTERM while the agent runs (issue 17, item 5): the run stops at its next safe
// point, says so, prints its one --json document, exits 5 when a job is saved (1 when nothing
// was), and the same command afterwards finishes with one order and one key.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "e2e_fixture.hpp"

using namespace qscd::e2e;
using qscd::test::CertCentralSim;
using Clock = std::chrono::steady_clock;

namespace {

// Waits until the running agent has printed `text` on stderr (at most 60 s).
void wait_for_err(const qscd::test::RunningProcess& agent, const std::string& text) {
  const auto until = Clock::now() + std::chrono::seconds(60);
  while (agent.err_so_far().find(text) == std::string::npos) {
    REQUIRE_MESSAGE(Clock::now() < until, "the agent never printed \"" << text << "\"; stderr: " << agent.err_so_far());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

json one_document(const std::string& out) {
  json doc = json::parse(out, nullptr, false);
  REQUIRE_MESSAGE(!doc.is_discarded(), "stdout is not one JSON document: " << out);
  return doc;
}

}  // namespace

TEST_CASE("SIGINT while provision waits for approval: exit 5 at once, the job saved; the same command finishes") {
  CertCentralSim sim;  // no --auto-approve: the order waits in needs_approval
  Workspace ws;
  Provision p = quick_job("sigint");
  auto agent = ws.start_agent(sim, ws.provision_args(p));
  wait_for_err(*agent, "needs_approval");
  const auto signalled = Clock::now();
  agent->signal(SIGINT);
  auto stopped = agent->wait();
  CHECK(Clock::now() - signalled < std::chrono::seconds(5));
  CHECK_MESSAGE(stopped.exit_code == 5, stopped.err);
  json doc = one_document(stopped.out);
  CHECK(doc.value("stopped_by", "") == "SIGINT");
  CHECK(doc.value("state", "") == "CA_WORKING");
  CHECK(doc["order_id"].is_number());
  CHECK(stopped.err.find("run the same command again to continue") != std::string::npos);
  CHECK(order_posts(sim, p.product).size() == 1);

  p.extra = {"--approve"};
  auto finished = ws.provision(sim, p);
  REQUIRE_MESSAGE(finished.exit_code == 0, finished.err);
  CHECK(one_document(finished.out)["job_id"] == doc["job_id"]);
  CHECK(order_posts(sim, p.product).size() == 1);
  const auto objects = ws.objects();
  CHECK(count_objects(objects, "Private Key Object", "sigint") == 1);
  CHECK(count_objects(objects, "Certificate Object", "sigint") == 1);
  // A finished job reads as done for people; --json keeps the state's name.
  CHECK(ws.agent(sim, {"jobs"}).out.find("done (monitoring for renewal)") != std::string::npos);
}

TEST_CASE("SIGTERM while the PIN is being read: exit 1, one JSON document, nothing saved, nothing sent") {
  CertCentralSim sim({"--auto-approve"});
  Workspace ws;
  Provision p = quick_job("sigterm-pin");
  p.pin_source = "fd:3";
  int pin_pipe[2];
  REQUIRE(::pipe2(pin_pipe, O_CLOEXEC) == 0);
  auto agent = ws.start_agent(sim, ws.provision_args(p), {}, pin_pipe[0]);
  ::close(pin_pipe[0]);
  // Nothing is ever written to the pipe: the agent blocks reading the PIN until the signal.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  agent->signal(SIGTERM);
  auto stopped = agent->wait();
  ::close(pin_pipe[1]);
  CHECK_MESSAGE(stopped.exit_code == 1, stopped.err);
  json doc = one_document(stopped.out);
  CHECK(doc["error"].value("stopped_by", "") == "SIGTERM");
  CHECK(doc["error"].value("message", "").find("nothing was saved") != std::string::npos);
  check_untouched(ws, sim);
}

TEST_CASE("a retry pause says why and when without -v; SIGTERM in it stops at once; the rerun places one order") {
  CertCentralSim sim({"--auto-approve", "--fail-429-every", "1", "--retry-after", "30"});
  Workspace ws;
  Provision p = quick_job("sigterm-retry");
  auto agent = ws.start_agent(sim, ws.provision_args(p));
  wait_for_err(*agent, "HTTP 429 (rate limited); attempt 2 of 5 in 30 s");
  const auto signalled = Clock::now();
  agent->signal(SIGTERM);
  auto stopped = agent->wait();
  CHECK(Clock::now() - signalled < std::chrono::seconds(5));
  CHECK_MESSAGE((stopped.exit_code == 5 || stopped.exit_code == 1), stopped.err);
  json doc = one_document(stopped.out);
  const json& where = stopped.exit_code == 5 ? doc : doc["error"];
  CHECK(where.value("stopped_by", "") == "SIGTERM");

  sim.restart({"--auto-approve"});
  auto finished = ws.provision(sim, p);
  REQUIRE_MESSAGE(finished.exit_code == 0, finished.err);
  CHECK(order_posts(sim, p.product).size() == 1);
  CHECK(count_objects(ws.objects(), "Private Key Object", "sigterm-retry") == 1);
}

TEST_CASE("SIGINT during order wait: exit 5 with the order's status document") {
  CertCentralSim sim;
  Workspace ws;
  const std::string order_file = ws.write("order.json", ssl_order_body("wait.example.nl"));
  auto key = qscd::test::make_key("EC");
  const std::string csr = ws.write("wait.csr", qscd::test::make_csr(key.get(), "wait.example.nl"));
  auto submitted = ws.agent(sim, {"--json", "order", "submit", "--product", "ssl_basic", "--csr", csr, "--order-file", order_file});
  REQUIRE_MESSAGE(submitted.exit_code == 0, submitted.err);
  const std::string id = as_text(one_document(submitted.out)["order_id"]);
  auto agent = ws.start_agent(sim, {"--json", "order", "wait", id, "--timeout", "10m"});
  wait_for_err(*agent, "next look in");
  agent->signal(SIGINT);
  auto stopped = agent->wait();
  CHECK_MESSAGE(stopped.exit_code == 5, stopped.err);
  json doc = one_document(stopped.out);
  CHECK(as_text(doc["order_id"]) == id);
  CHECK(doc.value("stopped_by", "") == "SIGINT");
}
