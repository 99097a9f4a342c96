#include "ca/client_factory.hpp"

#ifndef QSCD_AGENT_VERSION
#define QSCD_AGENT_VERSION "0.0.0"
#endif

namespace qscd::agent {

std::string retry_line(const api::RetryNotice& notice) {
  const auto seconds = (notice.delay.count() + 999) / 1000;
  return "CertCentral: " + notice.call + ": " + notice.reason + "; attempt " + std::to_string(notice.next_attempt) +
         " of " + std::to_string(notice.max_attempts) + " in " + std::to_string(seconds) + " s";
}

api::SecretBytes read_api_key(const CaSettings& settings) {
  if (settings.key) return api::SecretBytes::copy_of(settings.key->bytes());
  return read_secret(settings.key_source, "API key", "--api-key-source");
}

api::Client make_api_client(const CaSettings& settings) {
  api::check_base_url(settings.base_url);  // refuse a bad URL before asking for the key
  return make_api_client(settings, read_api_key(settings));
}

api::Client make_api_client(const CaSettings& settings, const api::SecretBytes& key) {
  api::ClientOptions options;
  options.base_url = settings.base_url;
  api::check_base_url(options.base_url);
  options.ca_file = settings.ca_file;
  if (settings.pickup_path) options.pickup_path = *settings.pickup_path;
  options.user_agent = std::string("qscd-agent/") + QSCD_AGENT_VERSION;
  if (settings.trace != nullptr) {
    const Log* log = settings.trace;
    options.trace = [log](std::string_view line) { log->debug(line); };  // X-DC-DEVKEY arrives redacted
  }
  if (settings.progress != nullptr) {
    const Log* log = settings.progress;
    options.on_retry = [log](const api::RetryNotice& notice) { log->progress(retry_line(notice)); };
  }
  options.cancelled = settings.cancelled;
  return api::Client(std::move(options), api::ApiKey(key.bytes()));
}

}  // namespace qscd::agent
