#include "qscd/api/status.hpp"

#include <array>
#include <utility>

namespace qscd::api {

namespace {

constexpr std::array<std::pair<OrderStatus, std::string_view>, 12> order_names{{
    {OrderStatus::needs_approval, "needs_approval"},
    {OrderStatus::pending, "pending"},
    {OrderStatus::processing, "processing"},
    {OrderStatus::submitted, "submitted"},
    {OrderStatus::reissue_pending, "reissue_pending"},
    {OrderStatus::waiting_pickup, "waiting_pickup"},
    {OrderStatus::issued, "issued"},
    {OrderStatus::rejected, "rejected"},
    {OrderStatus::canceled, "canceled"},
    {OrderStatus::denied, "denied"},
    {OrderStatus::revoked, "revoked"},
    {OrderStatus::expired, "expired"},
}};

constexpr std::array<std::pair<RequestStatus, std::string_view>, 4> request_names{{
    {RequestStatus::pending, "pending"},
    {RequestStatus::submitted, "submitted"},
    {RequestStatus::approved, "approved"},
    {RequestStatus::rejected, "rejected"},
}};

template <class Enum, std::size_t N>
std::string_view name_in(const std::array<std::pair<Enum, std::string_view>, N>& names, Enum value) {
  for (const auto& [known, name] : names) {
    if (known == value) return name;
  }
  return "unknown";
}

template <class Enum, std::size_t N>
Enum value_in(const std::array<std::pair<Enum, std::string_view>, N>& names, std::string_view text) {
  for (const auto& [value, name] : names) {
    if (name == text) return value;
  }
  return Enum::unknown;
}

}  // namespace

std::string_view to_string(OrderStatus status) { return name_in(order_names, status); }
OrderStatus parse_order_status(std::string_view text) { return value_in(order_names, text); }

bool is_waiting(OrderStatus status) {
  switch (status) {
    case OrderStatus::needs_approval:
    case OrderStatus::pending:
    case OrderStatus::processing:
    case OrderStatus::submitted:
    case OrderStatus::reissue_pending:
    case OrderStatus::waiting_pickup:
      return true;
    default:
      return false;
  }
}

bool is_final_refusal(OrderStatus status) {
  switch (status) {
    case OrderStatus::rejected:
    case OrderStatus::canceled:
    case OrderStatus::denied:
    case OrderStatus::revoked:
    case OrderStatus::expired:
      return true;
    default:
      return false;
  }
}

std::string_view to_string(RequestStatus status) { return name_in(request_names, status); }
RequestStatus parse_request_status(std::string_view text) { return value_in(request_names, text); }

bool awaits_approval(RequestStatus status) { return status == RequestStatus::pending || status == RequestStatus::submitted; }

}  // namespace qscd::api
