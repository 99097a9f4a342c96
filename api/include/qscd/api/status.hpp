#pragma once
// The protocol's closed values: order statuses and request statuses, as CertCentral documents
// them (certcentral-api.md §2.4, §2.6). Parsed once at the boundary; the rest of the project
// compares enums, never strings.
#include <optional>
#include <string_view>

namespace qscd::api {

enum class OrderStatus {
  needs_approval,
  pending,
  processing,
  submitted,
  reissue_pending,
  waiting_pickup,
  issued,
  rejected,
  canceled,
  denied,
  revoked,
  expired,
  unknown,  // a status the documentation does not list; its text stays in the answer's raw JSON
};

std::string_view to_string(OrderStatus status);
// The documented name's status; unknown for any other text.
OrderStatus parse_order_status(std::string_view text);
// CertCentral is still working on the order (or waits on a person): looking again makes sense.
bool is_waiting(OrderStatus status);
// The order will never be issued: rejected, canceled, denied, revoked, expired.
bool is_final_refusal(OrderStatus status);

enum class RequestStatus { pending, submitted, approved, rejected, unknown };

std::string_view to_string(RequestStatus status);
RequestStatus parse_request_status(std::string_view text);
// A request an administrator (or an API key allowed to) may still approve.
bool awaits_approval(RequestStatus status);

}  // namespace qscd::api
