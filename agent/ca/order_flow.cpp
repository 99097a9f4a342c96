#include "ca/order_flow.hpp"

#include <openssl/x509.h>

#include <algorithm>
#include <cctype>

#include "base/errors.hpp"
#include "certs/certbundle.hpp"

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

bool same_certificate(X509* a, X509* b) {
  return X509_cmp(a, b) == 0;  // compares the DER's hash and the encoding
}

}  // namespace

std::string_view to_string(AttachAction action) {
  switch (action) {
    case AttachAction::pickup:
      return "pickup";
    case AttachAction::already_attached:
      return "already attached";
    case AttachAction::reissue:
      break;
  }
  return "reissue";
}

bool same_csr(std::string_view a, std::string_view b) {
  std::string left = base64_body(a);
  return !left.empty() && left == base64_body(b);
}

std::string waiting_reason(api::OrderStatus status) {
  using api::OrderStatus;
  switch (status) {
    case OrderStatus::needs_approval:
      return "needs_approval: a CertCentral administrator has to approve the request (--approve does it when the "
             "API key may, or approve it in CertCentral)";
    case OrderStatus::pending:
    case OrderStatus::processing:
    case OrderStatus::submitted:
      return std::string(to_string(status)) + ": DigiCert is validating the organization and the order";
    case OrderStatus::reissue_pending:
      return "reissue_pending: the reissue waits for approval or DigiCert's validation (--approve approves it when "
             "the API key may)";
    case OrderStatus::waiting_pickup:
      return "waiting_pickup: the QSCD order waits for its key: attach the CSR with `order attach` (the pickup step)";
    default:
      return std::string(to_string(status));
  }
}

std::vector<ossl::X509Ptr> read_downloaded(std::string_view pem, const std::string& origin) {
  std::vector<ossl::X509Ptr> certificates;
  try {
    certificates = read_certificates(pem, origin);
  } catch (const UsageError& e) {
    throw CaError(std::string("CertCentral's certificate download: ") + e.what());
  }
  std::vector<ossl::X509Ptr> unique;
  for (auto& certificate : certificates) {
    const bool seen = std::any_of(unique.begin(), unique.end(),
                                  [&](const ossl::X509Ptr& kept) { return same_certificate(kept.get(), certificate.get()); });
    if (!seen) unique.push_back(std::move(certificate));
  }
  return unique;
}

OrderFlow::OrderFlow(api::Client& client, std::function<void(const std::string&)> say)
    : client_(client), say_(std::move(say)) {}

Attached OrderFlow::attach(std::string_view order_id, const AttachRequest& request) {
  const api::OrderInfo order = client_.order_info(order_id).value_or_throw();
  Attached attached;
  if (!order.csr.empty() && same_csr(order.csr, request.csr_pem)) {
    // The reissue or pickup went out before a stop: a second one would be a second request.
    attached.action = AttachAction::already_attached;
  } else if (order.status == api::OrderStatus::waiting_pickup) {
    attached.action = AttachAction::pickup;
    client_.pickup(order_id, request.csr_pem, request.init_code).value_or_throw();
  } else if (order.status == api::OrderStatus::issued) {
    attached.action = AttachAction::reissue;
    api::ReissueRequest reissue;
    reissue.csr = request.csr_pem;
    reissue.comments = request.comments;
    attached.answer = client_.reissue(order_id, reissue).value_or_throw();
  } else {
    throw UsageError(request.field, "order " + std::string(order_id) + " is " + std::string(to_string(order.status)) +
                                        ": a CSR can be attached to an issued order (reissue) or to one waiting for pickup");
  }
  return attached;
}

std::vector<std::string> OrderFlow::approve_pending(std::string_view order_id, const std::vector<api::RequestRef>& requests,
                                                    std::string_view comment) {
  std::vector<std::string> approved;
  for (const api::RequestRef& request : requests) {
    if (!api::awaits_approval(request.status)) continue;
    if (std::find(approved_.begin(), approved_.end(), request.id) != approved_.end()) continue;
    client_.update_request_status(request.id, api::RequestStatus::approved, comment).value_or_throw();
    approved_.push_back(request.id);
    approved.push_back(request.id);
    if (say_) {
      say_("approved request " + request.id + (request.type.empty() ? std::string() : " (" + request.type + ")") +
           " of order " + std::string(order_id));
    }
  }
  return approved;
}

OrderLook OrderFlow::look(std::string_view order_id, const LookOptions& options) {
  OrderLook look;
  look.order = client_.order_info(order_id).value_or_throw();
  if (options.approve && !approve_pending(order_id, look.order.requests, "approved by qscd-agent --approve").empty()) {
    look.order = client_.order_info(order_id).value_or_throw();
  }
  const api::OrderInfo& order = look.order;
  const std::string id = order.id.empty() ? std::string(order_id) : order.id;
  if (order.status == api::OrderStatus::issued) {
    // After a reissue the order is issued with the old certificate until the new one is out.
    if (!options.expected_csr.empty() && !order.csr.empty() && !same_csr(order.csr, options.expected_csr)) {
      look.kind = OrderLook::Kind::waiting;
      look.detail = "issued, but the certificate for this CSR is not out yet";
      return look;
    }
    if (!order.certificate_id) throw CaError("order " + id + " is issued but names no certificate id");
    look.kind = OrderLook::Kind::issued;
    look.certificate_id = *order.certificate_id;
    return look;
  }
  if (api::is_waiting(order.status)) {
    look.kind = OrderLook::Kind::waiting;
    look.detail = waiting_reason(order.status);
    return look;
  }
  if (!api::is_final_refusal(order.status)) {
    // Not a decision against the order: the job stays where it is and a rerun looks again.
    throw CaError("order " + id + " has an undocumented status \"" + order.raw.value("status", std::string()) + "\"");
  }
  look.kind = OrderLook::Kind::refused;
  const std::string status(to_string(order.status));
  look.detail = "order " + id + ": " + api::describe(api::Rejected{status, "order " + id + " is " + status});
  return look;
}

std::vector<ossl::X509Ptr> OrderFlow::download(std::string_view certificate_id) {
  const std::string pem = client_.download_certificate(certificate_id, api::CertificateFormat::pem_noroot).value_or_throw();
  return read_downloaded(pem, "certificate " + std::string(certificate_id));
}

std::vector<ossl::X509Ptr> OrderFlow::download_for_order(std::string_view order_id) {
  const std::string pem =
      client_.download_order_certificate(order_id, api::CertificateFormat::pem_noroot).value_or_throw();
  return read_downloaded(pem, "order " + std::string(order_id));
}

}  // namespace qscd::agent
