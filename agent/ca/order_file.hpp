#pragma once
// The --order-file of `order submit`, `provision` and `renew`: CertCentral's order body as JSON,
// read once here.
#include <string>

#include <nlohmann/json.hpp>

#include "qscd/api/order.hpp"

namespace qscd::agent {

// The file's JSON. Throws UsageError("--order-file", "PATH is not JSON"), or "PATH is not a JSON
// object" when `must_be_object` and it is valid JSON of another kind (or no JSON).
nlohmann::json read_order_file(const std::string& path, bool must_be_object = false);

// The order for `product` the file describes, or a bare order for `product` when `path` is empty.
api::OrderRequest order_request_from_file(const std::string& product, const std::string& path);

}  // namespace qscd::agent
