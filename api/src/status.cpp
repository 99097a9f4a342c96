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

}  // namespace

std::string_view to_string(OrderStatus status) {
  for (const auto& [value, name] : order_names) {
    if (value == status) return name;
  }
  return "unknown";
}

OrderStatus parse_order_status(std::string_view text) {
  for (const auto& [value, name] : order_names) {
    if (name == text) return value;
  }
  return OrderStatus::unknown;
}

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

std::string_view to_string(RequestStatus status) {
  for (const auto& [value, name] : request_names) {
    if (value == status) return name;
  }
  return "unknown";
}

RequestStatus parse_request_status(std::string_view text) {
  for (const auto& [value, name] : request_names) {
    if (name == text) return value;
  }
  return RequestStatus::unknown;
}

bool awaits_approval(RequestStatus status) { return status == RequestStatus::pending || status == RequestStatus::submitted; }

}  // namespace qscd::api
