#include "curl_holder.hpp"

#include <openssl/crypto.h>

#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <vector>

namespace qscd::api {

void CurlSlistWipeAndFree::operator()(curl_slist* list) const noexcept {
  for (curl_slist* node = list; node != nullptr; node = node->next) {
    if (node->data != nullptr) OPENSSL_cleanse(node->data, std::strlen(node->data));
  }
  curl_slist_free_all(list);
}

CurlHolder::CurlHolder() {
  // curl_global_init is not thread-safe before 7.84; do it once.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  handle_.reset(curl_easy_init());
  if (!handle_) throw std::runtime_error("libcurl could not create a handle");
}

namespace {
void append_raw(CurlHeaders& list, const char* line) {
  curl_slist* grown = curl_slist_append(list.get(), line);
  if (grown == nullptr) throw std::bad_alloc();
  (void)list.release();  // the same list, now one node longer
  list.reset(grown);
}
}  // namespace

void append_header(CurlHeaders& list, std::string_view name, std::span<const unsigned char> value) {
  std::vector<char> line(name.size() + 2 + value.size() + 1, '\0');
  std::memcpy(line.data(), name.data(), name.size());
  std::memcpy(line.data() + name.size(), ": ", 2);
  std::memcpy(line.data() + name.size() + 2, value.data(), value.size());
  try {
    append_raw(list, line.data());
  } catch (...) {
    OPENSSL_cleanse(line.data(), line.size());
    throw;
  }
  OPENSSL_cleanse(line.data(), line.size());
}

void append_header(CurlHeaders& list, std::string_view line) {
  std::string copy(line);
  append_raw(list, copy.c_str());
}

}  // namespace qscd::api
