#include "provision/token_run.hpp"

#include <openssl/objects.h>
#include <openssl/x509.h>

#include "base/errors.hpp"
#include "base/stop.hpp"
#include "qscd/api/error.hpp"
#include "qscd/pkcs11/attributes.hpp"
#include "qscd/pkcs11/error.hpp"
#include "qscd/pkcs11/keys.hpp"
#include "qscd/pkcs11/login.hpp"

namespace qscd::agent {

using std::chrono::seconds;

namespace {

LabelledKeys sorted_keys(const p11::Session& session, const p11::AttributeTemplate& query) {
  LabelledKeys keys;
  for (p11::ObjectHandle object : session.find(query)) {
    const auto object_class = session.ulong(object, CKA_CLASS);
    if (object_class != CKO_PRIVATE_KEY && object_class != CKO_PUBLIC_KEY) continue;
    if (session.flag(object, CKA_TOKEN) == false) {
      keys.stale.push_back(object);
    } else if (object_class == CKO_PRIVATE_KEY) {
      keys.private_keys.push_back(object);
    } else {
      keys.public_keys.push_back(object);
    }
  }
  return keys;
}

}  // namespace

LabelledKeys labelled_keys(const p11::Session& session, const std::string& label) {
  p11::AttributeTemplate query;
  query.label(label);
  return sorted_keys(session, query);
}

LabelledKeys keys_with_id(const p11::Session& session, const p11::Bytes& id) {
  p11::AttributeTemplate query;
  query.id(id);
  return sorted_keys(session, query);
}

std::string common_name_of(const X509_REQ* request) {
  const X509_NAME* name = X509_REQ_get_subject_name(request);
  int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) return {};
  const ASN1_STRING* value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  int length = ASN1_STRING_to_UTF8(&utf8, value);
  if (length < 0) return {};
  std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(length));
  OPENSSL_free(utf8);
  return out;
}

std::int64_t to_order_number(const std::string& id, const std::string& what) {
  try {
    std::size_t used = 0;
    long long value = std::stoll(id, &used);
    if (used == id.size()) return value;
  } catch (const std::exception&) {
  }
  throw CaError("CertCentral answered with " + what + " '" + id + "', which is not a number");
}

TokenRun::TokenRun(const ProvisionServices& services, const JobInputs& inputs, const p11::TokenInfo& token, Journal journal)
    : services_(services),
      inputs_(inputs),
      token_(token),
      session_(services.tokens.module(), token, p11::Session::Access::read_write),
      journal_(std::move(journal)) {}

const LabelledKeys& TokenRun::labelled(const std::string& label) {
  if (!labelled_ || labelled_->first != label) labelled_.emplace(label, labelled_keys(session_, label));
  return labelled_->second;
}

bool TokenRun::id_free(const p11::Bytes& id) {
  if (free_id_ && *free_id_ == id) return true;
  if (!p11::find_by_id(session_, id).empty()) return false;
  free_id_ = id;
  return true;
}

void TokenRun::say(const std::string& message) const { services_.tokens.log.progress("token '" + token_.label + "': " + message); }

void TokenRun::start_ca_check(bool new_order) {
  ca_check_ = std::async(std::launch::async, [this, new_order] {
    CaCheck check;
    check.organizations.emplace(client().list_organizations());
    if (new_order && !inputs_.order.product.empty()) check.product.emplace(client().product_info(inputs_.order.product));
    return check;
  });
}

void TokenRun::finish_ca_check() {
  if (ca_check_.valid()) ca_checked_ = ca_check_.get();
  if (!ca_checked_ || !ca_checked_->organizations) return;
  auto& answer = *ca_checked_->organizations;
  if (answer.kind() == api::OutcomeKind::refused && answer.refused().auth_failed()) answer.value_or_throw();
}

void TokenRun::check_order_at_ca() {
  if (!ca_check_.valid() && !ca_checked_) start_ca_check(true);
  finish_ca_check();
  if (!ca_checked_) return;
  const api::OrderRequest& order = inputs_.order;
  if (ca_checked_->product && ca_checked_->product->kind() == api::OutcomeKind::refused &&
      ca_checked_->product->refused().http_status == 404) {
    throw UsageError("--product", "CertCentral has no product '" + order.product + "' for this account (GET /product/" +
                                      order.product + " answered 404); see `orgs` and the CertCentral product list");
  }
  const auto& organizations = *ca_checked_->organizations;
  if (order.organization.id && organizations.ok()) {
    const std::string wanted = std::to_string(*order.organization.id);
    std::string known;
    for (const api::OrganizationInfo& organization : organizations.value()) {
      if (organization.id == wanted) return;
      known += (known.empty() ? "" : ", ") + organization.id + (organization.name.empty() ? "" : " (" + organization.name + ")");
    }
    throw UsageError("--order-file", "organization.id " + wanted + " is not an organization of this CertCentral account (it has: " +
                                         (known.empty() ? std::string("none") : known) + ")");
  }
}

