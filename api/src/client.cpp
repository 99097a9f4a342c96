#include "qscd/api/client.hpp"
#include "qscd/api/answers.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <optional>

#include "qscd/api/csr.hpp"
#include "qscd/api/error.hpp"
#include "transport.hpp"

// The endpoints: each checks what it sends, calls through the transport (transport.cpp) and
// reads the documented answer.

namespace qscd::api {

namespace {

using detail::HttpResult;
using detail::Method;
using detail::Repeat;
using detail::string_or_empty;
using nlohmann::json;

// Ids go into URL paths: CertCentral ids are numbers; order info also takes a
// thumbprint or serial number (hex). Nothing else is let through.
void check_id(std::string_view id, const char* what) {
  bool fine = !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
  });
  if (!fine) throw ValidationError(what, "must be a CertCentral id (digits, or a hex thumbprint/serial)");
}

std::string id_string(const json& value, const char* what) {
  if (value.is_number_integer()) return std::to_string(value.get<std::int64_t>());
  if (value.is_string() && !value.get_ref<const std::string&>().empty()) return value.get<std::string>();
  throw json::type_error::create(302, std::string(what) + " is not an id", nullptr);
}

std::vector<RequestRef> parse_requests(const json& doc) {
  std::vector<RequestRef> out;
  auto it = doc.find("requests");
  if (it == doc.end() || !it->is_array()) return out;
  for (const auto& entry : *it) {
    RequestRef ref;
    ref.id = id_string(entry.at("id"), "requests[].id");
    ref.status = parse_request_status(string_or_empty(entry, "status"));
    ref.type = string_or_empty(entry, "type");
    out.push_back(std::move(ref));
  }
  return out;
}

SubmitResult parse_submit(const json& doc) {
  SubmitResult out;
  out.order_id = id_string(doc.at("id"), "id");
  out.requests = parse_requests(doc);
  if (auto it = doc.find("certificate_id"); it != doc.end() && !it->is_null()) out.certificate_id = id_string(*it, "certificate_id");
  out.raw = doc;
  return out;
}

OrderInfo parse_order(const json& doc) {
  OrderInfo out;
  out.id = id_string(doc.at("id"), "id");
  out.status = parse_order_status(doc.at("status").get<std::string>());
  if (auto product = doc.find("product"); product != doc.end() && product->is_object()) {
    out.product_name_id = string_or_empty(*product, "name_id");
  }
  if (out.product_name_id.empty()) out.product_name_id = string_or_empty(doc, "product_name_id");
  if (auto certificate = doc.find("certificate"); certificate != doc.end() && certificate->is_object()) {
    if (auto id = certificate->find("id"); id != certificate->end() && !id->is_null()) out.certificate_id = id_string(*id, "certificate.id");
    out.common_name = string_or_empty(*certificate, "common_name");
    out.csr = string_or_empty(*certificate, "csr");
    out.valid_till = string_or_empty(*certificate, "valid_till");
    out.serial_number = string_or_empty(*certificate, "serial_number");
  }
  out.order_valid_till = string_or_empty(doc, "order_valid_till");
  out.requests = parse_requests(doc);
  out.raw = doc;
  return out;
}

OrderList parse_order_list(const json& doc) {
  OrderList list;
  for (const auto& order : doc.at("orders")) list.orders.push_back(parse_order(order));
  if (auto page = doc.find("page"); page != doc.end() && page->is_object()) {
    list.total = page->value("total", 0);
    list.limit = page->value("limit", 0);
    list.offset = page->value("offset", 0);
  } else {
    list.total = static_cast<int>(list.orders.size());
  }
  return list;
}

std::vector<OrganizationInfo> parse_organizations(const json& doc) {
  std::vector<OrganizationInfo> out;
  for (const auto& org : doc.at("organizations")) {
    OrganizationInfo info;
    info.id = id_string(org.at("id"), "organizations[].id");
    info.name = string_or_empty(org, "name");
    info.status = string_or_empty(org, "status");
    info.country = string_or_empty(org, "country");
    info.raw = org;
    out.push_back(std::move(info));
  }
  return out;
}

// An answer in, as the transport would have handed it over.
HttpResult http_result(const Answer& answer) {
  HttpResult r;
  r.status = answer.status;
  r.content_type = answer.content_type;
  r.body = answer.body;
  r.attempts = 1;
  return r;
}

