#include <arpa/inet.h>
#include <curl/curl.h>

#include <algorithm>
#include <memory>
#include <string>

#include "qscd/api/client.hpp"
#include "qscd/api/error.hpp"

namespace qscd::api {

namespace {

struct UrlCleanup {
  void operator()(CURLU* url) const noexcept { curl_url_cleanup(url); }
};
struct CurlFree {
  void operator()(char* text) const noexcept { curl_free(text); }
};

std::string url_part(CURLU* url, CURLUPart part) {
  char* raw = nullptr;
  if (curl_url_get(url, part, &raw, 0) != CURLUE_OK || raw == nullptr) return {};
  std::unique_ptr<char, CurlFree> owned(raw);
  return raw;
}

bool is_loopback(std::string host) {
  std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (host == "localhost") return true;
  if (host == "[::1]") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24U) == 127U;
  return false;
}

}  // namespace

void check_base_url(const std::string& url) {
  std::unique_ptr<CURLU, UrlCleanup> parsed(curl_url());
  if (!parsed || curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) {
    throw ConfigError("--api-url", "\"" + url + "\" is not a URL");
  }
  std::string scheme = url_part(parsed.get(), CURLUPART_SCHEME);
  std::string host = url_part(parsed.get(), CURLUPART_HOST);
  if (!url_part(parsed.get(), CURLUPART_USER).empty() || !url_part(parsed.get(), CURLUPART_QUERY).empty() ||
      !url_part(parsed.get(), CURLUPART_FRAGMENT).empty()) {
    throw ConfigError("--api-url", "must not carry a user, a query or a fragment");
  }
  if (scheme == "https") return;
  if (scheme == "http") {
    if (is_loopback(host)) return;
    throw ConfigError("--api-url", "plain http:// is refused except to loopback (127.0.0.0/8, ::1, localhost); use https://");
  }
  throw ConfigError("--api-url", "must be an https:// URL");
}

}  // namespace qscd::api
