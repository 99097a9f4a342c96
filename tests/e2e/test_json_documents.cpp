// --json promises exactly one JSON document on stdout for every run (issue 17, item 4): a table
// over the commands' failure paths, one row per way to end, exit codes 0 to 5.
#include "e2e_fixture.hpp"

using namespace qscd::e2e;
using qscd::test::CertCentralSim;

TEST_CASE("every exit code with --json: one parseable document on stdout, errors carrying their code") {
  CertCentralSim sim;  // no --auto-approve: orders wait for approval (exit 5 rows)
  Workspace ws;
  const std::string token = std::string("pkcs11:token=") + token_label;
  const std::string pin = "file:" + ws.path("pin");
  const std::string wrong_pin = "file:" + ws.write("wrong-pin", "000000");
  const std::string order_file = ws.write("order.json", ssl_order_body("json.example.nl"));

  struct Row {
    const char* name;
    std::vector<std::string> args;
    int exit;
    std::map<std::string, std::string> env = {};
  };
  const std::vector<Row> rows = {
      {"tokens", {"--json", "tokens"}, 0},
      {"a missing required option", {"--json", "keygen", "--label", "x"}, 2},
      {"an unknown flag", {"--json", "tokens", "--colour"}, 2},
      {"an unknown command", {"--json", "provison"}, 2},
      {"an unknown subcommand of order", {"--json", "order", "frobnicate"}, 2},
      {"an unknown job", {"--json", "jobs", "show", "42"}, 2},
      {"a bad duration", {"--json", "order", "wait", "1", "--timeout", "-5m"}, 2},
      {"no such token", {"--json", "keygen", "--token", "pkcs11:token=nosuch", "--key-type", "ec:p256", "--label", "x",
                         "--pin-source", pin}, 3},
      {"a wrong PIN", {"--json", "keygen", "--token", token, "--key-type", "ec:p256", "--label", "x", "--pin-source", wrong_pin}, 3},
      {"an API key CertCentral refuses", {"--json", "orgs"}, 4, {{"CERTCENTRAL_API_KEY", "not-the-key"}}},
      {"an order CertCentral does not have", {"--json", "order", "status", "999999"}, 4},
      {"provision --no-wait before approval",
       {"--json", "provision", "--token", token, "--pin-source", pin, "--profile", "generic", "--product", "ssl_basic",
        "--key-type", "ec:p256", "--label", "waits", "--set", "C=NL", "--set", "O=Voorbeeld BV", "--set", "CN=json.example.nl",
        "--order-file", order_file, "--no-wait"},
       5},
      {"a journal that is not SQLite", {"--json", "jobs"}, 1},
  };
  for (const Row& row : rows) {
    CAPTURE(row.name);
    if (row.exit == 1) {
      // The last row: the journal replaced by text.
      for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(ws.state_dir() + "/journal.sqlite" + suffix);
      std::ofstream(ws.state_dir() + "/journal.sqlite") << "this is not an SQLite database, it is text of some length\n";
    }
    const auto run = ws.agent(sim, row.args, row.env);
    CAPTURE(run.err);
    CHECK(run.exit_code == row.exit);
    json doc = json::parse(run.out, nullptr, false);
    REQUIRE_MESSAGE(!doc.is_discarded(), "stdout is not one JSON document: " << run.out);
    if (row.exit == 0 || row.exit == 5) {
      CHECK_FALSE(doc.contains("error"));
    } else {
      REQUIRE(doc.contains("error"));
      CHECK(doc["error"]["exit_code"] == row.exit);
      CHECK_FALSE(doc["error"].value("message", "").empty());
    }
  }
}