template <class T, class ParseDoc>
Outcome<T> read_json_answer(const Answer& answer, const char* what, ParseDoc parse_doc) {
  return detail::interpret_answer<T>(what, http_result(answer), ClientOptions{}.max_body_bytes,
                                     [&](const HttpResult& ok) -> Outcome<T> { return parse_doc(json::parse(ok.body)); });
}

}  // namespace

Outcome<OrderInfo> read_order_info_answer(const Answer& answer) {
  return read_json_answer<OrderInfo>(answer, "GET /order/certificate/{id}", [](const json& doc) { return parse_order(doc); });
}

Outcome<OrderList> read_order_list_answer(const Answer& answer) {
  return read_json_answer<OrderList>(answer, "GET /order/certificate", [](const json& doc) { return parse_order_list(doc); });
}

Outcome<SubmitResult> read_submit_answer(const Answer& answer) {
  return read_json_answer<SubmitResult>(answer, "POST /order/certificate/{product}", [](const json& doc) { return parse_submit(doc); });
}

Outcome<std::vector<OrganizationInfo>> read_organizations_answer(const Answer& answer) {
  return read_json_answer<std::vector<OrganizationInfo>>(answer, "GET /organization",
                                                         [](const json& doc) { return parse_organizations(doc); });
}

Outcome<std::string> read_download_answer(const Answer& answer) {
  return detail::interpret_answer<std::string>("GET /certificate/{id}/download", http_result(answer), ClientOptions{}.max_body_bytes,
                                               [](const HttpResult& ok) -> Outcome<std::string> { return ok.body; });
}

Outcome<Done> read_empty_answer(const Answer& answer) {
  return detail::interpret_answer<Done>("PUT /request/{id}/status", http_result(answer), ClientOptions{}.max_body_bytes,
                                        [](const HttpResult&) -> Outcome<Done> { return Done{}; });
}

struct Client::Impl : detail::Transport {
  using Transport::Transport;
};

Client::Client(ClientOptions options, ApiKey key) : impl_(std::make_unique<Impl>(std::move(options), std::move(key))) {}
Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

const ClientOptions& Client::options() const noexcept { return impl_->options; }

Outcome<SubmitResult> Client::submit_order(const OrderRequest& request) {
  validate(request, std::chrono::system_clock::now());
  json body = to_json(request);
  Outcome<SubmitResult> outcome = impl_->json_call<SubmitResult>(Method::post, "/order/certificate/" + request.product, &body,
                                                                 Repeat::never, [](const json& doc) { return parse_submit(doc); });
  if (body.contains("credit_card")) {
    // The dumped text was wiped; wipe the card strings held by the json too.
    for (auto& [key, value] : body["credit_card"].items()) {
      if (value.is_string()) OPENSSL_cleanse(value.get_ref<std::string&>().data(), value.get_ref<std::string&>().size());
    }
  }
  return outcome;
}

Outcome<OrderInfo> Client::order_info(std::string_view order_id) {
  check_id(order_id, "order id");
  return impl_->json_call<OrderInfo>(Method::get, "/order/certificate/" + std::string(order_id), nullptr, Repeat::safe,
                                     [](const json& doc) { return parse_order(doc); });
}

Outcome<OrderInfo> Client::poll_order(std::string_view order_id) {
  Outcome<OrderInfo> info = order_info(order_id);
  if (!info.ok()) return info;
  const OrderStatus status = info.value().status;
  if (status == OrderStatus::issued) return info;
  if (is_waiting(status)) return Pending{info.value().id, status, impl_->options.poll_interval};
  const std::string name(to_string(status));
  if (is_final_refusal(status)) return Rejected{name, "order " + info.value().id + " is " + name};
  return Malformed{"order " + info.value().id + " has an undocumented status \"" +
                   info.value().raw.value("status", std::string()) + "\""};
}

Outcome<OrderList> Client::list_orders(const OrderFilter& filter) {
  std::string query;
  auto add = [&](const std::string& key, const std::string& value) {
    query += query.empty() ? "?" : "&";
    query += impl_->escape(key) + "=" + impl_->escape(value);
  };
  if (filter.status) add("filters[status]", std::string(to_string(*filter.status)));
  if (filter.common_name) add("filters[common_name]", *filter.common_name);
  if (filter.product_name_id) add("filters[product_name_id]", *filter.product_name_id);
  if (filter.date_created) add("filters[date_created]", *filter.date_created);
  if (filter.search) add("filters[search]", *filter.search);
  if (filter.serial_number) add("filters[serial_number]", *filter.serial_number);
  if (filter.offset > 0) add("offset", std::to_string(filter.offset));
  if (filter.limit > 0) add("limit", std::to_string(filter.limit));
  return impl_->json_call<OrderList>(Method::get, "/order/certificate" + query, nullptr, Repeat::safe,
                                     [](const json& doc) { return parse_order_list(doc); });
}

