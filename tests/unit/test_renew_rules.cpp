// The renewal rules without a token or a CA: when a certificate is due, which way it renews,
// and the post-install hook's contract (environment, output, time limit).
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include <signal.h>
#include <unistd.h>

#include <random>
#include <set>

#include "base/log.hpp"
#include "hooks/post_install.hpp"
#include "renew/due.hpp"
#include "scratch_dir.hpp"
#include "watch/schedule.hpp"

using namespace qscd::agent;
using std::chrono::hours;

namespace {

constexpr hours day{24};
const SystemTime now = std::chrono::system_clock::from_time_t(1'800'000'000);

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("due: the window is --within, or a third of the lifetime when that is shorter") {
  SUBCASE("a 1-year certificate with 29 days left is due in the 30-day window") {
    DueVerdict v = renewal_due(now - 336 * day, now + 29 * day, now, 30);
    CHECK(v.due);
    CHECK(v.window_days == doctest::Approx(30));
    CHECK(v.why.find("30-day renewal window") != std::string::npos);
  }
  SUBCASE("with 31 days left it is not due, and says when it will be") {
    DueVerdict v = renewal_due(now - 334 * day, now + 31 * day, now, 30);
    CHECK_FALSE(v.due);
    CHECK(v.days_left == doctest::Approx(31));
    CHECK(v.why.find("due in 1.0 days") != std::string::npos);
  }
  SUBCASE("a 10-day certificate: the window is 3.3 days, whatever --within says") {
    CHECK_FALSE(renewal_due(now - 6 * day, now + 4 * day, now, 30).due);
    DueVerdict v = renewal_due(now - 7 * day, now + 3 * day, now, 30);
    CHECK(v.due);
    CHECK(v.window_days == doctest::Approx(10.0 / 3.0));
    CHECK(v.why.find("a third of its 10.0-day lifetime") != std::string::npos);
  }
  SUBCASE("a smaller --within wins over a third of the lifetime") {
    CHECK_FALSE(renewal_due(now - 300 * day, now + 20 * day, now, 10).due);
    CHECK(renewal_due(now - 300 * day, now + 10 * day, now, 10).due);  // at most the window: due
  }
  SUBCASE("an expired certificate is due") {
    DueVerdict v = renewal_due(now - 20 * day, now - 2 * day, now, 30);
    CHECK(v.due);
    CHECK(v.days_left < 0);
    CHECK(v.why.find("expired 2.0 days ago") != std::string::npos);
  }
}

TEST_CASE("order_valid_till: a date is the end of that UTC day; a time is that time; anything else is not a date") {
  auto date = parse_valid_till("2027-01-15");
  REQUIRE(date);
  CHECK(iso_utc(*date) == "2027-01-15T23:59:59Z");
  auto time = parse_valid_till("2027-01-15T10:20:30+00:00");
  REQUIRE(time);
  CHECK(iso_utc(*time) == "2027-01-15T10:20:30Z");
  CHECK_FALSE(parse_valid_till(""));
  CHECK_FALSE(parse_valid_till("15-01-2027"));
  CHECK_FALSE(parse_valid_till("2027-13-01"));
  CHECK_FALSE(parse_valid_till("2027-1-5"));
  CHECK_FALSE(parse_valid_till("2027-01-15 garbage"));
}

TEST_CASE("renewal path: reissue while the order outlasts a new certificate, else a new order") {
  const std::chrono::seconds year = std::chrono::duration_cast<std::chrono::seconds>(365 * day);
  CHECK(renewal_path_for(now + 400 * day, year, now) == RenewalPath::reissue);
  CHECK(renewal_path_for(now + year, year, now) == RenewalPath::reissue);
  CHECK(renewal_path_for(now + 364 * day, year, now) == RenewalPath::new_order);
  CHECK(renewal_path_for(now - day, year, now) == RenewalPath::new_order);
}

TEST_CASE("post-install hook: the job's facts in a clean environment, output to stderr, a time limit") {
  ScratchDir dir;
  const auto seen = dir.path() / "env";
  InstalledEvent event{"pkcs11:token=t;id=%01;object=k", "0A1B", "2027-01-15T10:20:30Z", "serial1", 42, "renewal"};
  setenv("QSCD_TEST_SECRET_IN_AGENT_ENV", "must-not-leak", 1);

  SUBCASE("it sees the QSCD_* facts and PATH, nothing of the agent's environment") {
    HookRun run = run_post_install({"env > '" + seen.string() + "'", std::chrono::seconds(10)}, event);
    CHECK(run.succeeded());
    CHECK(run.summary == "exit 0");
    const std::string env = slurp(seen);
    CHECK(env.find("QSCD_KEY_URI=pkcs11:token=t;id=%01;object=k\n") != std::string::npos);
    CHECK(env.find("QSCD_CERT_SERIAL=0A1B\n") != std::string::npos);
    CHECK(env.find("QSCD_CERT_NOT_AFTER=2027-01-15T10:20:30Z\n") != std::string::npos);
    CHECK(env.find("QSCD_TOKEN_SERIAL=serial1\n") != std::string::npos);
    CHECK(env.find("QSCD_JOB_ID=42\n") != std::string::npos);
    CHECK(env.find("QSCD_JOB_KIND=renewal\n") != std::string::npos);
    CHECK(env.find("PATH=") != std::string::npos);
    CHECK(env.find("must-not-leak") == std::string::npos);
  }
  SUBCASE("its exit status is reported, not thrown") {
    HookRun run = run_post_install({"exit 3", std::chrono::seconds(10)}, event);
    CHECK(run.started);
    CHECK_FALSE(run.succeeded());
    CHECK(run.exit_status == 3);
    CHECK(run.summary == "exit 3");
  }
  SUBCASE("a hook past its time limit is killed, with what it started") {
    const auto pid_file = dir.path() / "child";
    const auto start = std::chrono::steady_clock::now();
    HookRun run = run_post_install({"sleep 30 & echo $! > '" + pid_file.string() + "'; wait", std::chrono::seconds(1)}, event);
    CHECK(run.timed_out);
    CHECK_FALSE(run.succeeded());
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(15));
    const int child = std::stoi(slurp(pid_file));
    // The whole process group went: the backgrounded sleep too (give the kernel a moment to reap).
    bool gone = false;
    for (int i = 0; i < 50 && !gone; ++i) {
      gone = kill(child, 0) != 0 || slurp("/proc/" + std::to_string(child) + "/stat").find(") Z ") != std::string::npos;
      if (!gone) usleep(20000);
    }
    CHECK(gone);
  }
  unsetenv("QSCD_TEST_SECRET_IN_AGENT_ENV");
}

TEST_CASE("watch: the renewal check comes every check_every plus up to a tenth of it, at most an hour, of jitter") {
  std::mt19937_64 random(42);
  std::set<std::int64_t> seen;
  for (int i = 0; i < 200; ++i) {
    const auto daily = renewal_check_delay(std::chrono::seconds(86400), random).count();
    CHECK(daily >= 86400);
    CHECK(daily <= 86400 + 3600);
    seen.insert(daily);
    const auto hourly = renewal_check_delay(std::chrono::seconds(3600), random).count();
    CHECK(hourly >= 3600);
    CHECK(hourly <= 3960);
  }
  CHECK(seen.size() > 100);  // spread, not a fixed offset
  CHECK(renewal_check_delay(std::chrono::seconds(5), random).count() == 5);
}

TEST_CASE("log: a message of several lines is one journald line") {
  CHECK(single_line("candidates:\n  a\n  b\n") == "candidates:;   a;   b");
  CHECK(single_line("one") == "one");
}
