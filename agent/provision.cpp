#include "provision.hpp"

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <fstream>
#include <future>
#include <thread>
#include <sstream>

#include "ca_client.hpp"
#include "certbundle.hpp"
#include "csr/builder.hpp"
#include "csr/profile.hpp"
#include "csr/signer.hpp"
#include "csr/token_signer.hpp"
#include "errors.hpp"
#include "files.hpp"
#include "install.hpp"
#include "order_lookup.hpp"
#include "qscd/api/client.hpp"
#include "qscd/api/csr.hpp"
#include "qscd/api/error.hpp"
#include "qscd/pkcs11/attributes.hpp"
#include "qscd/pkcs11/error.hpp"
#include "qscd/pkcs11/keys.hpp"
#include "qscd/pkcs11/login.hpp"
#include "qscd/pkcs11/module.hpp"
#include "qscd/pkcs11/uri.hpp"

namespace qscd::agent {

namespace {

using std::chrono::seconds;

// The token's keys labelled `label`, by class, in one search. Token objects only: a session object
// left by the key pair's staging (p11::generate_key_pair) is not the job's key.
struct LabelledKeys {
  std::vector<p11::ObjectHandle> private_keys;
  std::vector<p11::ObjectHandle> public_keys;
};

LabelledKeys labelled_keys(const p11::Session& session, const std::string& label) {
  p11::AttributeTemplate query;
  query.token(true).label(label);
  LabelledKeys keys;
  for (p11::ObjectHandle object : session.find(query)) {
    const auto object_class = session.ulong(object, CKA_CLASS);
    if (object_class == CKO_PRIVATE_KEY) keys.private_keys.push_back(object);
    if (object_class == CKO_PUBLIC_KEY) keys.public_keys.push_back(object);
  }
  return keys;
}

// The key the token will make, as inspect_csr() describes a CSR's key: what the order's
// documented rules are checked against before the token is touched.
api::CsrInfo planned_csr(const p11::KeyType& type, const csr::Subject& subject) {
  api::CsrInfo planned;
  const bool rsa = type.algorithm == p11::KeyType::Algorithm::rsa;
  planned.key_type = rsa ? "RSA" : "EC";
  planned.key_bits = rsa ? static_cast<int>(type.rsa_bits) : (type.curve_nid == NID_secp384r1 ? 384 : 256);
  for (const csr::Attribute& attribute : subject) {
    if (attribute.type == "CN") planned.common_name = attribute.value;
  }
  planned.signature_valid = true;  // the agent signs it
  return planned;
}

// The same key as describe_key() describes one ("RSA 3072", "EC P-256"), for the profile's rules.
std::string described(const api::CsrInfo& planned) {
  return planned.key_type + (planned.key_type == "EC" ? " P-" : " ") + std::to_string(planned.key_bits);
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

bool is_definite_refusal(const api::Refused& refused) {
  // A 4xx answer means CertCentral looked at the request and created nothing. A 5xx may come
  // from a proxy after the order was made, so it counts as uncertain.
  return refused.http_status >= 400 && refused.http_status < 500;
}

}  // namespace

// What the command line says, checked and parsed once, shared by every token's worker.
struct Provisioner::Prepared {
  csr::Profile profile{};
  csr::Subject subject;
  std::optional<p11::KeyType> key_type;
  std::optional<p11::Bytes> id;
  std::optional<p11::Uri> key_uri;
  api::OrderRequest order;  // without the CSR; the job adds it and its tag
  std::optional<std::filesystem::path> trust;
  SecretBuffer api_key;
  SecretBuffer pin;
};

Provisioner::Provisioner(Context& context, ProvisionOptions options)
    : context_(context), options_(std::move(options)), prepared_(std::make_unique<Prepared>()) {
  Prepared& p = *prepared_;
  // --job ID alone continues a job: what the journal knows need not be typed again.
  bool need_subject = true;
  bool need_key = true;
  // Created and migrated here, once, before any worker opens its own connection: a new file's
  // switch to WAL cannot wait for another connection doing the same. A state folder that cannot
  // hold it is refused before the token is touched.
  spare_journal_.emplace(Journal::open(context_.state_dir()));
  Journal& journal = *spare_journal_;
  if (options_.job_id) {
    const Job job = journal.get(*options_.job_id);
    if (options_.profile.empty()) options_.profile = job.key.profile;
    if (options_.product.empty()) options_.product = job.key.product;
    if (options_.label.empty() && options_.key.empty()) options_.label = job.key.key_label;
    if (options_.token.token.empty()) options_.token.token = "pkcs11:serial=" + job.key.token_serial;
    need_key = job.key_id_hex.empty();
    need_subject = job.csr_pem.empty();
  }
  const ProvisionOptions& o = options_;
  if (o.profile.empty()) throw UsageError("--profile", "required: be-ebox, pkio-server, pkio-eseal or generic");
  if (o.product.empty() && o.attach_order.empty()) {
    throw UsageError("--product", "required: the CertCentral product name_id (e.g. pkio_private_services_server)");
  }
  p.profile = csr::parse_profile(o.profile);
  if (!o.subject_file.empty() && !o.set.empty()) throw UsageError("subject", "give --subject-file FILE or --set name=value, not both");
  if (o.subject_file.empty() && o.set.empty()) {
    if (need_subject) throw UsageError("subject", "give either --subject-file FILE or --set name=value (repeatable)");
  } else {
    const csr::SubjectInput input =
        o.subject_file.empty() ? csr::parse_set_options(o.set) : csr::read_subject_file(o.subject_file, p.profile);
    p.subject = csr::prepare_subject(p.profile, input);
  }

  if (!o.key.empty()) {
    if (!o.key_type.empty()) throw UsageError("--key-type", "not with --key: the key already exists");
    try {
      p.key_uri = p11::Uri::parse(o.key);
    } catch (const p11::InvalidArgument& e) {
      throw UsageError("--key", e.what());
    }
    if (!p.key_uri->names_object()) throw UsageError("--key", o.key + " names no key: add id=... or object=...");
  } else {
    if (o.key_type.empty() && need_key) {
      throw UsageError("--key-type", "required unless --key names an existing key (rsa:2048|rsa:3072|rsa:4096|ec:p256|ec:p384)");
    }
    if (!o.key_type.empty()) {
      try {
        p.key_type = p11::parse_key_type(o.key_type);
      } catch (const p11::InvalidArgument& e) {
        throw UsageError("--key-type", e.what());
      }
    }
    if (o.label.empty()) throw UsageError("--label", "required: the CKA_LABEL of the key pair to generate");
    if (!o.id.empty()) {
      try {
        p.id = p11::parse_hex_id(o.id);
      } catch (const p11::InvalidArgument& e) {
        throw UsageError("--id", e.what());
      }
    }
  }
  if (o.all && o.job_id) throw UsageError("--all", "not with --job: a job belongs to one token");
  if (o.all && p.key_uri) throw UsageError("--all", "not with --key: a key belongs to one token");
  if (o.timeout && o.timeout->count() <= 0) throw UsageError("--timeout", "must be more than zero");
  if (o.poll_interval.count() <= 0) throw UsageError("--poll-interval", "must be at least one second");
  if (!o.trust.empty()) {
    if (!std::filesystem::is_regular_file(o.trust)) throw UsageError("--trust", o.trust + " is not a file");
    p.trust = o.trust;
  }

  if (o.attach_order.empty()) {
    if (!o.order_file.empty()) {
      nlohmann::json body = nlohmann::json::parse(read_input_file(o.order_file, "--order-file"), nullptr, false);
      if (body.is_discarded()) throw UsageError("--order-file", o.order_file + " is not JSON");
      p.order = api::order_request_from_json(o.product, body);
    } else {
      p.order.product = o.product;
    }
    if (api::is_qscd_order(p.order)) {
      throw UsageError("--product", o.product + " with provisioning_method qscd has DigiCert make the key on a token it ships; "
                                    "provision makes the key here: use a CSR product, or `order attach` for the pickup step");
    }
    // The profile's key rules and the documented product rules, checked now against the key the
    // token will make, so a broken order file is refused before a key is generated.
    if (p.key_type && !p.subject.empty()) {
      const api::CsrInfo planned = planned_csr(*p.key_type, p.subject);
      csr::check_planned_key(p.profile, described(planned), o.rsa_pss);
      api::OrderRequest check = p.order;
      if (check.certificate.common_name.empty() && check.product != "eu_eseal") check.certificate.common_name = planned.common_name;
      api::validate(check, std::chrono::system_clock::now(), planned);
    }
  } else {
    try {
      (void)to_order_number(o.attach_order, "order id");
    } catch (const CaError&) {
      throw UsageError("--order", "'" + o.attach_order + "' is not an order id (a number)");
    }
  }
  // The API key is read now: a bad URL or --api-key-source is refused before the token is touched.
  api::check_base_url(api_url(context_));
  p.api_key = read_api_key(context_);
  // The PIN last: it is only read once the rest of the command line is known to be good.
  p.pin = read_pin(o.token.pin_source, "user PIN", "--pin-source");
}

Provisioner::~Provisioner() = default;

Journal Provisioner::journal_connection() {
  std::lock_guard<std::mutex> lock(spare_journal_mutex_);
  if (spare_journal_) {
    Journal journal = std::move(*spare_journal_);
    spare_journal_.reset();
    return journal;
  }
  return Journal::open(context_.state_dir());
}

std::vector<p11::TokenInfo> Provisioner::tokens() {
  p11::Module& module = context_.module();
  if (!options_.all) {
    std::optional<std::string> uri = options_.token.token_uri();
    if (!uri && !options_.key.empty()) uri = options_.key;
    return {p11::select_token(module, uri)};
  }
  std::optional<p11::Uri> filter;
  if (auto uri = options_.token.token_uri()) {
    try {
      filter = p11::Uri::parse(*uri);
    } catch (const p11::InvalidArgument& e) {
      throw UsageError("--token", e.what());
    }
  }
  std::vector<p11::TokenInfo> matching;
  for (p11::TokenInfo& token : p11::list_tokens(module)) {
    if (!token.initialized) continue;
    if (filter && !filter->matches(token)) continue;
    matching.push_back(std::move(token));
  }
  if (matching.empty()) {
    throw p11::NotFound("--all: no initialised token" + (filter ? " matches " + filter->text() : std::string(" is present")),
                        filter ? filter->text() : std::string());
  }
  return matching;
}

namespace {

// One token's run: its session, journal connection and CertCentral client, and the steps of
// the state machine over them. One per worker thread.
class TokenRun {
 public:
  TokenRun(Context& context, const ProvisionOptions& options, const csr::Profile& profile, const csr::Subject& subject,
           const std::optional<p11::KeyType>& key_type, const api::OrderRequest& order,
           const std::optional<std::filesystem::path>& trust, const SecretBuffer& pin, const SecretBuffer& api_key,
           const p11::TokenInfo& token, Journal journal)
      : context_(context),
        options_(options),
        profile_(profile),
        subject_(subject),
        key_type_(key_type),
        order_(order),
        trust_(trust),
        pin_(pin),
        api_key_(api_key),
        token_(token),
        session_(context.module(), token.slot, p11::Session::Access::read_write),
        journal_(std::move(journal)) {}

