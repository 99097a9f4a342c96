#include "ca_client.hpp"

#include "secret.hpp"

#ifndef QSCD_AGENT_VERSION
#define QSCD_AGENT_VERSION "0.0.0"
#endif

namespace qscd::agent {

std::string api_url(Context& context) {
  if (!context.options.api_url.empty()) return context.options.api_url;
  if (const auto& configured = context.config().api_base_url) return *configured;
  return default_api_url;
}

SecretBuffer read_api_key(Context& context) {
  std::string spec = context.options.api_key_source;
  if (spec.empty()) spec = context.config().api_key_source.value_or(default_api_key_source);
  return read_secret(spec, "API key", "--api-key-source");
}

api::Client make_api_client(Context& context) {
  api::check_base_url(api_url(context));  // refuse a bad URL before asking for the key
  return make_api_client(context, read_api_key(context));
}

api::Client make_api_client(Context& context, const SecretBuffer& key) {
  api::ClientOptions options;
  options.base_url = api_url(context);
  api::check_base_url(options.base_url);  // refuse a bad URL before asking for the key
  if (!context.options.ca_file.empty()) {
    options.ca_file = context.options.ca_file;
  } else if (const auto& configured = context.config().api_ca_file) {
    options.ca_file = *configured;
  }
  if (const auto& pickup = context.config().api_pickup_path) options.pickup_path = *pickup;
  options.user_agent = std::string("qscd-agent/") + QSCD_AGENT_VERSION;
  if (context.log.level() >= LogLevel::trace) {
    const Log* log = &context.log;
    options.trace = [log](std::string_view line) { log->debug(line); };  // X-DC-DEVKEY arrives redacted
  }
  return api::Client(std::move(options), api::ApiKey(key.bytes()));
}

}  // namespace qscd::agent
