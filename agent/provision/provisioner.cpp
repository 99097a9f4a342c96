#include "provision/provisioner.hpp"

#include <openssl/objects.h>

#include <openssl/x509.h>

#include <algorithm>
#include <ctime>
#include <thread>

#include "base/errors.hpp"
#include "base/files.hpp"
#include "base/text.hpp"
#include "ca/order_file.hpp"
#include "certs/certbundle.hpp"
#include "csr/builder.hpp"
#include "provision/token_run.hpp"
#include "qscd/api/csr.hpp"
#include "qscd/api/error.hpp"
#include "qscd/pkcs11/login.hpp"
#include "qscd/pkcs11/error.hpp"
#include "qscd/pkcs11/keys.hpp"
#include "qscd/pkcs11/module.hpp"
#include "qscd/pkcs11/uri.hpp"

namespace qscd::agent {

namespace {

using std::chrono::seconds;

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

// A new job may take over the key pair labelled `key.key_label` when the newest failed job for
// that label generated it (same CKA_ID and public key) and failed before any order was placed
// with its CSR: no certificate can exist for it, and the command that made it is being run again
// (docs/journal.md, "A job that failed before its order"). Returns the line saying so, or nullopt.
std::optional<std::string> key_of_failed_job(const p11::Session& session, Journal& journal, const JobKey& key,
                                             const LabelledKeys& labelled, const p11::Bytes& id, const JobInputs& inputs) {
  if (labelled.private_keys.size() != 1 || id.empty()) return std::nullopt;
  const std::optional<Job> failed = journal.last_failed(key);
  if (!failed || failed->order_id || failed->key_id_hex != p11::to_hex(id) || failed->spki_sha256.empty()) return std::nullopt;
  if (failed->kind != JobKind::provision) return std::nullopt;
  const p11::EvpPkeyPtr public_key = p11::public_key(session, labelled.private_keys.front());
  if (!public_key || spki_sha256(public_key.get()) != failed->spki_sha256) return std::nullopt;
  if (inputs.key_type) {
    const std::string made = p11::key_algorithm_name(session, labelled.private_keys.front());
    const std::string wanted = described(planned_csr(*inputs.key_type, {}));
    if (made != wanted) {
      throw UsageError("--key-type", "the key pair failed job " + std::to_string(failed->id) + " left for label '" + key.key_label +
                                         "' is " + made + ", not " + wanted + "; give its type to use it, or choose another --label");
    }
  }
  return "taking over the key pair (id " + p11::to_hex(id) + ") of job " + std::to_string(failed->id) +
         ", which failed before an order was placed: " + failed->last_error;
}

}  // namespace

Provisioner::Provisioner(ProvisionServices services, ProvisionOptions options)
    : services_(std::move(services)), options_(std::move(options)), inputs_(std::make_unique<JobInputs>()) {
  JobInputs& p = *inputs_;
  // --job ID alone continues a job: what the journal knows need not be typed again.
  bool need_subject = true;
  bool need_key = true;
  // Created and migrated here, once, before any worker opens its own connection: a new file's
  // switch to WAL cannot wait for another connection doing the same. A state folder that cannot
  // hold it is refused before the token is touched.
  spare_journal_.emplace(Journal::open(services_.state_dir()));
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
  if (!o.product.empty()) {
    const bool name_id = o.product.size() <= 64 && std::all_of(o.product.begin(), o.product.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    });
    if (!name_id) throw UsageError("--product", "'" + o.product + "' is not a CertCentral product name_id (a-z, 0-9 and _, at most 64)");
  }
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
    require_utf8_text(o.label, "--label", "the key label");
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
  if (o.poll_interval && o.poll_interval->count() <= 0) throw UsageError("--poll-interval", "must be at least one second");
  p.schedule.cap = o.poll_interval;
  p.rsa_pss = o.rsa_pss;
  p.approve = o.approve;
  p.attach_order = o.attach_order;
  p.login = o.token.login_options();
  if (!o.trust.empty()) {
    (void)read_trust_file(o.trust, "--trust");  // garbage is refused before the token or the CA
    p.trust = o.trust;
  }
  if (!o.expect.empty()) p.expect_seal = parse_expected_seal(o.expect, "--expect");

