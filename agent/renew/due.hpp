#pragma once
// When a certificate is due for renewal and which way it renews: plain functions of dates, so
// the rules are tested without a token or a CA.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "journal/journal.hpp"

namespace qscd::agent {

using SystemTime = std::chrono::system_clock::time_point;

struct DueVerdict {
  bool due = false;
  double days_left = 0;    // negative once expired
  double window_days = 0;  // min(within, a third of the lifetime)
  std::string why;         // for people
};

// Due when the time left is at most the window: `within_days`, or a third of the certificate's
// lifetime (not_after - not_before) when that is shorter. An expired certificate is due.
DueVerdict renewal_due(SystemTime not_before, SystemTime not_after, SystemTime now, int within_days);

// CertCentral's order_valid_till ("yyyy-MM-dd", or an ISO 8601 time): the end of that day (UTC)
// for a date. nullopt for anything else.
std::optional<SystemTime> parse_valid_till(std::string_view text);

// Reissue while the order outlasts a new certificate of the old one's lifetime, issued now;
// else a new order (CertCentral's own rule, docs/api.md; reference §2.13a).
RenewalPath renewal_path_for(SystemTime order_valid_till, std::chrono::seconds lifetime, SystemTime now);

// "2026-12-03T10:00:00Z".
std::string iso_utc(SystemTime time);

}  // namespace qscd::agent
