// The simulator's request handling (tests/certcentral-sim/service.cpp) on any bytes a client can
// send. The simulator runs in this process on a plain-HTTP loopback port (the routes, the state
// file and the audit log are those of the HTTPS binary); the input is written raw to a new
// connection, then the write side is closed. Findings: a crash, an answer that is not HTTP, a
// 500 (an exception inside a route), and poisoning: after every input, known-good requests (the
// organizations, the order list, the first listed order) must still get their documented
// answers; every 500 inputs a second simulator loads the state file the first one wrote and must
// answer them too.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "service.hpp"

namespace {

namespace fs = std::filesystem;

// The key the seeds in corpus/fuzz_sim_request carry as X-DC-DEVKEY.
constexpr const char* api_key = "fuzz-sim-api-key";

[[noreturn]] void finding(const std::string& what, const std::string& answer) {
  std::fprintf(stderr, "fuzz_sim_request: %s\n--- answer ---\n%s\n", what.c_str(), answer.substr(0, 2000).c_str());
  std::abort();
}

// One simulator on 127.0.0.1 with its own state folder, served by a thread.
class RunningSim {
 public:
  explicit RunningSim(const fs::path& dir) {
    sim::Options options;
    options.state_dir = dir;
    options.api_key = api_key;
    options.no_request_limits = true;  // the fuzzer outruns CertCentral's 100 requests / 5 s
    options.auto_approve = true;       // orders walk on to issued: the certificate code runs too
    service_ = std::make_unique<sim::Service>(options, sim::load_or_create(dir));
    service_->install(server_);
    server_.set_read_timeout(2, 0);
    server_.set_keep_alive_max_count(1000);
    // As main.cpp: without it the body of each keep-alive answer waits for a delayed ACK (40 ms).
    server_.set_tcp_nodelay(true);
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) finding("cannot listen on loopback", "");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_read_timeout(10, 0);
    client_->set_keep_alive(true);
    client_->set_tcp_nodelay(true);
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // stop() needs it running
  }
  ~RunningSim() {
    client_.reset();
    server_.stop();
    thread_.join();
  }
  RunningSim(const RunningSim&) = delete;
  RunningSim& operator=(const RunningSim&) = delete;

  [[nodiscard]] int port() const { return port_; }
  // A keep-alive client for the known-good requests.
  [[nodiscard]] httplib::Client& client() { return *client_; }

 private:
  httplib::Server server_;
  std::unique_ptr<sim::Service> service_;
  int port_ = 0;
  std::thread thread_;
  std::unique_ptr<httplib::Client> client_;
};

// Writes `request` on a new connection, closes the write side, reads the answer to the end.
std::string exchange(int port, const std::uint8_t* data, std::size_t size) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) finding("socket() failed", "");
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    finding("cannot connect to the simulator", "");
  }
  std::size_t sent = 0;
  while (sent < size) {
    const ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the simulator may close early on a request it cannot read
    sent += static_cast<std::size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  std::string answer;
  char buffer[16384];
  for (;;) {
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    answer.append(buffer, static_cast<std::size_t>(n));
  }
  close(fd);
  return answer;
}

// Known-good requests with their documented answers: any other answer means the simulator was
// poisoned by what came before.
void check_not_poisoned(httplib::Client& client, const char* when) {
  const httplib::Headers headers = {{"X-DC-DEVKEY", api_key}};
  auto organizations = client.Get(std::string(sim::prefix) + "/organization", headers);
  if (!organizations || organizations->status != 200) {
    finding(std::string("GET /organization fails ") + when, organizations ? organizations->body : "no answer");
  }
  auto orders = client.Get(std::string(sim::prefix) + "/order/certificate?limit=5", headers);
  if (!orders || orders->status != 200) {
    finding(std::string("GET /order/certificate fails ") + when, orders ? orders->body : "no answer");
  }
  const nlohmann::json list = nlohmann::json::parse(orders->body, nullptr, false);
  if (list.is_discarded() || !list.contains("orders") || !list["orders"].is_array()) {
    finding(std::string("GET /order/certificate is not the documented list ") + when, orders->body);
  }
  for (const auto& order : list["orders"]) {
    if (!order.is_object() || !order.contains("id") || !order["id"].is_number_integer()) {
      finding(std::string("a listed order has no numeric id ") + when, orders->body);
    }
  }
  if (!list["orders"].empty()) {  // the first listed order, as order info
    const std::string id = std::to_string(list["orders"][0]["id"].get<std::int64_t>());
    auto info = client.Get(std::string(sim::prefix) + "/order/certificate/" + id, headers);
    if (!info || info->status != 200) finding(std::string("GET /order/certificate/") + id + " fails " + when, info ? info->body : "no answer");
  }
}

struct Fixture {
  fs::path dir;
  std::unique_ptr<RunningSim> sim;
  long inputs = 0;

  Fixture() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/fuzz-sim-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) finding("mkdtemp failed", "");
    dir = pattern;
    sim = std::make_unique<RunningSim>(dir);
  }
  // At exit (libFuzzer ends with exit()): the state folder is scratch; the corpus holds what is
  // worth keeping. A crash leaves it for the post-mortem.
  ~Fixture() {
    sim.reset();
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  static Fixture& instance() {
    static Fixture fixture;
    return fixture;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Fixture& fixture = Fixture::instance();
  const std::string answer = exchange(fixture.sim->port(), data, size);
  // A request httplib could not read may be dropped without an answer; one that was answered
  // starts with the status line.
  if (!answer.empty() && !answer.starts_with("HTTP/1.1 ")) finding("the answer is not HTTP", answer);
  if (answer.find("HTTP/1.1 500") != std::string::npos) finding("an exception inside a route (500)", answer);
  check_not_poisoned(fixture.sim->client(), "after this input");
  if (++fixture.inputs % 500 == 0) {
    // The state file as written so far, loaded by a fresh simulator in the same folder.
    fixture.sim.reset();
    fixture.sim = std::make_unique<RunningSim>(fixture.dir);
    check_not_poisoned(fixture.sim->client(), "after a restart on the state file of the last inputs");
  }
  return 0;
}
