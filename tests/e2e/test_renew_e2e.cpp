// `qscd-agent renew` end to end: a certificate provisioned by the agent from a simulator that
// issues short-lived, backdated certificates (10 days, started 8 days ago: 2 days left, due in
// a window of a third of the lifetime), then renewed. Independent readers check the token
// (pkcs11-tool), the CA (the simulator's audit and orders) and the signature of the old pair.
#include "renew_fixture.hpp"

using namespace qscd::e2e;
using qscd::test::CertCentralSim;

TEST_CASE("renew: a due certificate is reissued on a new key; the old pair is removed after the new one is verified") {
  CertCentralSim sim(short_lived);
  Workspace ws;
  // The post-install hook: one line per installed certificate.
  const std::string hook_log = ws.path("hook.log");
  ws.write("agent.toml", "[hooks]\npost_install = \"echo \\\"$QSCD_JOB_KIND $QSCD_CERT_SERIAL\\\" >> '" + hook_log + "'\"\n");
  const std::string old_id = provision_pair(ws, sim);
  const std::string old_serial = certificate_serial(ws.objects(), old_id);
  REQUIRE_FALSE(old_serial.empty());

  auto renewed = renew(ws, sim);
  REQUIRE_MESSAGE(renewed.exit_code == 0, renewed.err);
  json c = only_certificate(renewed);
  CHECK(c["due"] == true);
  CHECK(c["action"] == "reissue");
  CHECK(c["state"] == "MONITORING");
  CHECK(c["order_id"].is_number_integer());

  // One reissue of the order that issued the old certificate, and no new order.
  auto reissues = reissue_posts(sim);
  REQUIRE(reissues.size() == 1);
  CHECK(as_text(reissues[0]["order_id"]) == as_text(c["order_id"]));
  CHECK(order_posts(sim, "ssl_basic").size() == 1);  // the provisioning's

  const std::string new_id = id_of_uri(c["new_key_uri"].get<std::string>());
  CHECK(new_id != old_id);
  auto objects = ws.objects();
  CHECK(count_objects(objects, private_key) == 1);
  CHECK(count_objects(objects, private_key, pair_label) == 1);
  CHECK(count_objects(objects, public_key, pair_label) == 1);
  CHECK(count_objects(objects, certificate, pair_label) == 1);
  CHECK(lower(find_object(objects, private_key, pair_label)->field("ID")) == new_id);
  const std::string new_serial = certificate_serial(objects, new_id);
  CHECK(new_serial == normal_hex(c["new_certificate_serial"].get<std::string>()));
  CHECK(new_serial != old_serial);
  CHECK(pair_signs(ws, new_id));
  CHECK_FALSE(pair_signs(ws, old_id));  // gone

  // The hook ran once for the provisioning and once for the renewal, with their serials.
  std::istringstream hook_lines(qscd::test::slurp(hook_log));
  std::vector<std::string> hooks;
  for (std::string line; std::getline(hook_lines, line);) hooks.push_back(line);
  REQUIRE(hooks.size() == 2);
  CHECK(hooks[0].starts_with("provision "));
  CHECK(normal_hex(hooks[0].substr(10)) == old_serial);
  CHECK(hooks[1].starts_with("renewal "));
  CHECK(normal_hex(hooks[1].substr(8)) == new_serial);

  // The renewal is a journaled job of its own; run again, nothing is due and nothing changes.
  const std::size_t changes = changing_requests(sim);
  auto again = renew(ws, sim);
  REQUIRE_MESSAGE(again.exit_code == 0, again.err);
  json second = only_certificate(again);
  CHECK(second["due"] == false);
  CHECK(second["action"] == "none");
  CHECK(changing_requests(sim) == changes);
  CHECK(ws.objects().size() == objects.size());
  CHECK(qscd::test::slurp(hook_log) == hooks[0] + "\n" + hooks[1] + "\n");  // nothing installed, no hook
}

TEST_CASE("renew --dry-run lists what is due and what would be done, and changes nothing") {
  CertCentralSim sim(short_lived);
  Workspace ws;
  provision_pair(ws, sim);
  const auto before = ws.listing();
  const std::size_t changes = changing_requests(sim);

  auto listed = renew(ws, sim, {"--dry-run"});
  REQUIRE_MESSAGE(listed.exit_code == 0, listed.err);
  json c = only_certificate(listed);
  CHECK(c["due"] == true);
  CHECK(c["action"] == "reissue");
  CHECK(c["days_left"].get<double>() < 2.1);
  CHECK(c["why"].get<std::string>().find("a third of its") != std::string::npos);
  CHECK(c["detail"].get<std::string>().find("reissue of order") != std::string::npos);
  CHECK_FALSE(c.contains("job_id"));
  CHECK(ws.listing() == before);
  CHECK(changing_requests(sim) == changes);
  auto jobs = ws.agent(sim, {"--json", "jobs"});
  CHECK(json::parse(jobs.out)["jobs"].size() == 1);  // the provisioning alone
}

