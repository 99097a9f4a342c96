// The order steps: SUBMITTING (a new order, or --order: reissue or pickup), NEED_ORDER_LOOKUP
// and CA_WORKING (look, approve, download, the post-issuance checks). The CA calls themselves
// are the order flow's (ca/order_flow), shared with `order …`.
#include <chrono>
#include <cstdio>
#include <ctime>

#include "base/errors.hpp"
#include "ca/order_lookup.hpp"
#include "certs/install.hpp"
#include "provision/token_run.hpp"
#include "qscd/api/error.hpp"

namespace qscd::agent {

using std::chrono::seconds;

namespace {

bool is_definite_refusal(const api::Refused& refused) {
  // A 4xx answer means CertCentral looked at the request and created nothing. A 5xx may come
  // from a proxy after the order was made, so it counts as uncertain.
  return refused.http_status >= 400 && refused.http_status < 500;
}

std::string job_tag_comment(const Job& job) { return "[qscd-agent job " + job.job_tag + "]"; }

// How long the job has waited on CertCentral: since it first began to submit.
seconds waited_since(const std::string& utc_iso) {
  std::tm tm{};
  if (std::sscanf(utc_iso.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                  &tm.tm_sec) != 6) {
    return seconds(0);
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const auto since = std::chrono::system_clock::from_time_t(timegm(&tm));
  const auto waited = std::chrono::duration_cast<seconds>(std::chrono::system_clock::now() - since);
  return waited > seconds(0) ? waited : seconds(0);
}

// The documented POST answer of an order issued at once carries `certificate_chain`
// ([{subject_common_name, pem}]): the certificates are then installed from it, with no download.
// A certificate id alone says nothing about issuance (CertCentral gives one to pending orders
// too), so it is not kept here: the wait looks at the order.
void take_chain_from_answer(const api::SubmitResult& answer, StepResult& result) {
  if (!answer.certificate_id || !answer.raw.is_object() || !answer.raw.contains("certificate_chain")) return;
  const nlohmann::json& chain = answer.raw.at("certificate_chain");
  if (!chain.is_array() || chain.empty()) return;
  std::string pems;
  for (const auto& entry : chain) {
    if (!entry.is_object() || !entry.contains("pem") || !entry["pem"].is_string()) return;
    pems += entry["pem"].get<std::string>();
    if (!pems.empty() && pems.back() != '\n') pems += '\n';
  }
  result.update.certificate_id = to_order_number(*answer.certificate_id, "certificate id");
  result.update.chain_pem = pems;
}

}  // namespace

OrderSearch order_search(const Job& job, std::string common_name) {
  return OrderSearch{job.key.product, job.job_tag, job.submit_intent_at, job.csr_pem, std::move(common_name)};
}

// The POST that creates the order. Its answer decides: an order id moves on, a definite "no"
// goes back or fails, anything uncertain goes to the lookup, never straight to another POST.
StepResult TokenRun::submit(const Job& job) {
  api::OrderRequest request = inputs_.order;
  request.certificate.csr = job.csr_pem;
  api::default_common_name(request, common_name_of(read_csr(job.csr_pem, "the job's CSR").get()));
  // The tag lets a resumed job find this order again (docs/journal.md).
  const std::string tag = job_tag_comment(job);
  request.comments = request.comments && !request.comments->empty() ? *request.comments + " " + tag : tag;
  api::validate(request, std::chrono::system_clock::now());
  auto placed = ca().client().submit_order(request);
  switch (placed.kind()) {
    case api::OutcomeKind::ok: {
      test_crash_point("SUBMITTING:posted");
      const api::SubmitResult& answer = placed.value();
      StepResult result(JobState::ca_working, seconds(0), "order " + answer.order_id + " placed");
      result.update.order_id = to_order_number(answer.order_id, "order id");
      if (!answer.requests.empty()) {
        try {
          result.update.request_id = std::stoll(answer.requests.front().id);
        } catch (const std::exception&) {
          // A request id that is not a number is only informative; the order id is what counts.
        }
      }
      take_chain_from_answer(answer, result);
      return result;
    }
    case api::OutcomeKind::rejected:
      return StepResult(JobState::failed, seconds(0), "CertCentral rejected the order: " + placed.describe());
    case api::OutcomeKind::refused: {
      const api::Refused& refused = placed.refused();
      if (refused.auth_failed()) placed.value_or_throw();  // "API key rejected"
      if (refused.http_status == 429) {
        return StepResult(JobState::need_to_submit, seconds(5), "rate limited before the order was made: " + placed.describe());
      }
      if (is_definite_refusal(refused)) return StepResult(JobState::failed, seconds(0), "CertCentral refused the order: " + placed.describe());
      return StepResult(JobState::need_order_lookup, seconds(5), "no clear answer to the order (" + placed.describe() + "): looking it up");
    }
    default:
      return StepResult(JobState::need_order_lookup, seconds(5), "no clear answer to the order (" + placed.describe() + "): looking it up");
  }
}

// --order ID: a reissue for an issued order, the pickup step for a QSCD order.
StepResult TokenRun::attach(const Job& job) {
  const std::string id = std::to_string(*job.order_id);
  AttachRequest request;
  request.csr_pem = job.csr_pem;
  request.comments = job_tag_comment(job);
  request.field = "--order";
  const Attached attached = ca().attach(id, request);
  test_crash_point("SUBMITTING:posted");
  StepResult result(JobState::ca_working, seconds(0), "CSR attached to order " + id + " (" + std::string(to_string(attached.action)) + ")");
  if (attached.answer) take_chain_from_answer(*attached.answer, result);
  return result;
}

StepResult TokenRun::look_up_order(const Job& job) {
  if (job.order_id) {
    const std::string id = std::to_string(*job.order_id);
    api::OrderInfo order = ca().client().order_info(id).value_or_throw();
    if (same_csr(order.csr, job.csr_pem)) return StepResult(JobState::ca_working, seconds(0), "order " + id + " already carries this CSR");
    return StepResult(JobState::need_to_submit, seconds(0), "order " + id + " does not carry this CSR yet");
  }
  const std::string common_name = common_name_of(read_csr(job.csr_pem, "the job's CSR").get());
  OrderLookup lookup = find_order(ca().client(), order_search(job, common_name));
  if (lookup.adopted) {
    StepResult result(JobState::ca_working, seconds(0), "adopted order " + lookup.adopted->id + ", placed before the answer was lost");
    result.update.order_id = to_order_number(lookup.adopted->id, "order id");
    return result;
  }
  return StepResult(JobState::need_to_submit, seconds(0),
                    "no order carries this job's CSR (" + std::to_string(lookup.candidates) + " looked at): submitting");
}

StepResult TokenRun::wait_for_ca(const Job& job) {
  const std::string order_id = std::to_string(*job.order_id);
  std::string certificate_id;
  std::vector<ossl::X509Ptr> certificates;
  if (job.certificate_id && !job.chain_pem.empty()) {
    // Issued at once, the chain in the POST answer: no wait, no download.
    certificate_id = std::to_string(*job.certificate_id);
    certificates = read_certificates(std::string_view(job.chain_pem), "the order's answer");
  } else {
    const OrderLook look = ca().look(order_id, LookOptions{inputs_.approve, job.csr_pem});
    switch (look.kind) {
      case OrderLook::Kind::waiting:
        return StepResult(JobState::ca_working, inputs_.schedule.next(waited_since(job.submit_intent_at)),
                          "order " + order_id + " is " + look.detail);
      case OrderLook::Kind::refused:
        return StepResult(JobState::failed, seconds(0), look.detail);
      case OrderLook::Kind::issued:
        certificate_id = look.certificate_id;
        break;
    }
  }
  if (certificates.empty()) certificates = ca().download(certificate_id);
  EVP_PKEY* public_key = token_public_key(job);
  const auto csr = read_csr(job.csr_pem, "the job's CSR");
  IssuanceExpectations expected = expectations();
  expected.csr = csr.get();
  PreparedInstall prepared;
  try {
    prepared = prepare_install(std::move(certificates), public_key, inputs_.trust, expected);
  } catch (const ChainNotTrusted&) {
    throw;  // the job stays here: a rerun with the right --trust continues it
  } catch (const CertificateRejected& e) {
    for (const std::string& line : e.findings()) say("check: " + line);
    return StepResult(JobState::failed, seconds(0), e.what());  // this certificate will never fit
  } catch (const CertificateError& e) {
    return StepResult(JobState::failed, seconds(0), e.what());  // this certificate will never fit
  }
  for (const std::string& line : prepared.report.lines()) say("check: " + line);
  issuance_report_ = prepared.report;
  if (!prepared.chain_warning.empty()) say("warning: " + prepared.chain_warning);
  StepResult result(JobState::need_to_install, seconds(0), "certificate " + serial_hex(prepared.end_entity.get()) + " issued and checked");
  result.update.certificate_id = to_order_number(certificate_id, "certificate id");
  result.update.chain_pem = prepared.chain_pem();
  result.update.cert_sha256 = certificate_sha256(prepared.end_entity.get());
  result.update.cert_serial = serial_hex(prepared.end_entity.get());
  return result;
}

}  // namespace qscd::agent
