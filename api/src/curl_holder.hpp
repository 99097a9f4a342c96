#pragma once
// A move-only owner of one CURL easy handle and its header list, after cpr's
// CurlHolder. Header nodes are wiped before they are freed: one of them
// carries X-DC-DEVKEY, and curl_slist_append keeps its own copy.
#include <curl/curl.h>

#include <memory>
#include <span>
#include <string_view>

namespace qscd::api {

struct CurlEasyCleanup {
  void operator()(CURL* handle) const noexcept { curl_easy_cleanup(handle); }
};

struct CurlSlistWipeAndFree {
  void operator()(curl_slist* list) const noexcept;
};

using CurlHandle = std::unique_ptr<CURL, CurlEasyCleanup>;
using CurlHeaders = std::unique_ptr<curl_slist, CurlSlistWipeAndFree>;

class CurlHolder {
 public:
  CurlHolder();  // throws std::runtime_error when libcurl cannot make a handle
  CurlHolder(CurlHolder&&) noexcept = default;
  CurlHolder& operator=(CurlHolder&&) noexcept = default;
  CurlHolder(const CurlHolder&) = delete;
  CurlHolder& operator=(const CurlHolder&) = delete;

  [[nodiscard]] CURL* handle() const noexcept { return handle_.get(); }
  // Replaces the request headers (the old list is wiped and freed).
  void set_headers(CurlHeaders headers) noexcept { headers_ = std::move(headers); }
  [[nodiscard]] curl_slist* headers() const noexcept { return headers_.get(); }

 private:
  CurlHandle handle_;
  CurlHeaders headers_;
};

// Appends "name: value" built in a wiped scratch buffer, so the only copy
// outside `value`'s owner is curl's node (wiped by CurlSlistWipeAndFree).
void append_header(CurlHeaders& list, std::string_view name, std::span<const unsigned char> value);
void append_header(CurlHeaders& list, std::string_view line);

}  // namespace qscd::api