Outcome<Done> Client::update_request_status(std::string_view request_id, RequestStatus status, std::string_view comment) {
  check_id(request_id, "request id");
  json body = {{"status", std::string(to_string(status))}};
  if (!comment.empty()) body["processor_comment"] = std::string(comment);
  return impl_->empty_call(Method::put, "/request/" + std::string(request_id) + "/status", body, Repeat::safe);
}

Outcome<SubmitResult> Client::reissue(std::string_view order_id, const ReissueRequest& request) {
  check_id(order_id, "order id");
  if (request.csr.empty()) throw ValidationError("certificate.csr", "is required for a reissue");
  inspect_csr(request.csr);
  json body = to_json(request);
  return impl_->json_call<SubmitResult>(Method::post, "/order/certificate/" + std::string(order_id) + "/reissue", &body,
                                        Repeat::never, [](const json& doc) { return parse_submit(doc); });
}

Outcome<Done> Client::pickup(std::string_view order_id, std::string_view csr_pem, std::span<const unsigned char> init_code) {
  check_id(order_id, "order id");
  inspect_csr(csr_pem, "csr");
  std::string path = impl_->options.pickup_path;
  auto slot = path.find("{order_id}");
  if (slot == std::string::npos) throw ConfigError("pickup path", "must contain {order_id}");
  path.replace(slot, 10, order_id);
  json body = {{"csr", std::string(csr_pem)}};
  if (!init_code.empty()) body["init_code"] = std::string(init_code.begin(), init_code.end());
  Outcome<Done> outcome = impl_->empty_call(Method::post, path, body, Repeat::never);
  if (body.contains("init_code")) {
    auto& held = body["init_code"].get_ref<std::string&>();
    OPENSSL_cleanse(held.data(), held.size());
  }
  return outcome;
}

Outcome<std::string> Client::download_certificate(std::string_view certificate_id, CertificateFormat format) {
  check_id(certificate_id, "certificate id");
  std::string path = "/certificate/" + std::string(certificate_id) + "/download/format/" + to_string(format);
  HttpResult r = impl_->call(Method::get, path, nullptr, Repeat::safe);
  return impl_->interpret<std::string>(Method::get, path, r, [](const HttpResult& ok) -> Outcome<std::string> { return ok.body; });
}

Outcome<std::string> Client::download_order_certificate(std::string_view order_id, CertificateFormat format) {
  check_id(order_id, "order id");
  std::string path = "/certificate/download/order/" + std::string(order_id) + "/format/" + to_string(format);
  HttpResult r = impl_->call(Method::get, path, nullptr, Repeat::safe);
  return impl_->interpret<std::string>(Method::get, path, r, [](const HttpResult& ok) -> Outcome<std::string> { return ok.body; });
}

Outcome<std::vector<OrganizationInfo>> Client::list_organizations() {
  return impl_->json_call<std::vector<OrganizationInfo>>(Method::get, "/organization", nullptr, Repeat::safe,
                                                         [](const json& doc) { return parse_organizations(doc); });
}

Outcome<ProductInfo> Client::product_info(std::string_view name_id) {
  check_id(name_id, "product name_id");
  return impl_->json_call<ProductInfo>(Method::get, "/product/" + std::string(name_id), nullptr, Repeat::safe, [](const json& doc) {
    ProductInfo info;
    info.name_id = string_or_empty(doc, "name_id");
    info.name = string_or_empty(doc, "name");
    info.raw = doc;
    return info;
  });
}

Outcome<Done> Client::cancel_order(std::string_view order_id, std::string_view note) {
  check_id(order_id, "order id");
  if (note.empty()) throw ValidationError("note", "is required to cancel an order");
  json body = {{"status", "canceled"}, {"note", std::string(note)}};
  return impl_->empty_call(Method::put, "/order/certificate/" + std::string(order_id) + "/status", body, Repeat::safe);
}

}  // namespace qscd::api
