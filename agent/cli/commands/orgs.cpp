// `orgs`: the CertCentral organizations the API key can order for.
#include "ca/client_factory.hpp"
#include "cli/registry.hpp"

namespace qscd::agent::cmd {

void add_orgs(CLI::App& app, Context& context) {
  CLI::App* orgs = app.add_subcommand("orgs", "list the CertCentral organizations (their ids go into order files)");
  orgs->callback([&context] {
    api::Client client = make_api_client(context.ca_settings());
    auto organizations = client.list_organizations().value_or_throw();
    nlohmann::json list = nlohmann::json::array();
    std::string text;
    for (const auto& org : organizations) {
      list.push_back({{"id", org.id}, {"name", org.name}, {"status", org.status}, {"country", org.country}});
      text += org.id + "\t" + org.status + "\t" + org.country + "\t" + org.name + "\n";
    }
    if (organizations.empty()) text = "no organizations\n";
    context.set_result({{{"organizations", list}}, text});
  });
}

}  // namespace qscd::agent::cmd
