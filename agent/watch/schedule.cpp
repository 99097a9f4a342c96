#include "watch/schedule.hpp"

#include <algorithm>
#include <cstdint>

namespace qscd::agent {

std::chrono::seconds renewal_check_delay(std::chrono::seconds every, std::mt19937_64& random) {
  const auto spread = std::min<std::int64_t>(every.count() / 10, 3600);
  std::uniform_int_distribution<std::int64_t> jitter(0, std::max<std::int64_t>(spread, 0));
  return every + std::chrono::seconds(jitter(random));
}

}  // namespace qscd::agent
