#pragma once
// Never a second paid order: what a job in NEED_ORDER_LOOKUP does before it may
// POST again. docs/journal.md ("Never a second paid order") has the reasoning.
#include <optional>
#include <string>
#include <string_view>

#include "journal.hpp"
#include "qscd/api/client.hpp"

namespace qscd::agent {

struct OrderLookup {
  std::optional<api::OrderInfo> adopted;  // the order carrying the job's CSR, if any
  std::size_t candidates = 0;             // orders whose info was fetched
};

// Looks for an order placed for `job` whose answer was lost: lists the orders
// of the job's product created since a day before job.submit_intent_at,
// first with filters[search] = the job tag (and filters[common_name] when
// `common_name` is not empty), then, if that finds none, without those two
// filters (whether CertCentral's search covers comments is undocumented, and a
// filter that misses must not lead to a second order). Fetches each candidate's
// order info and adopts the one whose certificate.csr is the job's CSR.
// Throws api::CallFailed (exit 4) when CertCentral cannot be asked: the caller
// stays in NEED_ORDER_LOOKUP and never falls through to a POST.
OrderLookup find_order_for_job(api::Client& client, const Job& job, std::string_view common_name = {});

// Whether two PEM (or bare base64) CSRs hold the same DER: compares the base64
// with armour lines and whitespace removed (CertCentral may reflow it).
bool same_csr(std::string_view a, std::string_view b);

}  // namespace qscd::agent
