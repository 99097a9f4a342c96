#include <string>

#include "qscd/api/outcome.hpp"

namespace qscd::api {

bool Refused::auth_failed() const {
  if (http_status == 401) return true;
  if (http_status != 403) return false;
  // A 403 is usually a missing permission; only codes naming the key itself
  // mean the key was not accepted.
  for (const auto& error : errors) {
    if (error.code.find("api_key") != std::string::npos || error.detail.find("api_key") != std::string::npos) return true;
  }
  return false;
}

std::string describe(const Pending& pending) {
  return "order " + pending.order_id + " is not issued yet (status " + std::string(to_string(pending.status)) + "); look again in " +
         std::to_string(pending.next_look.count()) + " s";
}

std::string describe(const Rejected& rejected) {
  std::string text = "CertCentral rejected it (" + rejected.code + ")";
  if (!rejected.message.empty()) text += ": " + rejected.message;
  return text;
}

std::string describe(const Unreachable& unreachable) { return "CertCentral unreachable: " + unreachable.reason; }

std::string describe(const Refused& refused) {
  std::string text = refused.auth_failed() ? "API key rejected" : "CertCentral refused the request";
  text += " (HTTP " + std::to_string(refused.http_status) + ")";
  for (std::size_t i = 0; i < refused.errors.size(); ++i) {
    const auto& error = refused.errors[i];
    text += i == 0 ? ": " : "; ";
    text += error.code;
    if (!error.detail.empty()) text += "|" + error.detail;
    if (!error.message.empty()) text += " (" + error.message + ")";
  }
  return text;
}

std::string describe(const Malformed& malformed) { return "unexpected answer from CertCentral: " + malformed.what; }

}  // namespace qscd::api
