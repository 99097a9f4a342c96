#include "qscd/api/client.hpp"

#include <curl/curl.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>

#include "curl_holder.hpp"
#include "qscd/api/csr.hpp"
#include "qscd/api/error.hpp"

namespace qscd::api {

namespace {

using nlohmann::json;

enum class Method { get, post, put };

const char* method_name(Method method) {
  switch (method) {
    case Method::get: return "GET";
    case Method::post: return "POST";
    case Method::put: return "PUT";
  }
  return "GET";
}

// May the call be sent again when no usable answer came back? Never for a POST
// that creates something (an order, a reissue request, a pickup).
enum class Repeat { safe, never };

struct HttpResult {
  std::optional<std::string> transport_error;  // set: no HTTP answer
  bool transient = false;                      // a transport error worth another try
  bool too_large = false;
  long status = 0;
  std::string body;
  std::string content_type;
  std::optional<std::chrono::seconds> retry_after;
  int attempts = 0;
};

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

std::string string_or_empty(const json& parent, const char* key) {
  auto it = parent.find(key);
  if (it == parent.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

std::vector<ApiError> parse_errors(const std::string& body) {
  std::vector<ApiError> out;
  json doc = json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return out;
  auto errors = doc.find("errors");
  if (errors == doc.end() || !errors->is_array()) return out;
  for (const auto& entry : *errors) {
    if (!entry.is_object()) continue;
    ApiError error;
    std::string code = string_or_empty(entry, "code");
    auto bar = code.find('|');
    error.code = code.substr(0, bar);
    if (bar != std::string::npos) error.detail = code.substr(bar + 1);
    error.message = string_or_empty(entry, "message");
    out.push_back(std::move(error));
  }
  return out;
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

class ScopedCleanse {
 public:
  explicit ScopedCleanse(std::string& text) : text_(text) {}
  ~ScopedCleanse() { OPENSSL_cleanse(text_.data(), text_.size()); }
  ScopedCleanse(const ScopedCleanse&) = delete;
  ScopedCleanse& operator=(const ScopedCleanse&) = delete;

 private:
  std::string& text_;
};

}  // namespace

struct Client::Impl {
  ClientOptions options;
  ApiKey key;
  CurlHolder curl;
  std::string base;  // base URL without a trailing '/'
  std::mt19937_64 random{std::random_device{}()};

  Impl(ClientOptions o, ApiKey k) : options(std::move(o)), key(std::move(k)) {
    check_base_url(options.base_url);
    if (!options.ca_file.empty()) {
      std::ifstream probe(options.ca_file);
      if (!probe) throw ConfigError("--ca-file", "cannot read " + options.ca_file);
    }
    base = options.base_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    if (!options.clock) options.clock = system_clock();
    if (!options.limiter) options.limiter = RateLimiter::shared_for(key.fingerprint());
  }

  double jitter() {
    if (options.jitter) return options.jitter();
    return std::uniform_real_distribution<double>(0.0, 1.0)(random);
  }

  std::chrono::milliseconds backoff(int attempt, const std::optional<std::chrono::seconds>& retry_after) {
    const auto& policy = options.retry;
    if (retry_after) {
      return std::min<std::chrono::milliseconds>(*retry_after, policy.max_retry_after);
    }
    double full = static_cast<double>(policy.base_delay.count()) * std::pow(2.0, attempt - 1);
    full = std::min(full, static_cast<double>(policy.max_delay.count()));
    // "Equal jitter": at least half the delay, so retries spread but still back off.
    return std::chrono::milliseconds(static_cast<std::int64_t>(full / 2 + jitter() * full / 2));
  }

  static std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
    auto* self = static_cast<std::pair<std::string*, std::size_t>*>(user);
    std::size_t bytes = size * count;
    if (self->first->size() + bytes > self->second) return 0;  // makes curl stop with CURLE_WRITE_ERROR
    self->first->append(data, bytes);
    return bytes;
  }

  static int on_debug(CURL*, curl_infotype type, char* data, std::size_t size, void* user) {
    auto* self = static_cast<Impl*>(user);
    const char* prefix = nullptr;
    switch (type) {
      case CURLINFO_TEXT: prefix = "* "; break;
      case CURLINFO_HEADER_IN: prefix = "< "; break;
      case CURLINFO_HEADER_OUT: prefix = "> "; break;
      default: return 0;  // bodies are never traced: CSRs, init codes, card details
    }
    std::string_view text(data, size);
    while (!text.empty()) {
      auto end = text.find('\n');
      std::string_view line = text.substr(0, end);
      text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) continue;
      constexpr std::string_view devkey = "x-dc-devkey:";
      bool secret = line.size() >= devkey.size() &&
                    std::equal(devkey.begin(), devkey.end(), line.begin(),
                               [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); });
      if (secret) {
        self->options.trace(std::string(prefix) + "X-DC-DEVKEY: <redacted>");
      } else {
        self->options.trace(std::string(prefix) + std::string(line));
      }
    }
    return 0;
  }