  if (o.attach_order.empty()) {
    p.order = order_request_from_file(o.product, o.order_file);
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
      api::default_common_name(check, planned.common_name);
      api::validate(check, std::chrono::system_clock::now(), planned);
    }
  } else {
    try {
      (void)to_order_number(o.attach_order, "order id");
    } catch (const CaError&) {
      throw UsageError("--order", "'" + o.attach_order + "' is not an order id (a number)");
    }
  }
  p.product = api::product_rules(o.product.empty() ? p.order.product : o.product);
  // The API key is read now: a bad URL or --api-key-source is refused before the token is touched.
  api::check_base_url(services_.ca.base_url);
  p.api_key = read_api_key(services_.ca);
  // A locked user PIN, or one on its final try without --allow-final-try, is refused before
  // anyone is asked to type it (the token list is kept for tokens()).
  if (!o.all) p11::check_pin_flags(tokens().front(), CKU_USER, p.login);
  // The PIN last: it is only read once the rest of the command line is known to be good.
  p.pin = read_pin(o.token.pin_source, "user PIN", "--pin-source");
  if (!o.sign_pin_source.empty()) p.sign_pin = read_pin(o.sign_pin_source, "signature PIN", "--sign-pin-source");
}

Provisioner::~Provisioner() = default;

Journal Provisioner::journal_connection() {
  std::lock_guard<std::mutex> lock(spare_journal_mutex_);
  if (spare_journal_) {
    Journal journal = std::move(*spare_journal_);
    spare_journal_.reset();
    return journal;
  }
  return Journal::open(services_.state_dir());
}

std::vector<p11::TokenInfo> Provisioner::tokens() {
  p11::Module& module = services_.tokens.module();
  if (!options_.all) {
    if (!selected_token_) {
      std::optional<std::string> uri = options_.token.token_uri();
      if (!uri && !options_.key.empty()) uri = options_.key;
      selected_token_ = p11::select_token(module, uri);
    }
    return {*selected_token_};
  }
  std::optional<p11::Uri> filter;
  if (auto uri = options_.token.token_uri()) {
    try {
      filter = p11::Uri::parse(*uri);
    } catch (const p11::InvalidArgument& e) {
      throw UsageError("--token", e.what());
    }
  }
  return initialized_tokens(module, filter);
}

void run_post_install_hook(const ProvisionServices& services, const Job& job, const std::string& key_uri) {
  if (!services.post_install) return;
  InstalledEvent event;
  event.key_uri = key_uri;
  event.cert_serial = job.cert_serial;
  event.token_serial = job.key.token_serial;
  event.job_id = job.id;
  event.job_kind = std::string(to_string(job.kind));
  const auto chain = read_certificates(std::string_view(job.chain_pem), "the job's chain");
  if (!chain.empty()) {
    std::tm tm{};
    if (ASN1_TIME_to_tm(X509_get0_notAfter(chain.front().get()), &tm) == 1) {
      char text[32];
      std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
      event.cert_not_after = text;
    }
  }
  const Log& log = services.tokens.log;
  log.progress("running the post-install hook for job " + std::to_string(job.id) + " (certificate " + job.cert_serial + ")");
  const HookRun hook = run_post_install(*services.post_install, event);
  const std::string line = "post-install hook '" + services.post_install->command + "' for job " + std::to_string(job.id) + ": " + hook.summary;
  if (hook.succeeded()) {
    log.progress(line);
  } else {
    log.warn(line + "; the certificate stays installed");
  }
}

