// The renewal kill matrix: `renew` SIGKILLed at every step boundary of a renewal job, then run
// again. The job must finish with exactly one reissue at the CA, one key pair on the token (the
// new one) and, until the new pair is verified, the old pair usable.
#include "renew_fixture.hpp"

using namespace qscd::e2e;
using qscd::test::CertCentralSim;

TEST_CASE("the renewal kill matrix: killed at every step, the same command finishes with one reissue") {
  struct CrashPoint {
    const char* name;
    std::size_t reissues_before_resume;
  };
  const CrashPoint points[] = {
      {"GENERATING_KEY_PAIR", 0}, {"GENERATING_KEY_PAIR:generated", 0}, {"HAVE_KEY_PAIR", 0}, {"NEED_CSR", 0},
      {"HAVE_CSR", 0},            {"NEED_TO_SUBMIT", 0},                {"SUBMITTING", 0},    {"SUBMITTING:posted", 1},
      {"CA_WORKING", 1},          {"NEED_TO_INSTALL", 1},               {"INSTALLING", 1},    {"RETIRING_OLD", 1},
      {"MONITORING", 1},
  };
  constexpr int killed_by_sigkill = 128 + 9;
  for (const CrashPoint& point : points) {
    INFO("crash point ", std::string(point.name));
    CertCentralSim sim(short_lived);
    Workspace ws;
    const std::string old_id = provision_pair(ws, sim);

    auto killed = renew(ws, sim, {}, point.name);
    CHECK_MESSAGE(killed.exit_code == killed_by_sigkill, "exit " << killed.exit_code << "\n" << killed.err);
    if (killed.exit_code != killed_by_sigkill) continue;
    CHECK(reissue_posts(sim).size() == point.reissues_before_resume);
    // Until the new pair is verified, the old one is whole.
    if (std::string_view(point.name) != "MONITORING") CHECK(pair_signs(ws, old_id));

    auto resumed = renew(ws, sim);
    CHECK_MESSAGE(resumed.exit_code == 0, "exit " << resumed.exit_code << "\nstdout: " << resumed.out << "\nstderr: " << resumed.err);
    if (resumed.exit_code != 0) continue;
    CHECK(reissue_posts(sim).size() == 1);
    CHECK(order_posts(sim, "ssl_basic").size() == 1);
    auto objects = ws.objects();
    CHECK(count_objects(objects, private_key) == 1);
    CHECK(count_objects(objects, public_key, pair_label) == 1);
    CHECK(count_objects(objects, certificate, pair_label) == 1);
    const TokenObject* key = find_object(objects, private_key, pair_label);
    CHECK((key != nullptr && lower(key->field("ID")) != old_id));
    if (key != nullptr) CHECK(pair_signs(ws, lower(key->field("ID"))));
  }
}
