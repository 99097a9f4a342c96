#include "transport.hpp"

#include <curl/curl.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <new>

#include "qscd/api/error.hpp"

namespace qscd::api::detail {

using nlohmann::json;

namespace {

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

std::string string_or_empty(const json& parent, const char* key) {
  auto it = parent.find(key);
  if (it == parent.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

const char* method_name(Method method) {
  switch (method) {
    case Method::get: return "GET";
    case Method::post: return "POST";
    case Method::put: return "PUT";
  }
  return "GET";
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

Transport::Transport(ClientOptions o, ApiKey k) : options(std::move(o)), key(std::move(k)) {
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

double Transport::jitter() {
  if (options.jitter) return options.jitter();
  return std::uniform_real_distribution<double>(0.0, 1.0)(random);
}

std::chrono::milliseconds Transport::backoff(int attempt, const std::optional<std::chrono::seconds>& retry_after) {
  const auto& policy = options.retry;
  if (retry_after) {
    return std::min<std::chrono::milliseconds>(*retry_after, policy.max_retry_after);
  }
  double full = static_cast<double>(policy.base_delay.count()) * std::pow(2.0, attempt - 1);
  full = std::min(full, static_cast<double>(policy.max_delay.count()));
  // "Equal jitter": at least half the delay, so retries spread but still back off.
  return std::chrono::milliseconds(static_cast<std::int64_t>(full / 2 + jitter() * full / 2));
}

std::size_t Transport::on_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* self = static_cast<std::pair<std::string*, std::size_t>*>(user);
  std::size_t bytes = size * count;
  if (self->first->size() + bytes > self->second) return 0;  // makes curl stop with CURLE_WRITE_ERROR
  self->first->append(data, bytes);
  return bytes;
}

int Transport::on_debug(CURL*, curl_infotype type, char* data, std::size_t size, void* user) {
  auto* self = static_cast<Transport*>(user);
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

int Transport::on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* self = static_cast<const Transport*>(user);
  return self->options.cancelled() ? 1 : 0;
}

bool Transport::pause(std::chrono::milliseconds delay) {
  if (!options.cancelled) {
    options.clock->sleep_for(delay);
    return true;
  }
  constexpr std::chrono::milliseconds slice{100};
  while (delay > std::chrono::milliseconds::zero()) {
    if (options.cancelled()) return false;
    const auto step = std::min(delay, slice);
    options.clock->sleep_for(step);
    delay -= step;
  }
  return !options.cancelled();
}

HttpResult Transport::perform_once(Method method, const std::string& url, const std::string* body) {
  if (options.cancelled && options.cancelled()) {
    HttpResult cancelled;
    cancelled.transport_error = std::string(method_name(method)) + " " + url + ": cancelled before it was sent";
    return cancelled;
  }
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
  // Plain http is loopback only (url.cpp) and goes there directly: through an http_proxy the
  // API key would cross the network in clear.
  if (url.starts_with("http://")) curl_easy_setopt(h, CURLOPT_PROXY, "");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, curl.headers());
  curl_easy_setopt(h, CURLOPT_USERAGENT, options.user_agent.c_str());
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout.count()));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options.total_timeout.count()));
  curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(options.max_body_bytes));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Transport::on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
  if (!options.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, options.ca_file.c_str());
  if (options.cancelled) {
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &Transport::on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, this);
  }
  if (options.trace) {
    curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, &Transport::on_debug);
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
    std::string reason = code == CURLE_ABORTED_BY_CALLBACK ? std::string("cancelled during the transfer")
                         : error_buffer[0] != '\0'      ? std::string(error_buffer)
                                                         : std::string(curl_easy_strerror(code));
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

HttpResult Transport::call(Method method, const std::string& path, const std::string* body, Repeat repeat) {
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
    if (options.on_retry) {
      RetryNotice notice;
      notice.call = std::string(method_name(method)) + " " + path;
      if (result.transport_error) {
        notice.reason = *result.transport_error;
      } else {
        notice.reason = "HTTP " + std::to_string(result.status) + (result.status == 429 ? " (rate limited)" : "");
      }
      notice.next_attempt = attempt + 1;
      notice.max_attempts = options.retry.max_attempts;
      notice.delay = delay;
      options.on_retry(notice);
    }
    if (!pause(delay)) {
      result.transport_error = std::string(method_name(method)) + " " + path + ": cancelled while waiting to try again";
      result.transient = false;
      return result;
    }
  }
}

HttpResult Transport::call_json(Method method, const std::string& path, const json* body, Repeat repeat) {
  std::string text;
  if (body != nullptr) text = body->dump();
  ScopedCleanse wipe(text);  // order bodies may hold card details
  return call(method, path, body != nullptr ? &text : nullptr, repeat);
}

Outcome<Done> Transport::empty_call(Method method, const std::string& path, const json& body, Repeat repeat) {
  HttpResult r = call_json(method, path, &body, repeat);
  return interpret<Done>(method, path, r, [](const HttpResult&) -> Outcome<Done> { return Done{}; });
}

std::string Transport::escape(std::string_view text) {
  char* escaped = curl_easy_escape(curl.handle(), text.data(), static_cast<int>(text.size()));
  if (escaped == nullptr) throw std::bad_alloc();
  std::string out(escaped);
  curl_free(escaped);
  return out;
}
}  // namespace qscd::api::detail
