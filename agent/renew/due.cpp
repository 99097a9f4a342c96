#include "renew/due.hpp"

#include <cmath>
#include <cstdio>
#include <ctime>

namespace qscd::agent {

namespace {

constexpr double seconds_per_day = 86400.0;

std::string days_text(double days) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", days);
  return text;
}

}  // namespace

DueVerdict renewal_due(SystemTime not_before, SystemTime not_after, SystemTime now, int within_days) {
  using std::chrono::duration;
  DueVerdict verdict;
  const double lifetime_days = duration<double>(not_after - not_before).count() / seconds_per_day;
  verdict.days_left = duration<double>(not_after - now).count() / seconds_per_day;
  const double third = lifetime_days / 3.0;
  const bool by_lifetime = third < within_days;
  verdict.window_days = by_lifetime ? third : within_days;
  const std::string window = days_text(verdict.window_days) + " days (" +
                             (by_lifetime ? "a third of its " + days_text(lifetime_days) + "-day lifetime"
                                          : "the " + std::to_string(within_days) + "-day renewal window") +
                             ")";
  if (verdict.days_left <= 0) {
    verdict.due = true;
    verdict.why = "expired " + days_text(-verdict.days_left) + " days ago";
  } else if (verdict.days_left <= verdict.window_days) {
    verdict.due = true;
    verdict.why = days_text(verdict.days_left) + " days left, within " + window;
  } else {
    verdict.why = days_text(verdict.days_left) + " days left; due in " + days_text(verdict.days_left - verdict.window_days) +
                  " days, " + window + " before it ends";
  }
  return verdict;
}

std::optional<SystemTime> parse_valid_till(std::string_view text) {
  std::tm tm{};
  int used = 0;
  const std::string copy(text);
  if (std::sscanf(copy.c_str(), "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &used) != 3 || used != 10) return std::nullopt;
  if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31) return std::nullopt;
  bool end_of_day = true;
  if (copy.size() > 10) {
    if (std::sscanf(copy.c_str() + 10, "T%2d:%2d:%2d", &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 3) return std::nullopt;
    end_of_day = false;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const std::time_t at = timegm(&tm);
  if (at == static_cast<std::time_t>(-1)) return std::nullopt;
  return std::chrono::system_clock::from_time_t(at + (end_of_day ? 86400 - 1 : 0));
}

RenewalPath renewal_path_for(SystemTime order_valid_till, std::chrono::seconds lifetime, SystemTime now) {
  return order_valid_till >= now + lifetime ? RenewalPath::reissue : RenewalPath::new_order;
}

std::string iso_utc(SystemTime time) {
  const std::time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

}  // namespace qscd::agent
