#include "ca/order_lookup.hpp"

#include <chrono>
#include <cstdio>

#include "ca/order_flow.hpp"
#include "qscd/api/error.hpp"

namespace qscd::agent {

namespace {

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

std::optional<api::OrderInfo> scan(api::Client& client, api::OrderFilter filter, const OrderSearch& search,
                                   std::size_t& candidates) {
  filter.limit = 100;
  for (;;) {
    auto listed = client.list_orders(filter);
    auto& page = listed.value_or_throw();
    for (const auto& entry : page.orders) {
      auto info = client.order_info(entry.id);
      auto& order = info.value_or_throw();
      ++candidates;
      if (!order.csr.empty() && same_csr(order.csr, search.csr_pem)) return order;
    }
    filter.offset += static_cast<int>(page.orders.size());
    if (page.orders.empty() || filter.offset >= page.total) return std::nullopt;
  }
}

}  // namespace

OrderLookup find_order(api::Client& client, const OrderSearch& search) {
  if (search.csr_pem.empty()) throw std::logic_error("order lookup without a CSR to look for");
  OrderLookup lookup;
  api::OrderFilter broad;
  broad.product_name_id = search.product;
  broad.date_created = created_range(search.submit_intent_at);
  api::OrderFilter tagged = broad;
  tagged.search = search.job_tag;
  if (!search.common_name.empty()) tagged.common_name = search.common_name;
  lookup.adopted = scan(client, tagged, search, lookup.candidates);
  if (!lookup.adopted) lookup.adopted = scan(client, broad, search, lookup.candidates);
  return lookup;
}

}  // namespace qscd::agent
