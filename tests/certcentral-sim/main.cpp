// certcentral-sim: a local HTTPS stand-in for the CertCentral Services API v2, strict by default
// (it refuses what CertCentral documents it refuses, with the documented answer shapes), signing
// real certificates from a test CA, with faults and the real API's rough edges on demand. See
// README.md and docs/api.md ("certcentral-sim").
#include <httplib.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "pki.hpp"
#include "service.hpp"

namespace {

namespace fs = std::filesystem;
using sim::Options;
using sim::prefix;

void write_atomically(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
  }
  fs::rename(tmp, path);
}

}  // namespace
int main(int argc, char** argv) {
  Options options;
  CLI::App app{"certcentral-sim: a local HTTPS CertCentral Services API v2 for tests", "certcentral-sim"};
  app.add_option("--state-dir", options.state_dir, "folder for the test CA, port, audit log and orders")->required();
  app.add_option("--port", options.port, "TCP port on 127.0.0.1; 0 picks a free one (written to STATE_DIR/port)");
  app.add_option("--api-key", options.api_key, "the accepted X-DC-DEVKEY (test keys only)")->required();
  app.add_option("--fail-429-every", options.fail_429_every, "answer every Nth request with 429 request_limit_exceeded");
  app.add_option("--fail-5xx-every", options.fail_5xx_every, "answer every Nth request with a 503 HTML page");
  app.add_option("--slow-ms", options.slow_ms, "delay every answer by this many milliseconds");
  app.add_option("--truncate-json-every", options.truncate_json_every, "cut every Nth JSON answer in half");
  app.add_option("--reject-cn", options.reject_cn, "reject orders for this common name (repeatable)");
  app.add_flag("--wrong-key", options.wrong_key, "issue certificates for a different key than the CSR's");
  app.add_flag("--foreign-chain", options.foreign_chain, "issue from a CA under a root nobody trusts");
  app.add_option("--seal-level", options.seal_level,
                 "issue every seal certificate as qcp-l (QCP-l, no QcSSCD) or none (no policy, no qcStatements)")
      ->check(CLI::IsMember({"qcp-l", "none"}));
  app.add_option("--issue-after-polls", options.issue_after_polls, "stay pending for N looks at the order");
  app.add_option("--issue-after-ms", options.issue_after_ms, "stay pending for at least this long");
  app.add_option("--validity-days", options.validity_days, "certificate validity in days (short for renewal tests)");
  app.add_option("--backdate-days", options.backdate_days, "certificates of new orders start this many days ago (near their end: renewal tests); reissues start now");
  app.add_option("--order-valid-days", options.order_valid_days, "order_valid_till is today plus this many days (renewal needs a new order)");
  app.add_flag("--auto-approve", options.auto_approve, "approve every request at once");
  app.add_flag("--no-request-limits", options.no_request_limits,
               "do not answer 429 past CertCentral's 100 requests / 5 s and 1000 / 3 min (benchmarks)");
  app.add_option("--lifetime", options.lifetime_s, "stop by itself after this many seconds (default 3600)");
  app.add_option("--retry-after", options.retry_after_s, "send Retry-After: N with injected 429 answers");
  app.add_option("--pickup-path", options.pickup_path, "path of the assumed QSCD pickup step");
  app.add_flag("--lenient", options.lenient, "skip the product rules (key types, CSR or QSCD, profile options); for experiments only");
  app.add_flag("--chain-in-post", options.chain_in_post, "certificate_chain in the POST answer of an order issued at once");
  app.add_flag("--repeat-certificate", options.repeat_certificate, "PEM downloads carry the end-entity certificate twice");
  app.add_flag("--ids-as-strings", options.ids_as_strings, "every id in an answer as a JSON string");
  app.add_flag("--extra-fields", options.extra_fields, "an unknown field in every JSON object of every answer");
  app.add_flag("--certificate-id-on-approval", options.certificate_id_on_approval,
               "certificate_id in the POST answer once the request is approved, before the certificate is issued");
  CLI11_PARSE(app, argc, argv);

  // SIGTERM/SIGINT are taken by one thread with sigwait; no handler runs inside the server.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  try {
    fs::create_directories(options.state_dir);
    sim::Hierarchy pki = sim::load_or_create(options.state_dir);
    httplib::SSLServer server(pki.tls.cert.get(), pki.tls.key.get());
    if (!server.is_valid()) {
      std::cerr << "certcentral-sim: TLS setup failed\n";
      return 1;
    }
    sim::Service simulator(options, std::move(pki));
    simulator.install(server);
    server.set_read_timeout(10, 0);
    server.set_write_timeout(10, 0);
    // httplib writes the headers and the body apart; without TCP_NODELAY the body waits for the
    // client's delayed ACK (40 ms on Linux) on every answer, which no real API adds.
    server.set_tcp_nodelay(true);
    int port = options.port;
    if (port == 0) {
      port = server.bind_to_any_port("127.0.0.1");
    } else if (!server.bind_to_port("127.0.0.1", port)) {
      port = -1;
    }
    if (port <= 0) {
      std::cerr << "certcentral-sim: cannot listen on 127.0.0.1:" << options.port << '\n';
      return 1;
    }
    write_atomically(options.state_dir / "pid", std::to_string(getpid()) + "\n");
    write_atomically(options.state_dir / "url", "https://127.0.0.1:" + std::to_string(port) + prefix + "\n");
    write_atomically(options.state_dir / "port", std::to_string(port) + "\n");  // last: tells waiters we are up

    std::thread stopper([&server, &stop_signals, lifetime = options.lifetime_s] {
      timespec timeout{lifetime, 0};
      sigtimedwait(&stop_signals, nullptr, &timeout);
      server.stop();
    });
    server.listen_after_bind();
    pthread_kill(stopper.native_handle(), SIGTERM);  // listen ended on its own: release the stopper
    stopper.join();
  } catch (const std::exception& e) {
    std::cerr << e.what() << '\n';
    return 1;
  }
  return 0;
}
