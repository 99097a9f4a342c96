#pragma once
// Shared pieces of the api tests: a fake clock, a client pointed at a running
// certcentral-sim, and order bodies for the products that matter.
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "certcentral_sim.hpp"
#include "qscd/api/client.hpp"
#include "test_pki.hpp"

namespace qscd::test {

// Time that only moves when someone sleeps; records every sleep.
class FakeClock final : public api::Clock {
 public:
  [[nodiscard]] time_point now() const override {
    std::lock_guard lock(mutex_);
    last_seen() = now_;
    return now_;
  }
  // A thread that read T and sleeps d wakes at T + d, as with real time: threads sleeping at once
  // do not add their sleeps up (which made 4 threads' waits overshoot under load).
  void sleep_for(duration how_long) override {
    std::lock_guard lock(mutex_);
    sleeps.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(how_long));
    // A thread that has not read the clock since its last sleep sleeps from now.
    now_ = std::max(now_, last_seen().value_or(now_) + how_long);
    last_seen().reset();
  }
  std::vector<std::chrono::milliseconds> sleeps;

 private:
  // What this thread last read, until it sleeps.
  static std::optional<time_point>& last_seen() {
    thread_local std::optional<time_point> seen;
    return seen;
  }

  mutable std::mutex mutex_;
  time_point now_{std::chrono::hours(1000)};
};

inline api::ApiKey key_from(std::string_view text) {
  return api::ApiKey({reinterpret_cast<const unsigned char*>(text.data()), text.size()});
}

// Options for `sim`; with a fake clock, also a private limiter on that clock.
inline api::ClientOptions options_for(const CertCentralSim& sim, std::shared_ptr<FakeClock> clock = nullptr) {
  api::ClientOptions options;
  options.base_url = sim.url();
  options.ca_file = sim.ca_file();
  options.user_agent = "qscd-agent/test";
  options.connect_timeout = std::chrono::milliseconds(5000);
  options.total_timeout = std::chrono::milliseconds(10000);
  if (clock) {
    options.clock = clock;
    options.limiter = std::make_shared<api::RateLimiter>(api::RateLimiter::certcentral_windows(), clock);
    options.jitter = [] { return 0.0; };
  }
  return options;
}

inline api::Client client_for(const CertCentralSim& sim, std::shared_ptr<FakeClock> clock = nullptr) {
  return api::Client(options_for(sim, std::move(clock)), key_from(CertCentralSim::api_key));
}

inline api::OrderRequest server_request(const std::string& csr, const std::string& cn, const std::string& product = "pkio_private_services_server") {
  api::OrderRequest request;
  request.product = product;
  request.certificate.common_name = cn;
  request.certificate.dns_names = {cn};
  request.certificate.csr = csr;
  request.certificate.oin = "00000003123456780000";
  request.organization.id = 112233;
  request.csa_agreed_to = true;
  request.order_validity = api::OrderValidity{1, std::nullopt, std::nullopt};
  request.comments = "qscd-agent job test-1";
  return request;
}

inline api::OrderRequest seal_request() {
  api::OrderRequest request;
  request.product = "pkio_qualified_organisation_services";
  request.certificate.profile_option = "nonrepudiation";
  request.provisioning_method = "qscd";
  request.ship_info = api::ShipInfo{"J. Jansen", "Wilhelminakade 1", "-", "Rotterdam", "ZH", "3072 AP", "nl", "STANDARD"};
  request.organization.id = 112233;
  request.organization.contacts.push_back({2812497, "Jan", "Jansen", "Director", "+31100000000", "jan@example.nl", "verified_contact"});
  request.csa_agreed_to = true;
  request.order_validity = api::OrderValidity{1, std::nullopt, std::nullopt};
  return request;
}

}  // namespace qscd::test