api::Client& TokenRun::client() {
  if (!client_) client_ = std::make_unique<api::Client>(make_api_client(services_.ca, inputs_.api_key));
  return *client_;
}

OrderFlow& TokenRun::ca() {
  finish_ca_check();
  if (!flow_) flow_ = std::make_unique<OrderFlow>(client(), [this](const std::string& line) { say(line); });
  return *flow_;
}

void TokenRun::login(const std::optional<Job>& job, bool start_check) {
  try {
    p11::login(session_, CKU_USER, inputs_.pin.bytes(), inputs_.login);
    if (start_check) start_ca_check(false);
  } catch (const p11::PinError& e) {
    if (job && is_allowed(job->state, JobState::need_user_pin)) {
      JobLease lease(journal_, job->id);
      journal_.transition(job->id, lease.job().state, JobState::need_user_pin, e.what());
    }
    throw;
  }
}

RunOptions job_run_options(const TokenRun& run, bool wait, std::optional<std::chrono::seconds> timeout) {
  RunOptions options;
  options.wait = wait;
  if (timeout) options.deadline = std::chrono::steady_clock::now() + *timeout;
  // SIGINT/SIGTERM end a wait at once and the run between two steps (RunStop::stopped).
  options.stop_requested = [] { return stop_requested(); };
  options.sleep = [](seconds delay) { (void)sleep_unless_stopped(delay); };
  options.on_transition = [&run](const Job& now, const std::string& detail) {
    run.say(std::string(to_string(now.state)) + (detail.empty() ? "" : ": " + detail));
  };
  // A failed step is named: the error alone says which call failed, not in which step.
  options.on_step_error = [&run](const Job& job, const std::string& error) {
    run.say("step " + std::string(to_string(job.state)) + " failed: " + error);
  };
  const auto started = std::chrono::steady_clock::now();
  options.on_wait = [&run, started](const Job&, const std::string& why, seconds delay) {
    const auto waited = std::chrono::duration_cast<seconds>(std::chrono::steady_clock::now() - started);
    run.say("waiting for CertCentral (" + why + "): " + std::to_string(waited.count()) + " s so far, next look in " +
            std::to_string(delay.count()) + " s");
  };
  return options;
}

RunResult run_job_until_stopped(Journal& journal, std::int64_t id, const StepTable& steps, const RunOptions& options) {
  try {
    return run_job(journal, id, steps, options);
  } catch (const std::exception&) {
    if (!stop_requested()) throw;
    return RunResult{journal.get(id), RunStop::stopped};
  }
}

IssuanceExpectations TokenRun::expectations() const {
  IssuanceExpectations expected = IssuanceExpectations::for_job(inputs_.profile, inputs_.product);
  if (inputs_.order.provisioning_method == std::optional<std::string>("qscd")) expected.expect_at_least(SealLevel::qualified_qscd);
  if (inputs_.expect_seal) expected.expect_at_least(*inputs_.expect_seal);
  return expected;
}

StepTable TokenRun::steps() {
  StepTable table;
  table.on_effect_free(JobState::need_key_pair, [](const Job& job) {
    return StepResult(JobState::generating_key_pair, seconds(0), "key pair '" + job.key.key_label + "' to be made on the token");
  });
  table.on(JobState::generating_key_pair, [this](const Job& job) { return generate(job); });
  table.on_effect_free(JobState::have_key_pair, [](const Job&) { return StepResult(JobState::need_csr); });
  table.on(JobState::need_csr, [this](const Job& job) { return make_csr(job); });
  table.on_effect_free(JobState::have_csr, [](const Job&) { return StepResult(JobState::need_to_submit); });
  table.on_effect_free(JobState::need_to_submit, [this](const Job& job) {
    const std::string& attach_to = inputs_.attach_order;
    StepResult result(JobState::submitting, seconds(0),
                      attach_to.empty() ? "placing a " + job.key.product + " order" : "attaching the CSR to order " + attach_to);
    if (!attach_to.empty()) result.update.order_id = std::stoll(attach_to);
    return result;
  });
  table.on(JobState::submitting, [this](const Job& job) { return job.order_id ? attach(job) : submit(job); });
  table.on(JobState::need_order_lookup, [this](const Job& job) { return look_up_order(job); });
  table.on(JobState::ca_working, [this](const Job& job) { return wait_for_ca(job); });
  table.on_effect_free(JobState::need_to_install, [](const Job&) {
    return StepResult(JobState::installing, seconds(0), "writing the certificate and its chain to the token");
  });
  table.on(JobState::installing, [this](const Job& job) { return install(job); });
  // The login before run_job succeeded, so a wait on the PIN is over; the token is the one
  // selected, so a wait on the token is over too.
  auto back = [](const Job& job) {
    return StepResult(job.waiting_from.value_or(JobState::need_key_pair), seconds(0), "the token and its PIN are back");
  };
  table.on(JobState::need_user_pin, back);
  table.on(JobState::need_token, back);
  return table;
}

}  // namespace qscd::agent
