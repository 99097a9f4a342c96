#pragma once
// The CertCentral Services API v2 client. One libcurl handle per Client, kept
// for connection reuse; a Client is used by one thread at a time (make one per
// thread), while the rate limiter is shared per API key across the process.
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "qscd/api/api_key.hpp"
#include "qscd/api/order.hpp"
#include "qscd/api/outcome.hpp"
#include "qscd/api/rate_limiter.hpp"

namespace qscd::api {

class CurlHolder;

struct RetryPolicy {
  int max_attempts = 5;  // for 429, 5xx and transport errors of calls that may be repeated
  std::chrono::milliseconds base_delay{1000};
  std::chrono::milliseconds max_delay{30000};
  std::chrono::milliseconds max_retry_after{120000};  // a Retry-After longer than this is capped
};

// A pause before the next attempt of a call that may be repeated (after 429, 5xx or a
// transport error): what the caller shows people while it waits.
struct RetryNotice {
  std::string call;    // "GET /order/certificate/123"
  std::string reason;  // "HTTP 429 (rate limited)", "HTTP 503", or the transport error
  int next_attempt = 2;
  int max_attempts = 5;
  std::chrono::milliseconds delay{0};
};

struct ClientOptions {
  std::string base_url = "https://certcentral.digicert.eu/services/v2";
  std::string ca_file;  // trust for the API's TLS; empty: the system store
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds total_timeout{60000};
  std::size_t max_body_bytes = 4U << 20U;
  std::string user_agent = "qscd-agent";  // "/<version>" is the caller's to add
  RetryPolicy retry;
  // ASSUMPTION (docs/api.md): the QSCD pickup step is not publicly documented.
  // "{order_id}" is replaced by the order id.
  std::string pickup_path = "/order/certificate/{order_id}/pickup";
  // How long `poll_order` suggests waiting before the next look.
  std::chrono::seconds poll_interval{60};
  // Request/response lines, X-DC-DEVKEY and bodies of secrets redacted. Optional.
  std::function<void(std::string_view)> trace;
  // Told before each retry pause. Optional.
  std::function<void(const RetryNotice&)> on_retry;
  // Asked during a transfer and through a retry pause: true abandons the call as unreachable
  // (a transfer cut short is what a kill would leave: the caller looks the order up again).
  std::function<bool()> cancelled;
  std::shared_ptr<Clock> clock;           // default: system_clock()
  std::shared_ptr<RateLimiter> limiter;   // default: RateLimiter::shared_for(key)
  // Jitter source in [0,1); default: a random device. Tests pin it.
  std::function<double()> jitter;
};


class Client {
 public:
  // Throws ConfigError: URL not https (plain http only to loopback), CA file
  // unreadable. Nothing is sent by the constructor.
  Client(ClientOptions options, ApiKey key);
  ~Client();
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // POST /order/certificate/{product}. Validates first (ValidationError, nothing
  // sent). Never retried: a lost answer may still have created the order.
  Outcome<SubmitResult> submit_order(const OrderRequest& request);
  // GET /order/certificate/{id}.
  Outcome<OrderInfo> order_info(std::string_view order_id);
  // order_info read as a lifecycle step: ok when issued, pending while
  // CertCentral works on it, rejected when rejected/canceled/denied/revoked.
  Outcome<OrderInfo> poll_order(std::string_view order_id);
  // GET /order/certificate with filters[...] and paging.
  Outcome<OrderList> list_orders(const OrderFilter& filter);
  // PUT /request/{id}/status {"status", "processor_comment"} (204).
  Outcome<Done> update_request_status(std::string_view request_id, RequestStatus status, std::string_view comment);
  // POST /order/certificate/{id}/reissue. Never retried.
  Outcome<SubmitResult> reissue(std::string_view order_id, const ReissueRequest& request);
  // ASSUMPTION: the QSCD pickup step, options.pickup_path, body
  // {"csr": PEM[, "init_code": ...]}. The init code is sent, never traced. Never retried.
  Outcome<Done> pickup(std::string_view order_id, std::string_view csr_pem,
                       std::span<const unsigned char> init_code = {});
  // GET /certificate/{id}/download/format/{fmt}: the body as served.
  Outcome<std::string> download_certificate(std::string_view certificate_id, CertificateFormat format);
  // GET /certificate/download/order/{id}/format/{fmt}: the order's active certificate.
  Outcome<std::string> download_order_certificate(std::string_view order_id, CertificateFormat format);
  // GET /organization.
  Outcome<std::vector<OrganizationInfo>> list_organizations();
  // GET /product/{name_id}: refused (404) when the account has no product by that name.
  Outcome<ProductInfo> product_info(std::string_view name_id);
  // PUT /order/certificate/{id}/status {"status":"canceled","note"} (204).
  Outcome<Done> cancel_order(std::string_view order_id, std::string_view note);

  [[nodiscard]] const ClientOptions& options() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Validates a base URL as the client would (ConfigError when refused).
void check_base_url(const std::string& url);

}  // namespace qscd::api
