#include "ca_client.hpp"

#include "qscd/api/error.hpp"
#include "secret.hpp"

namespace qscd::agent {

api::Client make_ca_client(Context& context) {
  const Config& config = context.config();
  api::ClientOptions options;
  if (!context.options.api_url.empty()) {
    options.base_url = context.options.api_url;
  } else if (config.api_base_url) {
    options.base_url = *config.api_base_url;
  }
  if (!context.options.ca_file.empty()) {
    options.ca_file = context.options.ca_file;
  } else if (config.api_ca_file) {
    options.ca_file = *config.api_ca_file;
  }
  options.user_agent = std::string("qscd-agent/") + QSCD_AGENT_VERSION;
  std::string source = !context.options.api_key_source.empty() ? context.options.api_key_source
                       : config.api_key_source                  ? *config.api_key_source
                                                                : "env:CERTCENTRAL_API_KEY";
  SecretBuffer secret = read_secret(source, "API key", "--api-key-source");
  try {
    return api::Client(std::move(options), api::ApiKey(secret.bytes()));
  } catch (const api::ConfigError& e) {
    throw UsageError(e.what());
  }
}

}  // namespace qscd::agent
