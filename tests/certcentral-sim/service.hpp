#pragma once
// The simulator's request handling, apart from its HTTPS listener and command line (main.cpp):
// a Service installs every route on an httplib server, so the fuzz target (tests/fuzz) can serve
// it over plain loopback HTTP in its own process.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "pki.hpp"

namespace httplib {
class Server;
}

namespace sim {

constexpr const char* prefix = "/services/v2";

struct Options {
  std::filesystem::path state_dir;
  int port = 0;
  std::string api_key;
  int fail_429_every = 0;
  int fail_5xx_every = 0;
  int slow_ms = 0;
  int truncate_json_every = 0;
  std::vector<std::string> reject_cn;
  bool wrong_key = false;
  bool foreign_chain = false;
  std::string seal_level;  // --seal-level: every seal certificate at this level instead
  int issue_after_polls = 0;
  int issue_after_ms = 0;
  int validity_days = 0;  // 0: from the order (years/days), else this
  int backdate_days = 0;  // certificates start this many days ago (renewal tests)
  int order_valid_days = 0;  // 0: order_valid_till from order_validity, else today + this
  bool auto_approve = false;
  bool no_request_limits = false;  // benchmarks: a fast loop outruns 100 requests / 5 s
  int lifetime_s = 3600;
  int retry_after_s = 0;  // >0: 429 answers carry Retry-After (not documented by CertCentral)
  std::string pickup_path = "/order/certificate/{order_id}/pickup";
  bool lenient = false;  // skip the product rules (key type, CSR/QSCD, profile option); types are still checked
  // The real API's rough edges, each off unless a test turns it on.
  bool chain_in_post = false;           // certificate_chain in the POST answer of an order issued at once
  bool repeat_certificate = false;      // PEM downloads carry the end entity twice
  bool ids_as_strings = false;          // every id in an answer as a JSON string
  bool extra_fields = false;            // an unknown field in every JSON object of an answer
  bool certificate_id_on_approval = false;  // certificate_id in the POST answer once approved, issued or not
};

class Service {
 public:
  // Loads DIR/orders.jsonl (options.state_dir); `pki` signs the orders.
  Service(Options options, Hierarchy pki);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Every route, the error and exception handlers and the audit logger.
  void install(httplib::Server& server);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sim
