// The --order-file (agent/ca/order_file): CertCentral's order body as JSON, parsed as
// read_order_file parses it, read into an OrderRequest for each product, validated and written
// back out (to_json, redacted). Bad input must end in UsageError or api::ValidationError.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "qscd/api/error.hpp"
#include "qscd/api/order.hpp"

using namespace qscd;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const nlohmann::json body = nlohmann::json::parse(data, data + size, nullptr, false);
  if (body.is_discarded()) return 0;  // read_order_file: "PATH is not JSON"
  static const auto today = std::chrono::system_clock::time_point(std::chrono::seconds(1767225600));  // 2026-01-01
  for (const char* product : {"eu_eseal", "pkio_qualified_organisation_services", "pkio_private_services_server", "ssl_basic"}) {
    try {
      api::OrderRequest request = api::order_request_from_json(product, body);
      (void)api::redacted(request).dump();
      api::validate(request, today);
      (void)api::to_json(request).dump();
    } catch (const api::ValidationError&) {
    }
  }
  return 0;
}
