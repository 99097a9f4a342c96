#pragma once
// The one order flow: submit, attach (reissue, pickup), approve, look, download. `order …` and
// the jobs' steps both call it, so the rules live once: which order a CSR can be attached to,
// which requests --approve approves, when an order counts as issued for a CSR, and how a
// download is read.
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/ossl.hpp"
#include "qscd/api/client.hpp"

namespace qscd::agent {

// already_attached: the order carries this CSR already (a run stopped after its POST went out).
enum class AttachAction { reissue, pickup, already_attached };
std::string_view to_string(AttachAction action);

struct AttachRequest {
  std::string csr_pem;
  std::optional<std::string> comments;            // the reissue's comments (a job's tag)
  std::span<const unsigned char> init_code = {};  // the pickup step's, when there is one
  std::string field = "ORDER_ID";                 // the option named when the order cannot take a CSR
};

struct Attached {
  AttachAction action = AttachAction::reissue;
  std::optional<api::SubmitResult> answer;  // the reissue's answer; the pickup has none
};

// One look at an order.
struct OrderLook {
  enum class Kind { issued, waiting, refused };
  Kind kind = Kind::waiting;
  api::OrderInfo order;
  std::string certificate_id;  // issued: the certificate for the CSR looked for
  std::string detail;          // waiting / refused: why, for a person
};

struct LookOptions {
  bool approve = false;      // approve every request awaiting approval first
  std::string expected_csr;  // issued only once the order's certificate is for this CSR (a reissue)
};

class OrderFlow {
 public:
  // `say` gets one line per action a person should know of (an approval); may be empty.
  explicit OrderFlow(api::Client& client, std::function<void(const std::string&)> say = {});

  [[nodiscard]] api::Client& client() noexcept { return client_; }

  // A CSR for an existing order: a reissue of an issued order, the pickup step of a QSCD order
  // waiting for its key. Any other status -> UsageError(request.field, ...), nothing sent.
  // A refusal -> api::CallFailed.
  Attached attach(std::string_view order_id, const AttachRequest& request);

  // Approves every one of the order's `requests` (from its info or a POST answer) that awaits
  // approval (new, reissue, duplicate) and that this flow has not approved before; returns their
  // ids. CertCentral's refusal (a key not allowed to approve) -> api::CallFailed.
  std::vector<std::string> approve_pending(std::string_view order_id, const std::vector<api::RequestRef>& requests,
                                           std::string_view comment);

  // GET the order and say where it stands. With `approve`, requests awaiting approval are
  // approved and the order is looked at again. Transport and API failures -> api::CallFailed; a
  // status the documentation does not list -> CaError.
  OrderLook look(std::string_view order_id, const LookOptions& options = {});

  // The certificate and its issuers (pem_noroot), each certificate once (by issuer and serial,
  // however often the download repeats it). An answer that holds no certificate -> CaError.
  std::vector<ossl::X509Ptr> download(std::string_view certificate_id);
  // The same for the order's active certificate.
  std::vector<ossl::X509Ptr> download_for_order(std::string_view order_id);

 private:
  api::Client& client_;
  std::function<void(const std::string&)> say_;
  std::vector<std::string> approved_;
};

// What an order in `status` waits for, and what a person can do about it: for progress lines.
std::string waiting_reason(api::OrderStatus status);

// Whether two PEM (or bare base64) CSRs hold the same DER: compares the base64 with armour
// lines and whitespace removed (CertCentral may reflow it).
bool same_csr(std::string_view a, std::string_view b);

// The certificates of `pem`, each once (issuer and serial), in order. Throws CaError naming
// `origin` when it holds none.
std::vector<ossl::X509Ptr> read_downloaded(std::string_view pem, const std::string& origin);

}  // namespace qscd::agent
