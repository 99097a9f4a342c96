#include "renew/renewer.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <stdexcept>

#include "base/errors.hpp"
#include "ca/client_factory.hpp"
#include "ca/order_file.hpp"
#include "ca/order_lookup.hpp"
#include "certs/certbundle.hpp"
#include "csr/profile.hpp"
#include "provision/token_run.hpp"
#include "qscd/api/error.hpp"
#include "qscd/api/order.hpp"
#include "qscd/pkcs11/error.hpp"
#include "qscd/pkcs11/keys.hpp"
#include "qscd/pkcs11/login.hpp"
#include "qscd/pkcs11/uri.hpp"
#include "renew/due.hpp"
#include "renew/retire_step.hpp"
#include "renew/token_pairs.hpp"

namespace qscd::agent {

std::string_view to_string(RenewalAction action) {
  switch (action) {
    case RenewalAction::none:
      return "none";
    case RenewalAction::reissue:
      return "reissue";
    case RenewalAction::new_order:
      return "new_order";
    case RenewalAction::new_order_needed:
      return "new_order_needed";
    case RenewalAction::resume:
      return "resume";
    case RenewalAction::no_order:
      return "no_order";
  }
  return "none";
}

namespace {

using std::chrono::seconds;

std::string random_id_hex() {
  unsigned char id[16];
  if (RAND_bytes(id, sizeof id) != 1) throw std::runtime_error("no random bytes for the new key's CKA_ID");
  return p11::to_hex(id);
}

// What the journal knows about a certificate it installed: the job that did it.
std::optional<Job> job_that_installed(const std::vector<Job>& jobs, const std::string& token_serial, const std::string& serial) {
  for (auto it = jobs.rbegin(); it != jobs.rend(); ++it) {
    if (it->key.token_serial == token_serial && it->cert_serial == serial && it->state == JobState::monitoring) return *it;
  }
  return std::nullopt;
}

std::optional<Job> live_renewal_of(const std::vector<Job>& jobs, const std::string& token_serial, const std::string& serial) {
  for (const Job& job : jobs) {
    if (job.kind == JobKind::renewal && job.key.token_serial == token_serial && job.key.renews_serial == serial &&
        job.state != JobState::failed && job.state != JobState::monitoring) {
      return job;
    }
  }
  return std::nullopt;
}

// A new order for a renewal: the old order's organization, product, names and validity, and
// renewal_of_order_id; an --order-file body when given replaces all but the last.
api::OrderRequest renewal_order(const api::OrderInfo& old, const std::optional<nlohmann::json>& body_file) {
  nlohmann::json body;
  if (body_file) {
    body = *body_file;
  } else {
    const nlohmann::json& raw = old.raw;
    if (auto organization = raw.find("organization"); organization != raw.end() && organization->contains("id")) {
      body["organization"] = {{"id", (*organization)["id"]}};
    }
    nlohmann::json certificate;
    if (auto held = raw.find("certificate"); held != raw.end() && held->is_object()) {
      for (const char* key : {"common_name", "dns_names", "signature_hash"}) {
        if (held->contains(key)) certificate[key] = (*held)[key];
      }
    }
    if (!certificate.empty()) body["certificate"] = certificate;
    if (raw.contains("validity_years")) body["order_validity"] = {{"years", raw["validity_years"]}};
    if (!body.contains("order_validity")) body["order_validity"] = {{"years", 1}};
  }
  api::OrderRequest request = api::order_request_from_json(old.product_name_id, body);
  request.renewal_of_order_id = to_order_number(old.id, "order id");
  return request;
}

}  // namespace

struct Renewer::State {
  State(ProvisionServices s, RenewOptions o) : services(std::move(s)), options(std::move(o)) {}
  ProvisionServices services;
  RenewOptions options;
  api::SecretBytes api_key;
  api::SecretBytes pin;
  api::SecretBytes sign_pin;
  std::optional<nlohmann::json> order_body;
  std::optional<std::filesystem::path> trust;
  std::mutex journal_mutex;
  std::optional<Journal> spare_journal;

