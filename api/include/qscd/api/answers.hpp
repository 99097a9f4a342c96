#pragma once
// How the client reads CertCentral's answers, apart from HTTP: one answer's status, content type
// and body in, the call's outcome out, through the same parsing and mapping as Client's calls
// (client.cpp, transport.hpp's interpret_answer). For the fuzz targets (tests/fuzz).
#include <string>
#include <vector>

#include "qscd/api/client.hpp"
#include "qscd/api/outcome.hpp"

namespace qscd::api {

struct Answer {
  long status = 200;
  std::string content_type = "application/json";
  std::string body;
};

// GET /order/certificate/{id}, as Client::order_info reads it.
Outcome<OrderInfo> read_order_info_answer(const Answer& answer);
// GET /order/certificate, as Client::list_orders.
Outcome<OrderList> read_order_list_answer(const Answer& answer);
// POST /order/certificate/{product} and reissue, as Client::submit_order and Client::reissue.
Outcome<SubmitResult> read_submit_answer(const Answer& answer);
// GET /organization, as Client::list_organizations.
Outcome<std::vector<OrganizationInfo>> read_organizations_answer(const Answer& answer);
// The certificate downloads, as Client::download_certificate: the body as served.
Outcome<std::string> read_download_answer(const Answer& answer);
// Answers without a body (204: request status, cancel, pickup), as Client's empty calls.
Outcome<Done> read_empty_answer(const Answer& answer);

}  // namespace qscd::api
