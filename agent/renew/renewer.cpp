#include "renew/renewer.hpp"

#include <stdexcept>

namespace qscd::agent {

// The interface first, for the daemon to be built against; the implementation follows.
struct Renewer::State {};

std::string_view to_string(RenewalAction action) {
  switch (action) {
    case RenewalAction::none: return "none";
    case RenewalAction::reissue: return "reissue";
    case RenewalAction::new_order: return "new_order";
    case RenewalAction::new_order_needed: return "new_order_needed";
    case RenewalAction::resume: return "resume";
    case RenewalAction::no_order: return "no_order";
  }
  return "none";
}

Renewer::Renewer(ProvisionServices, RenewOptions) { throw std::logic_error("renew: not implemented yet"); }
Renewer::~Renewer() = default;
std::vector<p11::TokenInfo> Renewer::tokens() { return {}; }
std::vector<RenewalPlan> Renewer::plan(const p11::TokenInfo&) { return {}; }
std::vector<RenewalOutcome> Renewer::run(const p11::TokenInfo&) { return {}; }
RenewalOutcome Renewer::resume(const p11::TokenInfo&, std::int64_t) { return {}; }

}  // namespace qscd::agent
