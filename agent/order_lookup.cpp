#include "order_lookup.hpp"

#include <cctype>
#include <chrono>
#include <cstdio>

#include "qscd/api/error.hpp"

namespace qscd::agent {

namespace {

// The base64 of a PEM: every "-----...-----" armour line removed (also when the
// line breaks are gone), then every whitespace character.
std::string base64_body(std::string_view pem) {
  std::string body;
  std::size_t at = 0;
  while (at < pem.size()) {
    std::size_t armour = pem.find("-----", at);
    std::string_view text = pem.substr(at, armour == std::string_view::npos ? std::string_view::npos : armour - at);
    for (char c : text) {
      if (std::isspace(static_cast<unsigned char>(c)) == 0) body.push_back(c);
    }
    if (armour == std::string_view::npos) break;
    std::size_t close = pem.find("-----", armour + 5);
    if (close == std::string_view::npos) break;
    at = close + 5;
  }
  return body;
}

std::string day_text(std::chrono::sys_days day) {
  std::chrono::year_month_day ymd(day);
  char text[16];
  std::snprintf(text, sizeof text, "%04d-%02u-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()));
  return text;
}

// The days to search: from a day before the intent (clock skew, time zones) to tomorrow.
std::optional<std::string> created_range(const std::string& intent_at) {
  int year = 0;
  unsigned month = 0;
  unsigned day = 0;
  if (std::sscanf(intent_at.c_str(), "%4d-%2u-%2u", &year, &month, &day) != 3) return std::nullopt;
  std::chrono::sys_days intent = std::chrono::year(year) / std::chrono::month(month) / std::chrono::day(day);
  auto today = std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
  return day_text(intent - std::chrono::days(1)) + "..." + day_text(today + std::chrono::days(1));
}

std::optional<api::OrderInfo> scan(api::Client& client, api::OrderFilter filter, const Job& job,
                                   std::size_t& candidates) {
  filter.limit = 100;
  for (;;) {
    auto listed = client.list_orders(filter);
    auto& page = listed.value_or_throw();
    for (const auto& entry : page.orders) {
      auto info = client.order_info(entry.id);
      auto& order = info.value_or_throw();
      ++candidates;
      if (!order.csr.empty() && same_csr(order.csr, job.csr_pem)) return order;
    }
    filter.offset += static_cast<int>(page.orders.size());
    if (page.orders.empty() || filter.offset >= page.total) return std::nullopt;
  }
}

}  // namespace

bool same_csr(std::string_view a, std::string_view b) {
  std::string left = base64_body(a);
  return !left.empty() && left == base64_body(b);
}

OrderLookup find_order_for_job(api::Client& client, const Job& job, std::string_view common_name) {
  if (job.csr_pem.empty()) throw std::logic_error("job " + std::to_string(job.id) + " has no CSR to look for");
  OrderLookup lookup;
  api::OrderFilter broad;
  broad.product_name_id = job.key.product;
  broad.date_created = created_range(job.submit_intent_at);
  api::OrderFilter tagged = broad;
  tagged.search = job.job_tag;
  if (!common_name.empty()) tagged.common_name = std::string(common_name);
  lookup.adopted = scan(client, tagged, job, lookup.candidates);
  if (!lookup.adopted) lookup.adopted = scan(client, broad, job, lookup.candidates);
  return lookup;
}

}  // namespace qscd::agent
