// The TOML the agent reads: the config (agent/base/config) and subject files (agent/csr/profile),
// each parsed from the same text. Both go through check_toml_text and then toml++ (header-only in
// this build, so UBSan sees into its parser). Bad input must end in UsageError.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/config.hpp"
#include "base/errors.hpp"
#include "csr/profile.hpp"

using namespace qscd::agent;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    (void)parse_config(text, "fuzz.toml");
  } catch (const UsageError&) {
  }
  for (csr::Profile profile : {csr::Profile::be_ebox, csr::Profile::generic}) {
    try {
      std::vector<csr::Finding> findings;
      (void)csr::subject_from_input(profile, csr::parse_subject_toml(text, "subject.toml", profile), findings);
    } catch (const UsageError&) {
    }
  }
  return 0;
}
