#pragma once
// The HTTP side of the CertCentral client: one request over libcurl (headers, TLS, size and time
// limits, a trace with the key redacted), retries with backoff for what may be repeated, and the
// mapping of an answer onto the closed outcome set. The endpoints (client.cpp) sit on top.
// Internal to api/.
#include <chrono>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "curl_holder.hpp"
#include "qscd/api/api_key.hpp"
#include "qscd/api/client.hpp"
#include "qscd/api/outcome.hpp"

namespace qscd::api::detail {

enum class Method { get, post, put };

const char* method_name(Method method);

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

// A string member, or "" when it is absent or not a string.
std::string string_or_empty(const nlohmann::json& parent, const char* key);

// CertCentral's {"errors":[{"code","message"}]}; empty when the body is not that.
std::vector<ApiError> parse_errors(const std::string& body);

// Maps an HTTP answer onto the closed outcome set; `parse` reads a 2xx body. `what` names the
// call in messages ("GET /order/certificate/1"). Pure: no I/O (qscd/api/answers.hpp uses it).
template <class T, class Parse>
Outcome<T> interpret_answer(const std::string& what, const HttpResult& r, std::size_t max_body_bytes, Parse parse) {
  using nlohmann::json;
  if (r.transport_error) {
    return Unreachable{*r.transport_error + (r.attempts > 1 ? " (after " + std::to_string(r.attempts) + " attempts)" : "")};
  }
  if (r.too_large) {
    return Malformed{"the answer to " + what + " is larger than " + std::to_string(max_body_bytes) + " bytes"};
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

class Transport {
 public:
  Transport(ClientOptions o, ApiKey k);

  ClientOptions options;

  // Sends `body` (or none) to base URL + `path`, again while the answer says it is worth it and
  // `repeat` allows it.
  HttpResult call(Method method, const std::string& path, const std::string* body, Repeat repeat);
  // The same with a JSON body, its text wiped once sent (order bodies may hold card details).
  HttpResult call_json(Method method, const std::string& path, const nlohmann::json* body, Repeat repeat);

  // Maps the HTTP answer onto the closed outcome set (interpret_answer); `parse` reads a 2xx body.
  template <class T, class Parse>
  Outcome<T> interpret(Method method, const std::string& path, const HttpResult& r, Parse parse) {
    return interpret_answer<T>(std::string(method_name(method)) + " " + path, r, options.max_body_bytes, parse);
  }

  template <class T, class Parse>
  Outcome<T> json_call(Method method, const std::string& path, const nlohmann::json* body, Repeat repeat, Parse parse_doc) {
    HttpResult r = call_json(method, path, body, repeat);
    return interpret<T>(method, path, r, [&](const HttpResult& ok) -> Outcome<T> {
      return parse_doc(nlohmann::json::parse(ok.body));
    });
  }

  Outcome<Done> empty_call(Method method, const std::string& path, const nlohmann::json& body, Repeat repeat);

  // Percent-encodes a query value.
  std::string escape(std::string_view text);

 private:
  double jitter();
  std::chrono::milliseconds backoff(int attempt, const std::optional<std::chrono::seconds>& retry_after);
  static std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user);
  static int on_debug(CURL*, curl_infotype type, char* data, std::size_t size, void* user);
  static int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t);
  // The retry pause, in slices so that `cancelled` ends it early; false when it was cancelled.
  bool pause(std::chrono::milliseconds delay);
  HttpResult perform_once(Method method, const std::string& url, const std::string* body);

  ApiKey key;
  CurlHolder curl;
  std::string base;  // base URL without a trailing '/'
  std::mt19937_64 random{std::random_device{}()};
};

}  // namespace qscd::api::detail