TEST_CASE("renew: a certificate with most of its life left is not due; --within cannot stretch past a third of the lifetime") {
  CertCentralSim sim({"--auto-approve", "--validity-days", "10"});
  Workspace ws;
  provision_pair(ws, sim);
  const auto before = ws.listing();
  const std::size_t changes = changing_requests(sim);

  auto run = renew(ws, sim, {"--within", "30"});
  REQUIRE_MESSAGE(run.exit_code == 0, run.err);
  json c = only_certificate(run);
  CHECK(c["due"] == false);
  CHECK(c["action"] == "none");
  CHECK(c["window_days"].get<double>() < 3.4);
  CHECK(ws.listing() == before);
  CHECK(changing_requests(sim) == changes);
}

TEST_CASE("renew --keep-old keeps the replaced pair as '<label> (superseded)'; a later renew leaves it alone") {
  CertCentralSim sim(short_lived);
  Workspace ws;
  const std::string old_id = provision_pair(ws, sim);

  auto renewed = renew(ws, sim, {"--keep-old"});
  REQUIRE_MESSAGE(renewed.exit_code == 0, renewed.err);
  const std::string new_id = id_of_uri(only_certificate(renewed)["new_key_uri"].get<std::string>());
  auto objects = ws.objects();
  const std::string superseded = std::string(pair_label) + " (superseded)";
  CHECK(count_objects(objects, private_key, pair_label) == 1);
  CHECK(count_objects(objects, private_key, superseded) == 1);
  CHECK(count_objects(objects, public_key, superseded) == 1);
  CHECK(count_objects(objects, certificate, superseded) == 1);
  CHECK(lower(find_object(objects, private_key, superseded)->field("ID")) == old_id);
  CHECK(lower(find_object(objects, private_key, pair_label)->field("ID")) == new_id);
  CHECK(pair_signs(ws, old_id));

  // The superseded pair is not a certificate to renew.
  auto listed = renew(ws, sim, {"--dry-run"});
  REQUIRE_MESSAGE(listed.exit_code == 0, listed.err);
  json c = only_certificate(listed);
  CHECK(id_of_uri(c["key_uri"].get<std::string>()) == new_id);
}

TEST_CASE("renew --reuse-key certifies the same key again: one key pair, the new certificate on it") {
  CertCentralSim sim(short_lived);
  Workspace ws;
  const std::string id = provision_pair(ws, sim);
  const std::string old_serial = certificate_serial(ws.objects(), id);

  auto renewed = renew(ws, sim, {"--reuse-key"});
  REQUIRE_MESSAGE(renewed.exit_code == 0, renewed.err);
  json c = only_certificate(renewed);
  CHECK(id_of_uri(c["new_key_uri"].get<std::string>()) == id);
  auto objects = ws.objects();
  CHECK(count_objects(objects, private_key) == 1);
  CHECK(count_objects(objects, certificate, pair_label) == 1);
  const std::string new_serial = certificate_serial(objects, id);
  CHECK_FALSE(new_serial.empty());
  CHECK(new_serial != old_serial);
  CHECK(reissue_posts(sim).size() == 1);
  CHECK(pair_signs(ws, id));

  auto refused = renew(ws, sim, {"--reuse-key", "--keep-old"});
  CHECK(refused.exit_code == 2);
}

TEST_CASE("a failed reissue leaves the old pair intact and usable, and removes the pair it made; the next run renews") {
  CertCentralSim sim(short_lived);
  Workspace ws;
  const std::string old_id = provision_pair(ws, sim);
  const auto before = ws.objects();

  // The CA issues the reissue for another key: the agent refuses to install it.
  sim.restart([] {
    auto args = short_lived;
    args.emplace_back("--wrong-key");
    return args;
  }());
  auto failed = renew(ws, sim);
  CHECK(failed.exit_code == 4);
  json c = only_certificate(failed);
  CHECK(c["state"] == "FAILED");
  CHECK(c["new_key_uri"].is_null());
  auto objects = ws.objects();
  CHECK(objects.size() == before.size());
  CHECK(count_objects(objects, private_key) == 1);
  CHECK(lower(find_object(objects, private_key, pair_label)->field("ID")) == old_id);
  CHECK(count_objects(objects, certificate, pair_label) == 1);
  CHECK(pair_signs(ws, old_id));

  // The CA mended: the same command renews, with a new job and one more reissue.
  sim.restart(short_lived);
  auto renewed = renew(ws, sim);
  REQUIRE_MESSAGE(renewed.exit_code == 0, renewed.err);
  json done = only_certificate(renewed);
  CHECK(done["state"] == "MONITORING");
  CHECK(done["job_id"] != c["job_id"]);
  CHECK(reissue_posts(sim).size() == 2);
  objects = ws.objects();
  CHECK(count_objects(objects, private_key) == 1);
  CHECK(lower(find_object(objects, private_key, pair_label)->field("ID")) == id_of_uri(done["new_key_uri"].get<std::string>()));
}

