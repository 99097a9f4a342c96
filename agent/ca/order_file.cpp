#include "ca/order_file.hpp"

#include "base/errors.hpp"
#include "base/files.hpp"
#include "base/text.hpp"
#include "qscd/api/error.hpp"

#include <algorithm>
#include <string_view>

namespace qscd::agent {

namespace {

// The line of the first `"key"` followed by a colon in the file's text (JSON keeps no positions).
std::string line_of_key(const std::string& text, std::string_view key) {
  const std::string quoted = "\"" + std::string(key) + "\"";
  for (std::size_t at = text.find(quoted); at != std::string::npos; at = text.find(quoted, at + 1)) {
    std::size_t after = at + quoted.size();
    while (after < text.size() && (text[after] == ' ' || text[after] == '\t' || text[after] == '\r' || text[after] == '\n')) ++after;
    if (after < text.size() && text[after] == ':') return std::to_string(1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
  }
  return {};
}

// A field the order body does not have: the file, its line, the field, and the closest one the
// agent knows ("certificate.commmon_name" -> "did you mean common_name?").
[[noreturn]] void unknown_field(const std::string& path, const std::string& text, const api::ValidationError& e) {
  const std::string& field = e.field();
  const std::size_t dot = field.rfind('.');
  const std::string key = dot == std::string::npos ? field : field.substr(dot + 1);
  std::string object = dot == std::string::npos ? std::string() : field.substr(0, field.find_first_of(".["));
  if (object == "organization") object = "contact";
  const std::string line = line_of_key(text, key);
  throw UsageError(path + (line.empty() ? "" : ":" + line) + ": " + field, e.rule() + did_you_mean(key, api::order_body_fields(object)));
}

}  // namespace

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
  const std::string text = read_input_file(path, "--order-file");
  nlohmann::json body = nlohmann::json::parse(text, nullptr, false);
  if (body.is_discarded()) throw UsageError("--order-file", path + " is not JSON");
  try {
    return api::order_request_from_json(product, body);
  } catch (const api::ValidationError& e) {
    if (e.rule().starts_with("is not a field")) unknown_field(path, text, e);
    throw;
  }
}

}  // namespace qscd::agent
