#pragma once
// Never a second paid order: what a job in NEED_ORDER_LOOKUP does before it may
// POST again. docs/journal.md ("Never a second paid order") has the reasoning.
#include <optional>
#include <string>
#include <string_view>

#include "qscd/api/client.hpp"

namespace qscd::agent {

// What identifies a job's order at CertCentral.
struct OrderSearch {
  std::string product;           // the order's product name_id
  std::string job_tag;           // in the order's comments
  std::string submit_intent_at;  // when the job first began to submit (UTC, ISO 8601)
  std::string csr_pem;           // the order's certificate.csr is this CSR
  std::string common_name;       // empty: not filtered on
};

struct OrderLookup {
  std::optional<api::OrderInfo> adopted;  // the order carrying the job's CSR, if any
  std::size_t candidates = 0;             // orders whose info was fetched
};

// Looks for the order a job placed whose answer was lost: lists the orders
// of the job's product created since a day before search.submit_intent_at,
// first with filters[search] = the job tag (and filters[common_name] when
// search.common_name is not empty), then, if that finds none, without those two
// filters (whether CertCentral's search covers comments is undocumented, and a
// filter that misses must not lead to a second order). Fetches each candidate's
// order info and adopts the one whose certificate.csr is the job's CSR.
// Throws api::CallFailed (exit 4) when CertCentral cannot be asked: the caller
// stays in NEED_ORDER_LOOKUP and never falls through to a POST.
OrderLookup find_order(api::Client& client, const OrderSearch& search);

}  // namespace qscd::agent
