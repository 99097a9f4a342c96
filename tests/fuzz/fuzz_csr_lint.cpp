// The CSR linter (`csr check`) on arbitrary bytes: parse_request takes PEM or DER, lint_request
// runs every rule of each profile. Bad input must end in UsageError; a request that parses gets
// findings, never an exception.
#include <cstddef>
#include <cstdint>
#include <span>

#include "base/errors.hpp"
#include "csr/lint.hpp"

using namespace qscd::agent;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ossl::X509ReqPtr request;
  try {
    request = csr::parse_request(std::span<const unsigned char>(data, size), "fuzz input");
  } catch (const UsageError&) {
    return 0;
  }
  for (csr::Profile profile : {csr::Profile::be_ebox, csr::Profile::pkio_server, csr::Profile::pkio_eseal, csr::Profile::generic}) {
    for (const csr::Finding& finding : csr::lint_request(profile, request.get())) (void)finding;
  }
  return 0;
}