ProvisionOutcome Provisioner::run(const p11::TokenInfo& token) {
  const JobInputs& p = *inputs_;
  const ProvisionOptions& o = options_;
  TokenRun run(services_, p, token, journal_connection());
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
    run.login(job, !(!job && p.attach_order.empty()));
    given_key = p11::select_object(run.session(), *p.key_uri, CKO_PRIVATE_KEY);
    if (label.empty()) {
      auto bytes = run.session().bytes(*given_key, CKA_LABEL).value_or(p11::Bytes{});
      label = bytes.empty() ? "id-" + p11::to_hex(run.session().bytes(*given_key, CKA_ID).value_or(p11::Bytes{}))
                            : std::string(bytes.begin(), bytes.end());
    }
  }
  const JobKey key{token.serial, label, std::string(csr::profile_name(p.profile)), o.product, {}};
  const StepTable steps = run.steps();
  // One progress line per committed move.
  const auto progress = job_run_options(run, false, std::nullopt).on_transition;
  if (!job) job = journal.find(key);

  if (job && job->state == JobState::monitoring) {
    outcome.job = *job;
    outcome.already_done = true;
    outcome.key_uri = p11::object_uri(token, p11::parse_hex_id(job->key_id_hex), job->key.key_label);
    run.say("job " + std::to_string(job->id) + " is already done (certificate " + job->cert_serial + "); nothing to do");
    return outcome;
  }
  // A new order's CA check waits until the token has shown the label free: a refusal on the
  // token's word sends nothing to the CA.
  const bool new_order = !job && p.attach_order.empty();
  if (!given_key) run.login(job, !new_order);

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
      // key without its private half, which a resume of this job would remove as its own. The
      // one exception: the key a failed job of ours generated for this label before any order
      // carried it (key_of_failed_job).
      const LabelledKeys labelled = run.labelled(label);
      std::optional<std::string> taken_over;
      if (!labelled.private_keys.empty()) {
        auto id = run.session().bytes(labelled.private_keys.front(), CKA_ID).value_or(p11::Bytes{});
        taken_over = key_of_failed_job(run.session(), journal, key, labelled, id, p);
        if (!taken_over) {
          throw UsageError("--label", "token '" + token.label + "' already holds a key labelled '" + label +
                                          "'; provision it with --key '" + p11::object_uri(token, id, label) +
                                          "', or choose another --label");
        }
        if (p.id && *p.id != id) {
          throw UsageError("--id", "the key pair labelled '" + label + "' that failed job left has id " + p11::to_hex(id) +
                                       ", not " + p11::to_hex(*p.id));
        }
        run.say(*taken_over);
        fresh.initial_state = JobState::have_key_pair;
        fresh.key_id_hex = p11::to_hex(id);
      } else if (!labelled.public_keys.empty()) {
        throw UsageError("--label", "token '" + token.label + "' already holds a public key labelled '" + label +
                                        "' without its private key; remove it or choose another --label");
      } else if (p.id) {
        if (!run.id_free(*p.id)) {
          throw UsageError("--id", p11::to_hex(*p.id) + " is already used by an object on token '" + token.label + "'");
        }
        fresh.key_id_hex = p11::to_hex(*p.id);
      }
    }
    // What the CA can tell cheaply is asked before the key pair is made: a refusal leaves nothing.
    if (new_order) run.check_order_at_ca();
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

  const RunOptions run_options = job_run_options(run, !o.no_wait, o.timeout);
  const RunResult result = run_job_until_stopped(journal, job->id, steps, run_options);
  outcome.job = result.job;
  outcome.stop = result.stop;
  outcome.retry_after = result.retry_after;
  outcome.checks = run.issuance_report();
  if (!result.job.key_id_hex.empty()) {
    outcome.key_uri = p11::object_uri(token, p11::parse_hex_id(result.job.key_id_hex), result.job.key.key_label);
  }
  if (result.stop == RunStop::finished) run_post_install_hook(services_, result.job, outcome.key_uri);
  return outcome;
}

}  // namespace qscd::agent