  Journal journal() {
    std::lock_guard<std::mutex> lock(journal_mutex);
    if (spare_journal) {
      Journal journal = std::move(*spare_journal);
      spare_journal.reset();
      return journal;
    }
    return Journal::open(services.state_dir());
  }

  void say(const p11::TokenInfo& token, const std::string& message) const {
    services.tokens.log.progress("token '" + token.label + "': " + message);
  }

  // The order a certificate came from, and what renewal would do with it.
  void find_order(RenewalPlan& plan, const TokenPair& pair, const std::optional<Job>& installer, api::Client& client) const {
    std::optional<api::OrderInfo> order;
    if (installer && installer->order_id) {
      order = client.order_info(std::to_string(*installer->order_id)).value_or_throw();
    } else {
      // An order is found by its certificate's serial number (reference §2.4, §2.6).
      api::OrderFilter filter;
      filter.serial_number = pair.serial;
      api::OrderList found = client.list_orders(filter).value_or_throw();
      if (!found.orders.empty()) order = client.order_info(found.orders.front().id).value_or_throw();
    }
    if (!order) {
      plan.action = RenewalAction::no_order;
      plan.detail = "no CertCentral order has a certificate with serial " + pair.serial + ": nothing to reissue";
      return;
    }
    plan.order_id = to_order_number(order->id, "order id");
    plan.order_valid_till = order->order_valid_till;
    plan.product = order->product_name_id;
    const auto lifetime = std::chrono::duration_cast<seconds>(pair.not_after - pair.not_before);
    const auto valid_till = parse_valid_till(order->order_valid_till);
    if (!valid_till) throw CaError("order " + order->id + " has order_valid_till '" + order->order_valid_till + "', which is not a date");
    const auto now = std::chrono::system_clock::now();
    if (renewal_path_for(*valid_till, lifetime, now) == RenewalPath::reissue) {
      plan.action = RenewalAction::reissue;
      plan.detail = "reissue of order " + order->id + " (valid till " + order->order_valid_till + ")";
    } else if (options.allow_new_order) {
      plan.action = RenewalAction::new_order;
      plan.detail = "a new " + order->product_name_id + " order renewing order " + order->id + " (valid till " +
                    order->order_valid_till + ", before a new certificate would end)";
    } else {
      plan.action = RenewalAction::new_order_needed;
      plan.detail = "order " + order->id + " is valid till " + order->order_valid_till +
                    ", before a new certificate would end: renewal needs a new paid order; run with --allow-new-order "
                    "(or set renew.allow_new_order) to place it";
    }
  }
};

Renewer::Renewer(ProvisionServices services, RenewOptions options)
    : state_(std::make_unique<State>(std::move(services), std::move(options))) {
  State& s = *state_;
  const RenewOptions& o = s.options;
  if (o.within_days < 1 || o.within_days > 3650) throw UsageError("--within", "must be a whole number of days from 1 to 3650");
  if (o.timeout && o.timeout->count() <= 0) throw UsageError("--timeout", "must be more than zero");
  if (o.poll_interval && o.poll_interval->count() <= 0) throw UsageError("--poll-interval", "must be at least one second");
  if (o.reuse_key && o.keep_old) {
    throw UsageError("--keep-old", "not with --reuse-key: the reused key keeps its CKA_ID, so the new certificate replaces the old one");
  }
  if (!o.trust.empty()) {
    (void)read_trust_file(o.trust, "--trust");  // garbage is refused before the token or the CA
    s.trust = o.trust;
  }
  if (!o.order_file.empty()) {
    if (!o.allow_new_order) throw UsageError("--order-file", "only with --allow-new-order: a reissue keeps its order");
    s.order_body = read_order_file(o.order_file, /*must_be_object=*/true);
  }
  (void)o.token.token_uri();  // a --token that does not parse is refused now
  s.spare_journal.emplace(Journal::open(s.services.state_dir()));
  api::check_base_url(s.services.ca.base_url);
  s.api_key = read_api_key(s.services.ca);
  s.pin = read_pin(o.token.pin_source, "user PIN", "--pin-source");
  if (!o.sign_pin_source.empty()) s.sign_pin = read_pin(o.sign_pin_source, "signature PIN", "--sign-pin-source");
}

Renewer::~Renewer() = default;

std::vector<p11::TokenInfo> Renewer::tokens() {
  p11::Module& module = state_->services.tokens.module();
  const RenewOptions& o = state_->options;
  if (!o.all) return {p11::select_token(module, o.token.token_uri())};
  std::optional<p11::Uri> filter;
  if (auto uri = o.token.token_uri()) filter = p11::Uri::parse(*uri);
  return initialized_tokens(module, filter);
}

std::vector<RenewalPlan> Renewer::plan(const p11::TokenInfo& token) {
  State& s = *state_;
  p11::Session session(s.services.tokens.module(), token.slot, p11::Session::Access::read_only);
  p11::login(session, CKU_USER, s.pin.bytes(), s.options.token.login_options());
  Journal journal = s.journal();
  const std::vector<Job> jobs = journal.list();
  {
    std::lock_guard<std::mutex> lock(s.journal_mutex);
    if (!s.spare_journal) s.spare_journal.emplace(std::move(journal));
  }
  std::unique_ptr<api::Client> client;
  const auto now = std::chrono::system_clock::now();
  std::vector<RenewalPlan> plans;
  for (const TokenPair& pair : token_pairs(session)) {
    RenewalPlan plan;
    plan.token_label = token.label;
    plan.token_serial = token.serial;
    plan.key_label = pair.label;
    plan.key_id_hex = pair.id_hex;
    plan.key_uri = p11::object_uri(token, p11::parse_hex_id(pair.id_hex), pair.label);
    plan.cert_serial = pair.serial;
    plan.subject = subject_line(X509_get_subject_name(pair.certificate.get()));
    plan.not_after = iso_utc(pair.not_after);
    plan.key_type = pair.key_type;
    const DueVerdict verdict = renewal_due(pair.not_before, pair.not_after, now, s.options.within_days);
    plan.days_left = verdict.days_left;
    plan.window_days = verdict.window_days;
    plan.due = verdict.due;
    plan.why = verdict.why;
    const std::optional<Job> installer = job_that_installed(jobs, token.serial, pair.serial);
    if (installer && installer->order_id) plan.order_id = *installer->order_id;
    if (auto running = live_renewal_of(jobs, token.serial, pair.serial)) {
      plan.action = RenewalAction::resume;
      plan.job_id = running->id;
      plan.detail = "renewal job " + std::to_string(running->id) + " is in " + std::string(to_string(running->state)) + ": it goes on";
    } else if (plan.due) {
      if (!client) client = std::make_unique<api::Client>(make_api_client(s.services.ca, s.api_key));
      s.find_order(plan, pair, installer, *client);
    } else {
      plan.detail = "nothing to do";
    }
    plans.push_back(std::move(plan));
  }
  return plans;
}

namespace {

struct JobRun {
  RunResult result;
  std::string key_uri;
};

}  // namespace

RenewalOutcome Renewer::resume(const p11::TokenInfo& token, std::int64_t job_id) {
  State& s = *state_;
  Journal journal = s.journal();
  const Job job = journal.get(job_id);
  if (job.kind != JobKind::renewal || !job.renewal) throw UsageError("--job", "job " + std::to_string(job_id) + " is not a renewal");
  if (job.key.token_serial != token.serial) {
    throw UsageError("--job", "job " + std::to_string(job_id) + " belongs to the token with serial " + job.key.token_serial);
  }

  JobInputs inputs;
  inputs.profile = csr::parse_profile(job.key.profile);
  inputs.product = api::product_rules(job.key.product);
  inputs.key_type = p11::parse_key_type(job.renewal->key_type);
  inputs.approve = s.options.approve;
  inputs.schedule.cap = s.options.poll_interval;
  inputs.trust = s.trust;
  inputs.login = s.options.token.login_options();
  inputs.api_key = api::SecretBytes::copy_of(s.api_key.bytes());
  inputs.pin = api::SecretBytes::copy_of(s.pin.bytes());
  inputs.sign_pin = api::SecretBytes::copy_of(s.sign_pin.bytes());
  if (job.renewal->path == RenewalPath::reissue) {
    if (!job.renewal->order_id) throw std::logic_error("a reissue renewal knows its order");
    inputs.attach_order = std::to_string(*job.renewal->order_id);
  }

  TokenRun run(s.services, inputs, token, std::move(journal));
  run.login(job);
  if (job.csr_pem.empty()) {
    // The subject is the old certificate's, read from the token: it stays there until the new
    // pair is installed, long after the CSR is made.
    const std::optional<TokenPair> old = find_pair(run.session(), job.renewal->key_id_hex, job.key.renews_serial);
    if (!old) {
      throw TokenError("job " + std::to_string(job.id) + ": the certificate it renews (serial " + job.key.renews_serial +
                       ") is no longer on token '" + token.label + "'");
    }
    inputs.subject = subject_of(old->certificate.get());
    if (job.renewal->path == RenewalPath::new_order) {
      api::Client client = make_api_client(s.services.ca, s.api_key);
      const api::OrderInfo previous = client.order_info(std::to_string(job.renewal->order_id.value_or(0))).value_or_throw();
      inputs.order = renewal_order(previous, s.order_body);
    }
  } else if (job.renewal->path == RenewalPath::new_order && !job.order_id) {
    api::Client client = make_api_client(s.services.ca, s.api_key);
    const api::OrderInfo previous = client.order_info(std::to_string(job.renewal->order_id.value_or(0))).value_or_throw();
    inputs.order = renewal_order(previous, s.order_body);
  }

  StepTable steps = run.steps();
  const RetireOptions retire{s.options.keep_old, inputs.signature_pin(), inputs.login};
  steps.on(JobState::retiring_old, [&run, &retire](const Job& now) { return retire_old_pair(run.session(), now, retire); });

  run.say("renewal job " + std::to_string(job.id) + " (" + job.key.display() + ") from " + std::string(to_string(job.state)));
  const RunResult result =
      run_job_until_stopped(run.journal(), job.id, steps, job_run_options(run, !s.options.no_wait, s.options.timeout));
  if (const std::size_t removed = discard_failed_renewal_pair(run.session(), result.job); removed > 0) {
    run.say("renewal job " + std::to_string(job.id) + " failed: its new pair (id " + result.job.key_id_hex + ", " + std::to_string(removed) +
            " objects) removed; the old pair is untouched");
  }
  RenewalOutcome outcome;
  outcome.job = result.job;
  outcome.stop = result.stop;
  outcome.retry_after = result.retry_after;
  outcome.key_uri = p11::object_uri(token, p11::parse_hex_id(result.job.key_id_hex), result.job.key.key_label);
  if (result.stop == RunStop::finished) run_post_install_hook(s.services, result.job, outcome.key_uri);
  outcome.plan.token_label = token.label;
  outcome.plan.token_serial = token.serial;
  outcome.plan.key_label = job.key.key_label;
  outcome.plan.key_id_hex = job.renewal->key_id_hex;
  outcome.plan.cert_serial = job.key.renews_serial;
  outcome.plan.due = true;
  outcome.plan.action = RenewalAction::resume;
  outcome.plan.job_id = job.id;
  outcome.plan.order_id = job.renewal->order_id;
  return outcome;
}

std::vector<RenewalOutcome> Renewer::run(const p11::TokenInfo& token) {
  State& s = *state_;
  std::vector<RenewalOutcome> outcomes;
  std::set<std::int64_t> resumed;
  if (!s.options.dry_run) {
    Journal journal = s.journal();
    const std::vector<Job> unfinished = journal.unfinished(token.serial);
    // A failed renewal whose rollback was cut short (a kill between FAILED and the removal).
    std::vector<Job> failed;
    for (const Job& job : journal.list()) {
      if (job.kind == JobKind::renewal && job.state == JobState::failed && job.key.token_serial == token.serial) failed.push_back(job);
    }
    {
      std::lock_guard<std::mutex> lock(s.journal_mutex);
      if (!s.spare_journal) s.spare_journal.emplace(std::move(journal));
    }
    if (!failed.empty()) {
      p11::Session session(s.services.tokens.module(), token.slot, p11::Session::Access::read_write);
      p11::login(session, CKU_USER, s.pin.bytes(), s.options.token.login_options());
      for (const Job& job : failed) {
        if (const std::size_t removed = discard_failed_renewal_pair(session, job); removed > 0) {
          s.say(token, "renewal job " + std::to_string(job.id) + " had failed: its new pair (id " + job.key_id_hex + ", " +
                           std::to_string(removed) + " objects) removed; the old pair is untouched");
        }
      }
    }
    for (const Job& job : unfinished) {
      if (job.kind != JobKind::renewal) continue;
      outcomes.push_back(resume(token, job.id));
      resumed.insert(job.id);
    }
  }
  for (RenewalPlan& plan : this->plan(token)) {
    if (plan.job_id && resumed.contains(*plan.job_id)) continue;
    const bool acts = plan.action == RenewalAction::reissue || plan.action == RenewalAction::new_order || plan.action == RenewalAction::resume;
    if (s.options.dry_run || !acts) {
      RenewalOutcome outcome;
      outcome.plan = std::move(plan);
      outcomes.push_back(std::move(outcome));
      continue;
    }
    if (plan.action == RenewalAction::resume) {
      RenewalOutcome outcome = resume(token, *plan.job_id);
      outcome.plan = std::move(plan);
      outcomes.push_back(std::move(outcome));
      continue;
    }
    // A new renewal job: its key's CKA_ID (or the reused key's) recorded before the key is made.
    Journal journal = s.journal();
    const std::vector<Job> jobs = journal.list();
    const std::optional<Job> installer = job_that_installed(jobs, token.serial, plan.cert_serial);
    // What the plan read from the token (under its login) and from the order: no second login,
    // no second order lookup. The TokenRun's own steps check the old pair is still there.
    NewJob fresh;
    fresh.key = JobKey{token.serial, plan.key_label, installer ? installer->key.profile : std::string("generic"),
                       installer ? installer->key.product : plan.product, plan.cert_serial};
    if (fresh.key.product.empty()) throw std::logic_error("a due renewal's plan knows its order's product");
    fresh.token_model = token.model;
    fresh.token_manufacturer = token.manufacturer;
    fresh.initial_state = s.options.reuse_key ? JobState::have_key_pair : JobState::need_key_pair;
    fresh.key_id_hex = s.options.reuse_key ? plan.key_id_hex : random_id_hex();
    fresh.renewal = RenewalOf{plan.key_id_hex, plan.order_id,
                              plan.action == RenewalAction::new_order ? RenewalPath::new_order : RenewalPath::reissue, plan.key_type};
    bool created = false;
    const Job job = journal.find_or_create(fresh, &created);
    {
      std::lock_guard<std::mutex> lock(s.journal_mutex);
      if (!s.spare_journal) s.spare_journal.emplace(std::move(journal));
    }
    s.say(token, std::string(created ? "started" : "continuing") + " renewal job " + std::to_string(job.id) + " for certificate " +
                     plan.cert_serial + " (" + plan.why + "): " + plan.detail);
    RenewalOutcome outcome = resume(token, job.id);
    plan.job_id = job.id;
    outcome.plan = std::move(plan);
    outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}

}  // namespace qscd::agent
