// RFC 7512 URIs (--token, --key, watch rules' match) as pkcs11/uri.hpp parses them with p11-kit:
// parse, then everything asked of a parsed URI (match against a token, the object template).
// Bad input must end in p11::InvalidArgument.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "qscd/pkcs11/error.hpp"
#include "qscd/pkcs11/uri.hpp"

using namespace qscd;

namespace {

p11::TokenInfo sample_token() {
  p11::TokenInfo token;
  token.slot = 1;
  token.label = "qscd1";
  token.serial = "0123456789abcdef";
  token.manufacturer = "SoftHSM project";
  token.model = "SoftHSM v2";
  auto pad = [](unsigned char* field, std::size_t width, const std::string& text) {
    std::memset(field, ' ', width);
    std::memcpy(field, text.data(), std::min(width, text.size()));
  };
  pad(token.raw.label, sizeof token.raw.label, token.label);
  pad(token.raw.serialNumber, sizeof token.raw.serialNumber, token.serial);
  pad(token.raw.manufacturerID, sizeof token.raw.manufacturerID, token.manufacturer);
  pad(token.raw.model, sizeof token.raw.model, token.model);
  return token;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const p11::TokenInfo token = sample_token();
  try {
    p11::Uri uri = p11::Uri::parse(std::string_view(reinterpret_cast<const char*>(data), size));
    (void)uri.matches(token);
    (void)uri.object_template();
    (void)uri.names_object();
    (void)uri.object_class();
  } catch (const p11::InvalidArgument&) {
  }
  return 0;
}