  HttpResult perform_once(Method method, const std::string& url, const std::string* body) {
    CURL* h = curl.handle();
    curl_easy_reset(h);  // keeps the connection cache and TLS session
    CurlHeaders headers;
    append_header(headers, "Accept: application/json");
    if (body != nullptr) append_header(headers, "Content-Type: application/json");
    append_header(headers, "Expect:");
    append_header(headers, "X-DC-DEVKEY", key.bytes());
    curl.set_headers(std::move(headers));

    HttpResult result;
    std::pair<std::string*, std::size_t> sink{&result.body, options.max_body_bytes};
    char error_buffer[CURL_ERROR_SIZE] = {};
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, curl.headers());
    curl_easy_setopt(h, CURLOPT_USERAGENT, options.user_agent.c_str());
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout.count()));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options.total_timeout.count()));
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(options.max_body_bytes));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Impl::on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
    if (!options.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, options.ca_file.c_str());
    if (options.trace) {
      curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
      curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, &Impl::on_debug);
      curl_easy_setopt(h, CURLOPT_DEBUGDATA, this);
    }
    switch (method) {
      case Method::get: curl_easy_setopt(h, CURLOPT_HTTPGET, 1L); break;
      case Method::post: curl_easy_setopt(h, CURLOPT_POST, 1L); break;
      case Method::put: curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT"); break;
    }
    if (body != nullptr) {
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->data());
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
    }

    CURLcode code = curl_easy_perform(h);
    // The request is done: drop the header copy that holds the key now.
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    curl.set_headers(CurlHeaders{});
    if (code == CURLE_WRITE_ERROR || code == CURLE_FILESIZE_EXCEEDED) {
      result.too_large = true;
      return result;
    }
    if (code != CURLE_OK) {
      std::string reason = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code);
      result.transport_error = std::string(method_name(method)) + " " + url + ": " + reason;
      // TLS verification and setup failures do not heal by trying again.
      result.transient = code == CURLE_COULDNT_CONNECT || code == CURLE_OPERATION_TIMEDOUT || code == CURLE_GOT_NOTHING ||
                         code == CURLE_SEND_ERROR || code == CURLE_RECV_ERROR || code == CURLE_PARTIAL_FILE ||
                         code == CURLE_COULDNT_RESOLVE_HOST || code == CURLE_SSL_CONNECT_ERROR;
      return result;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &result.status);
    char* type = nullptr;
    if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &type) == CURLE_OK && type != nullptr) result.content_type = type;
    curl_off_t retry_after = 0;
    if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK && retry_after > 0) {
      result.retry_after = std::chrono::seconds(retry_after);
    }
    return result;
  }

  HttpResult call(Method method, const std::string& path, const std::string* body, Repeat repeat) {
    std::string url = base + path;
    if (options.trace && body != nullptr) {
      options.trace("> (request body: " + std::to_string(body->size()) + " bytes, not traced)");
    }
    HttpResult result;
    for (int attempt = 1;; ++attempt) {
      options.limiter->acquire();
      result = perform_once(method, url, body);
      result.attempts = attempt;
      bool again = repeat == Repeat::safe && attempt < options.retry.max_attempts &&
                   ((result.transport_error && result.transient) || result.status == 429 || result.status >= 500);
      if (!again) return result;
      auto delay = backoff(attempt, result.retry_after);
      if (options.trace) {
        options.trace("* retrying " + std::string(method_name(method)) + " " + path + " in " +
                      std::to_string(delay.count()) + " ms (attempt " + std::to_string(attempt + 1) + ")");
      }
      options.clock->sleep_for(delay);
    }
  }

  // Maps the HTTP answer onto the closed outcome set; `parse` reads a 2xx body.
  template <class T, class Parse>
  Outcome<T> interpret(Method method, const std::string& path, const HttpResult& r, Parse parse) {
    std::string what = std::string(method_name(method)) + " " + path;
    if (r.transport_error) {
      return Unreachable{*r.transport_error + (r.attempts > 1 ? " (after " + std::to_string(r.attempts) + " attempts)" : "")};
    }
    if (r.too_large) {
      return Malformed{"the answer to " + what + " is larger than " + std::to_string(options.max_body_bytes) + " bytes"};
    }
    if (r.status >= 200 && r.status < 300) {
      try {
        return parse(r);
      } catch (const json::exception& e) {
        std::string kind = r.content_type.empty() ? "" : " (" + r.content_type + ")";
        return Malformed{"the answer to " + what + " is not the documented JSON" + kind + ": " + e.what()};
      }
    }
    auto errors = parse_errors(r.body);
    if (r.status >= 500) {
      std::string reason = "HTTP " + std::to_string(r.status) + " for " + what;
      if (r.attempts > 1) reason += " after " + std::to_string(r.attempts) + " attempts";
      if (errors.empty()) {
        reason += "; the body is not a JSON error" + (r.content_type.empty() ? std::string() : " (" + r.content_type + ")");
      } else {
        reason += ": " + errors.front().code + (errors.front().message.empty() ? "" : " (" + errors.front().message + ")");
      }
      return Unreachable{reason};
    }
    if (r.status >= 400) {
      if (errors.empty() && !r.body.empty()) {
        errors.push_back({"unparsed_error_body", "", "the error body is not CertCentral's JSON" +
                                                          (r.content_type.empty() ? std::string() : " (" + r.content_type + ")")});
      }
      return Refused{r.status, std::move(errors)};
    }
    return Malformed{"unexpected HTTP " + std::to_string(r.status) + " for " + what};
  }

  template <class T, class Parse>
  Outcome<T> json_call(Method method, const std::string& path, const json* body, Repeat repeat, Parse parse_doc) {
    std::string text;
    if (body != nullptr) text = body->dump();
    ScopedCleanse wipe(text);  // order bodies may hold card details
    HttpResult r = call(method, path, body != nullptr ? &text : nullptr, repeat);
    return interpret<T>(method, path, r, [&](const HttpResult& ok) -> Outcome<T> {
      return parse_doc(json::parse(ok.body));
    });
  }

  Outcome<Done> empty_call(Method method, const std::string& path, const json& body, Repeat repeat) {
    std::string text = body.dump();
    ScopedCleanse wipe(text);
    HttpResult r = call(method, path, &text, repeat);
    return interpret<Done>(method, path, r, [](const HttpResult&) -> Outcome<Done> { return Done{}; });
  }

  std::string escape(std::string_view text) {
    char* escaped = curl_easy_escape(curl.handle(), text.data(), static_cast<int>(text.size()));
    if (escaped == nullptr) throw std::bad_alloc();
    std::string out(escaped);
    curl_free(escaped);
    return out;
  }
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
  return impl_->json_call<OrderList>(Method::get, "/order/certificate" + query, nullptr, Repeat::safe, [](const json& doc) {
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
  });
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
  return impl_->json_call<std::vector<OrganizationInfo>>(Method::get, "/organization", nullptr, Repeat::safe, [](const json& doc) {
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
  });
}

Outcome<Done> Client::cancel_order(std::string_view order_id, std::string_view note) {
  check_id(order_id, "order id");
  if (note.empty()) throw ValidationError("note", "is required to cancel an order");
  json body = {{"status", "canceled"}, {"note", std::string(note)}};
  return impl_->empty_call(Method::put, "/order/certificate/" + std::string(order_id) + "/status", body, Repeat::safe);
}

}  // namespace qscd::api
