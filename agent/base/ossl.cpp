#include "base/ossl.hpp"

#include <openssl/err.h>
#include <openssl/objects.h>

#include <array>

namespace qscd::agent::ossl {

X509Ptr share(X509* cert) {
  X509_up_ref(cert);
  return X509Ptr(cert);
}

std::string oid_text(const ASN1_OBJECT* object) {
  std::array<char, 128> text{};
  OBJ_obj2txt(text.data(), static_cast<int>(text.size()), object, 1);
  return text.data();
}

std::string error_text() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "no OpenSSL error recorded";
  std::array<char, 256> text{};
  ERR_error_string_n(code, text.data(), text.size());
  return text.data();
}

}  // namespace qscd::agent::ossl