TEST_CASE("renew when the order ends before a new certificate would: exit 5 and nothing placed without --allow-new-order; with it, one new order") {
  CertCentralSim sim({"--auto-approve", "--validity-days", "10", "--backdate-days", "8", "--order-valid-days", "1"});
  Workspace ws;
  const std::string old_id = provision_pair(ws, sim);
  const auto before = ws.listing();
  const std::size_t changes = changing_requests(sim);

  auto listed = renew(ws, sim, {"--dry-run"});
  REQUIRE_MESSAGE(listed.exit_code == 0, listed.err);
  CHECK(only_certificate(listed)["action"] == "new_order_needed");

  auto stopped = renew(ws, sim);
  CHECK(stopped.exit_code == 5);
  json c = only_certificate(stopped);
  CHECK(c["action"] == "new_order_needed");
  CHECK(c["detail"].get<std::string>().find("--allow-new-order") != std::string::npos);
  CHECK(stopped.err.find("new paid order") != std::string::npos);
  CHECK(ws.listing() == before);
  CHECK(changing_requests(sim) == changes);

  auto renewed = renew(ws, sim, {"--allow-new-order"});
  REQUIRE_MESSAGE(renewed.exit_code == 0, renewed.err);
  json done = only_certificate(renewed);
  CHECK(done["action"] == "new_order");
  CHECK(done["state"] == "MONITORING");
  CHECK(order_posts(sim, "ssl_basic").size() == 2);
  CHECK(reissue_posts(sim).empty());
  // The new order says which one it renews.
  json orders = sim_orders(sim);
  bool renewal_linked = false;
  for (const auto& [id, order] : orders.items()) {
    if (order.contains("renewed_order_id") && as_text(order["renewed_order_id"]) == as_text(c["order_id"])) renewal_linked = true;
  }
  CHECK(renewal_linked);
  auto objects = ws.objects();
  CHECK(count_objects(objects, private_key) == 1);
  CHECK(lower(find_object(objects, private_key, pair_label)->field("ID")) != old_id);
}


TEST_CASE("a key that logs in at every signature (CKA_ALWAYS_AUTHENTICATE): --sign-pin-source in provision and renew; a wrong one is exit 3, never retried") {
  CertCentralSim sim(short_lived);
  Workspace ws;
  const std::string token = std::string("pkcs11:token=") + token_label;
  auto made = ws.agent(sim, {"--json", "keygen", "--token", token, "--pin-source", "file:" + ws.path("pin"), "--key-type", "ec:p256",
                             "--label", pair_label, "--always-authenticate"});
  REQUIRE_MESSAGE(made.exit_code == 0, made.err);
  const std::string key_uri = json::parse(made.out)["uri"].get<std::string>();
  Provision p = quick_job(pair_label);
  p.key_type.clear();
  const std::string wrong = ws.write("wrong-sign-pin", "000000");
  p.extra = {"--key", key_uri, "--sign-pin-source", "file:" + wrong};
  auto refused = ws.provision(sim, p);
  CHECK(refused.exit_code == 3);
  CHECK(refused.err.find("CKR_PIN_INCORRECT") != std::string::npos);
  CHECK(refused.err.find("not retried") != std::string::npos);
  CHECK(refused.err.find("the signature PIN") != std::string::npos);
  p.extra = {"--key", key_uri, "--sign-pin-source", "file:" + ws.path("pin")};
  auto provisioned = ws.provision(sim, p);
  REQUIRE_MESSAGE(provisioned.exit_code == 0, provisioned.err);

  auto renewed = renew(ws, sim, {"--sign-pin-source", "file:" + ws.path("pin")});
  REQUIRE_MESSAGE(renewed.exit_code == 0, renewed.err);
  CHECK(only_certificate(renewed)["state"] == "MONITORING");
  // The new key asks for its PIN at each signature, as the old one did.
  const std::string listing = ws.listing();
  CHECK_MESSAGE(listing.find("always authenticate") != std::string::npos, listing);
}