  void say(const std::string& message) const { context_.log.progress("token '" + token_.label + "': " + message); }

  // One authenticated GET (the organisation list) on a second thread while this one generates
  // the key and signs the CSR: the order's POST then finds the TLS connection made (the handshake
  // is off the critical path). Started after the login, so a wrong PIN sends nothing to the CA.
  void start_ca_check() {
    ca_check_ = std::async(std::launch::async, [this] { return client().list_organizations(); });
  }
  // Waits for the check, at the first call that needs the CA; a rejected API key throws (exit 4).
  // Other answers are left to the calls that need the CA, which report them as they always do.
  void finish_ca_check() {
    if (!ca_check_.valid()) return;
    auto answer = ca_check_.get();
    if (answer.kind() == api::OutcomeKind::refused && answer.refused().auth_failed()) answer.value_or_throw();
  }
  Journal& journal() { return journal_; }
  p11::Session& session() { return session_; }

  // Login with the token layer's anti-lockout rules. A PIN problem parks a known job in
  // NEED_USER_PIN (the next run with the right PIN continues it) and still fails the run (exit 3).
  void login(const std::optional<Job>& job) {
    try {
      p11::login(session_, CKU_USER, pin_.bytes(), options_.token.login_options());
      start_ca_check();
    } catch (const p11::PinError& e) {
      if (job && is_allowed(job->state, JobState::need_user_pin)) {
        JobLease lease(journal_, job->id);
        journal_.transition(job->id, lease.job().state, JobState::need_user_pin, e.what());
      }
      throw;
    }
  }

