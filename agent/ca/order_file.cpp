#include "ca/order_file.hpp"

#include "base/errors.hpp"
#include "base/files.hpp"

namespace qscd::agent {

nlohmann::json read_order_file(const std::string& path, bool must_be_object) {
  nlohmann::json body = nlohmann::json::parse(read_input_file(path, "--order-file"), nullptr, false);
  if (must_be_object && (body.is_discarded() || !body.is_object())) {
    throw UsageError("--order-file", path + " is not a JSON object");
  }
  if (body.is_discarded()) throw UsageError("--order-file", path + " is not JSON");
  return body;
}

api::OrderRequest order_request_from_file(const std::string& product, const std::string& path) {
  if (path.empty()) {
    api::OrderRequest request;
    request.product = product;
    return request;
  }
  return api::order_request_from_json(product, read_order_file(path));
}

}  // namespace qscd::agent