  StepTable steps() {
    StepTable table;
    table.on_effect_free(JobState::need_key_pair, [this](const Job& job) {
      return StepResult(JobState::generating_key_pair, seconds(0), "key pair '" + job.key.key_label + "' to be made on the token");
    });
    table.on(JobState::generating_key_pair, [this](const Job& job) { return generate(job); });
    table.on_effect_free(JobState::have_key_pair, [](const Job&) { return StepResult(JobState::need_csr); });
    table.on(JobState::need_csr, [this](const Job& job) { return make_csr(job); });
    table.on_effect_free(JobState::have_csr, [](const Job&) { return StepResult(JobState::need_to_submit); });
    table.on_effect_free(JobState::need_to_submit, [this](const Job& job) {
      StepResult result(JobState::submitting, seconds(0),
                        options_.attach_order.empty() ? "placing a " + job.key.product + " order"
                                                      : "attaching the CSR to order " + options_.attach_order);
      if (!options_.attach_order.empty()) result.update.order_id = std::stoll(options_.attach_order);
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

 private:
  api::Client& client() {
    if (!client_) client_ = std::make_unique<api::Client>(make_api_client(context_, api_key_));
    return *client_;
  }
  api::Client& ca() {
    finish_ca_check();
    return client();
  }

  p11::ObjectHandle private_key(const Job& job) {
    if (key_ && key_->id_hex == job.key_id_hex) return key_->handle;
    const p11::Bytes id = p11::parse_hex_id(job.key_id_hex);
    p11::AttributeTemplate query;
    // Token objects only: a session object left by the key pair's staging is not the job's key.
    query.object_class(CKO_PRIVATE_KEY).token(true).id(id);
    const auto keys = session_.find(query);
    if (keys.size() != 1) {
      throw TokenError("job " + std::to_string(job.id) + ": token '" + token_.label + "' holds " +
                       std::to_string(keys.size()) + " private keys with id " + job.key_id_hex + ", expected one");
    }
    key_ = KnownKey{job.key_id_hex, keys.front(), nullptr};
    return keys.front();
  }

  // The job key's public half, read from the token once per run.
  EVP_PKEY* token_public_key(const Job& job) {
    const p11::ObjectHandle handle = private_key(job);
    if (!key_->public_key) key_->public_key.reset(p11::public_key(session_, handle).release());
    return key_->public_key.get();
  }

  IssuanceExpectations expectations(const Job& job) const {
    return IssuanceExpectations::for_job(csr::profile_name(profile_), job.key.product);
  }

  // Generates the pair, or finds the one a killed run generated (same label): keys are never
  // multiplied by a crash. A public key a killed run left without its private half (the pair is
  // copied onto the token public half first, p11::generate_key_pair) is removed: the job owns the
  // label, which no key had when the job was created.
  StepResult generate(const Job& job) {
    const LabelledKeys labelled = labelled_keys(session_, job.key.key_label);
    const auto& found = labelled.private_keys;
    if (found.size() > 1) {
      throw TokenError("token '" + token_.label + "' holds " + std::to_string(found.size()) + " private keys labelled '" +
                       job.key.key_label + "'; remove the extra ones or provision one of them with --key");
    }
    p11::ObjectHandle key = CK_INVALID_HANDLE;
    p11::ObjectHandle public_half = CK_INVALID_HANDLE;  // known when generated here
    p11::Bytes id;
    std::string detail;
    if (found.size() == 1) {
      key = found.front();
      id = session_.bytes(key, CKA_ID).value_or(p11::Bytes{});
      if (id.empty()) throw TokenError("the key pair '" + job.key.key_label + "' left by an interrupted run has no CKA_ID");
      detail = "found the key pair an interrupted run generated (id " + p11::to_hex(id) + ")";
    } else {
      if (!key_type_) throw UsageError("--key-type", "needed to generate the key pair of job " + std::to_string(job.id));
      for (p11::ObjectHandle orphan : labelled.public_keys) session_.destroy(orphan);
      if (!labelled.public_keys.empty()) say("removed the public key an interrupted run left without its private key");
      p11::KeyGenRequest request;
      request.type = *key_type_;
      request.label = job.key.key_label;
      if (!job.key_id_hex.empty()) request.id = p11::parse_hex_id(job.key_id_hex);
      say("generating a " + request.type.name() + " key pair on the token");
      p11::KeyPair pair = p11::generate_key_pair(session_, request);
      test_crash_point("GENERATING_KEY_PAIR:generated");
      key = pair.private_key;
      public_half = pair.public_key;
      id = pair.id;
      detail = "generated " + request.type.name() + " key pair (id " + p11::to_hex(id) + ")";
    }
    key_ = KnownKey{p11::to_hex(id), key, nullptr};
    key_->public_key.reset(p11::public_key(session_, public_half != CK_INVALID_HANDLE ? public_half : key).release());
    StepResult result(JobState::have_key_pair, seconds(0), detail);
    result.update.key_id_hex = key_->id_hex;
    result.update.spki_sha256 = spki_sha256(key_->public_key.get());
    return result;
  }

  StepResult make_csr(const Job& job) {
    const p11::ObjectHandle key = private_key(job);
    csr::TokenSigner signer(session_, key, token_public_key(job), pin_.bytes(), options_.token.login_options());
    const csr::UniqueReq request = csr::build_request(profile_, subject_, signer, options_.rsa_pss);
    StepResult result(JobState::have_csr, seconds(0),
                      "CSR signed on the token, verified and checked against profile " + std::string(csr::profile_name(profile_)));
    result.update.csr_pem = csr::request_pem(request.get());
    result.update.csr_sha256 = csr_sha256(request.get());
    result.update.subject = subject_line(X509_REQ_get_subject_name(request.get()));
    if (job.spki_sha256.empty()) result.update.spki_sha256 = spki_sha256(const_cast<EVP_PKEY*>(signer.public_key()));
    return result;
  }

  // The POST that creates the order. Its answer decides: an order id moves on, a definite "no"
  // goes back or fails, anything uncertain goes to the lookup, never straight to another POST.
  StepResult submit(const Job& job) {
    api::OrderRequest request = order_;
    request.certificate.csr = job.csr_pem;
    if (request.certificate.common_name.empty() && request.product != "eu_eseal") {
      request.certificate.common_name = common_name_of(read_csr(job.csr_pem, "the job's CSR").get());
    }
    // The tag lets a resumed job find this order again (docs/journal.md).
    const std::string tag = "[qscd-agent job " + job.job_tag + "]";
    request.comments = request.comments && !request.comments->empty() ? *request.comments + " " + tag : tag;
    api::validate(request, std::chrono::system_clock::now());
    auto placed = ca().submit_order(request);
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
        if (answer.certificate_id) result.update.certificate_id = to_order_number(*answer.certificate_id, "certificate id");
        return result;
      }
      case api::OutcomeKind::rejected:
        return StepResult(JobState::failed, seconds(0), "CertCentral rejected the order: " + placed.describe());
      case api::OutcomeKind::refused: {
        const api::Refused& refused = placed.refused();
        if (refused.auth_failed()) placed.value_or_throw();  // exit 4, "API key rejected"
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
  StepResult attach(const Job& job) {
    const std::string id = std::to_string(*job.order_id);
    api::OrderInfo order = ca().order_info(id).value_or_throw();
    std::string action;
    if (order.status == "waiting_pickup") {
      ca().pickup(id, job.csr_pem).value_or_throw();
      action = "pickup";
    } else if (order.status == "issued") {
      api::ReissueRequest reissue;
      reissue.csr = job.csr_pem;
      reissue.comments = "[qscd-agent job " + job.job_tag + "]";
      ca().reissue(id, reissue).value_or_throw();
      action = "reissue";
    } else {
      throw UsageError("--order", "order " + id + " is " + order.status +
                                      ": a CSR can be attached to an issued order (reissue) or one waiting for pickup");
    }
    test_crash_point("SUBMITTING:posted");
    return StepResult(JobState::ca_working, seconds(0), "CSR attached to order " + id + " (" + action + ")");
  }

  StepResult look_up_order(const Job& job) {
    if (job.order_id) {
      const std::string id = std::to_string(*job.order_id);
      api::OrderInfo order = ca().order_info(id).value_or_throw();
      if (same_csr(order.csr, job.csr_pem)) return StepResult(JobState::ca_working, seconds(0), "order " + id + " already carries this CSR");
      return StepResult(JobState::need_to_submit, seconds(0), "order " + id + " does not carry this CSR yet");
    }
    const std::string common_name = common_name_of(read_csr(job.csr_pem, "the job's CSR").get());
    OrderLookup lookup = find_order_for_job(ca(), job, common_name);
    if (lookup.adopted) {
      StepResult result(JobState::ca_working, seconds(0), "adopted order " + lookup.adopted->id + ", placed before the answer was lost");
      result.update.order_id = to_order_number(lookup.adopted->id, "order id");
      return result;
    }
    return StepResult(JobState::need_to_submit, seconds(0),
                      "no order carries this job's CSR (" + std::to_string(lookup.candidates) + " looked at): submitting");
  }

  void approve_pending(const std::string& order_id) {
    api::OrderInfo order = ca().order_info(order_id).value_or_throw();
    for (const api::RequestRef& request : order.requests) {
      if (request.status != "pending" && request.status != "submitted") continue;
      ca().update_request_status(request.id, api::RequestStatus::approved, "approved by qscd-agent provision --approve").value_or_throw();
      say("approved request " + request.id + " of order " + order_id);
    }
  }

  StepResult wait_for_ca(const Job& job) {
    const std::string order_id = std::to_string(*job.order_id);
    std::string certificate_id;
    if (job.certificate_id) {
      certificate_id = std::to_string(*job.certificate_id);  // issued at once: no wait
    } else {
      auto polled = ca().poll_order(order_id);
      if (polled.kind() == api::OutcomeKind::pending && polled.pending().status == "needs_approval" && options_.approve) {
        approve_pending(order_id);
        polled = ca().poll_order(order_id);
      }
      if (polled.kind() == api::OutcomeKind::pending) {
        return StepResult(JobState::ca_working, options_.poll_interval, "order " + order_id + " is " + polled.pending().status);
      }
      if (polled.kind() == api::OutcomeKind::rejected) {
        return StepResult(JobState::failed, seconds(0), "order " + order_id + ": " + polled.describe());
      }
      const api::OrderInfo& order = polled.value_or_throw();
      // After a reissue the order is "issued" with the old certificate until the new one is out.
      if (!order.csr.empty() && !same_csr(order.csr, job.csr_pem)) {
        return StepResult(JobState::ca_working, options_.poll_interval, "order " + order_id + ": the certificate for this CSR is not out yet");
      }
      if (!order.certificate_id) throw CaError("order " + order_id + " is issued but names no certificate id");
      certificate_id = *order.certificate_id;
    }
    const std::string pem = ca().download_certificate(certificate_id, api::CertificateFormat::pem_noroot).value_or_throw();
    std::vector<ossl::X509Ptr> certificates;
    try {
      certificates = read_certificates(std::string_view(pem), "certificate " + certificate_id);
    } catch (const UsageError& e) {
      throw CaError(std::string("CertCentral's certificate download: ") + e.what());
    }
    EVP_PKEY* public_key = token_public_key(job);
    const auto csr = read_csr(job.csr_pem, "the job's CSR");
    IssuanceExpectations expected = expectations(job);
    expected.csr = csr.get();
    PreparedInstall prepared;
    try {
      prepared = prepare_install(std::move(certificates), public_key, trust_, expected);
    } catch (const ChainNotTrusted&) {
      throw;  // the job stays here: a rerun with the right --trust continues it
    } catch (const CaError& e) {
      return StepResult(JobState::failed, seconds(0), e.what());  // this certificate will never fit
    }
    for (const std::string& line : prepared.report.lines()) say("check: " + line);
    if (!prepared.chain_warning.empty()) say("warning: " + prepared.chain_warning);
    StepResult result(JobState::need_to_install, seconds(0),
                      "certificate " + serial_hex(prepared.end_entity.get()) + " issued and checked");
    result.update.certificate_id = to_order_number(certificate_id, "certificate id");
    result.update.chain_pem = prepared.chain_pem();
    result.update.cert_sha256 = certificate_sha256(prepared.end_entity.get());
    result.update.cert_serial = serial_hex(prepared.end_entity.get());
    return result;
  }

  StepResult install(const Job& job) {
    const p11::ObjectHandle handle = private_key(job);
    TokenKey key;
    key.handle = handle;
    key.id = p11::parse_hex_id(job.key_id_hex);
    const p11::Bytes label = session_.bytes(handle, CKA_LABEL).value_or(p11::Bytes{});
    key.label = label.empty() ? job.key.key_label : std::string(label.begin(), label.end());
    EVP_PKEY* public_key = token_public_key(job);
    EVP_PKEY_up_ref(public_key);
    key.public_key = ossl::EvpPkeyPtr(public_key);
    // The chain was checked (key, validity, profile, trust) in CA_WORKING before it was stored;
    // install_certificates checks the key again before it writes anything.
    std::vector<ossl::X509Ptr> chain = read_certificates(std::string_view(job.chain_pem), "the job's chain");
    if (chain.empty()) throw CaError("job " + std::to_string(job.id) + " has no stored certificate to install");
    ossl::X509Ptr end_entity = std::move(chain.front());
    chain.erase(chain.begin());
    InstallResult installed = install_certificates(session_, key, end_entity.get(), chain);
    std::size_t written = installed.end_entity.created ? 1 : 0;
    for (const auto& intermediate : installed.intermediates) written += intermediate.created ? 1 : 0;
    return StepResult(JobState::monitoring, seconds(0),
                      "installed (" + std::to_string(written) + " objects written), read back and verified");
  }

  Context& context_;
  const ProvisionOptions& options_;
  const csr::Profile& profile_;
  const csr::Subject& subject_;
  const std::optional<p11::KeyType>& key_type_;
  const api::OrderRequest& order_;
  const std::optional<std::filesystem::path>& trust_;
  const SecretBuffer& pin_;
  const SecretBuffer& api_key_;
  p11::TokenInfo token_;
  p11::Session session_;
  Journal journal_;
  std::unique_ptr<api::Client> client_;
  struct KnownKey {
    std::string id_hex;
    p11::ObjectHandle handle = CK_INVALID_HANDLE;
    ossl::EvpPkeyPtr public_key;
  };
  std::optional<KnownKey> key_;  // the job's private key, once looked up or generated
  // Declared after client_: destroyed (joined) before the client it uses.
  std::future<api::Outcome<std::vector<api::OrganizationInfo>>> ca_check_;
};

}  // namespace

ProvisionOutcome Provisioner::run(const p11::TokenInfo& token) {
  const Prepared& p = *prepared_;
  const ProvisionOptions& o = options_;
  TokenRun run(context_, o, p.profile, p.subject, p.key_type, p.order, p.trust, p.pin, p.api_key, token,
               journal_connection());
  Journal& journal = run.journal();

  ProvisionOutcome outcome;
  outcome.token_label = token.label;

  std::optional<Job> job;
  if (o.job_id) {
    job = journal.get(*o.job_id);
    if (job->key.token_serial != token.serial) {
      throw UsageError("--job", "job " + std::to_string(*o.job_id) + " belongs to the token with serial " +
                                    job->key.token_serial + ", not to '" + token.label + "' (serial " + token.serial + ")");
    }
  }

  // An existing key (--key) is named by its label in the job key, so it is looked up first.
  std::optional<p11::ObjectHandle> given_key;
  std::string label = o.label;
  if (p.key_uri) {
    run.login(job);
    given_key = p11::select_object(run.session(), *p.key_uri, CKO_PRIVATE_KEY);
    if (label.empty()) {
      auto bytes = run.session().bytes(*given_key, CKA_LABEL).value_or(p11::Bytes{});
      label = bytes.empty() ? "id-" + p11::to_hex(run.session().bytes(*given_key, CKA_ID).value_or(p11::Bytes{}))
                            : std::string(bytes.begin(), bytes.end());
    }
  }
  const JobKey key{token.serial, label, std::string(csr::profile_name(p.profile)), o.product};
  const StepTable steps = run.steps();
  // One progress line per committed move.
  auto progress = [&run](const Job& now, const std::string& detail) {
    run.say(std::string(to_string(now.state)) + (detail.empty() ? "" : ": " + detail));
  };
  if (!job) job = journal.find(key);

  if (job && job->state == JobState::monitoring) {
    outcome.job = *job;
    outcome.already_done = true;
    outcome.key_uri = p11::object_uri(token, p11::parse_hex_id(job->key_id_hex), job->key.key_label);
    run.say("job " + std::to_string(job->id) + " is already done (certificate " + job->cert_serial + "); nothing to do");
    return outcome;
  }
  if (!given_key) run.login(job);

  if (!job) {
    NewJob fresh;
    fresh.key = key;
    fresh.token_model = token.model;
    fresh.token_manufacturer = token.manufacturer;
    if (given_key) {
      auto id = run.session().bytes(*given_key, CKA_ID).value_or(p11::Bytes{});
      if (id.empty()) throw UsageError("--key", "the key has no CKA_ID: a certificate is tied to its key by the id");
      fresh.initial_state = JobState::have_key_pair;
      fresh.key_id_hex = p11::to_hex(id);
    } else {
      // A key with this label that no job owns is not ours to take over silently; nor is a public
      // key without its private half, which a resume of this job would remove as its own.
      const LabelledKeys labelled = labelled_keys(run.session(), label);
      if (!labelled.private_keys.empty()) {
        auto id = run.session().bytes(labelled.private_keys.front(), CKA_ID).value_or(p11::Bytes{});
        throw UsageError("--label", "token '" + token.label + "' already holds a key labelled '" + label +
                                        "'; provision it with --key '" + p11::object_uri(token, id, label) +
                                        "', or choose another --label");
      }
      if (!labelled.public_keys.empty()) {
        throw UsageError("--label", "token '" + token.label + "' already holds a public key labelled '" + label +
                                        "' without its private key; remove it or choose another --label");
      }
      if (p.id) {
        if (!p11::find_by_id(run.session(), *p.id).empty()) {
          throw UsageError("--id", p11::to_hex(*p.id) + " is already used by an object on token '" + token.label + "'");
        }
        fresh.key_id_hex = p11::to_hex(*p.id);
      }
    }
    bool created = false;
    // A new job's first effect-free moves (NEED_KEY_PAIR -> GENERATING_KEY_PAIR) are committed
    // with its creation.
    std::vector<std::string> details;
    std::vector<Job> passed;
    job = journal.find_or_create(fresh, &created, effect_free_moves(steps, details), &passed);
    run.say(std::string(created ? "started" : "continuing") + " job " + std::to_string(job->id) + " (" + key.display() + ")");
    for (std::size_t i = 0; i < passed.size(); ++i) {
      progress(passed[i], details[i]);
      test_crash_point(to_string(passed[i].state));
    }
  } else {
    run.say("continuing job " + std::to_string(job->id) + " from " + std::string(to_string(job->state)));
  }

  RunOptions run_options;
  run_options.wait = !o.no_wait;
  if (o.timeout) run_options.deadline = std::chrono::steady_clock::now() + *o.timeout;
  const std::int64_t id = job->id;
  run_options.on_transition = progress;
  const auto started = std::chrono::steady_clock::now();
  run_options.sleep = [&run, started](seconds delay) {
    const auto waited = std::chrono::duration_cast<seconds>(std::chrono::steady_clock::now() - started);
    run.say("waiting for CertCentral: " + std::to_string(waited.count()) + " s so far, next look in " +
            std::to_string(delay.count()) + " s");
    std::this_thread::sleep_for(delay);
  };
  RunResult result = run_job(journal, id, steps, run_options);
  outcome.job = result.job;
  outcome.stop = result.stop;
  outcome.retry_after = result.retry_after;
  if (!result.job.key_id_hex.empty()) {
    outcome.key_uri = p11::object_uri(token, p11::parse_hex_id(result.job.key_id_hex), result.job.key.key_label);
  }
  return outcome;
}

}  // namespace qscd::agent
