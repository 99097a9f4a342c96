#pragma once
// Owning handles for the OpenSSL objects the CSR code uses, so every path frees them.
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "../ossl.hpp"

namespace qscd::agent::csr {

// The agent's one deleter template (agent/ossl.hpp), so a request or key made here is the same
// type as one read by the certificate code.
template <auto Free>
using OsslDeleter = ossl::Deleter<Free>;

using UniqueName = std::unique_ptr<X509_NAME, OsslDeleter<X509_NAME_free>>;
using UniqueReq = ossl::X509ReqPtr;
using UniquePkey = ossl::EvpPkeyPtr;
using UniquePkeyCtx = std::unique_ptr<EVP_PKEY_CTX, OsslDeleter<EVP_PKEY_CTX_free>>;
using UniqueMdCtx = std::unique_ptr<EVP_MD_CTX, OsslDeleter<EVP_MD_CTX_free>>;
using UniqueAlgor = std::unique_ptr<X509_ALGOR, OsslDeleter<X509_ALGOR_free>>;
using UniqueBio = std::unique_ptr<BIO, OsslDeleter<BIO_free_all>>;
using UniqueAsn1String = std::unique_ptr<ASN1_STRING, OsslDeleter<ASN1_STRING_free>>;
using UniqueEcdsaSig = std::unique_ptr<ECDSA_SIG, OsslDeleter<ECDSA_SIG_free>>;
using UniqueBignum = std::unique_ptr<BIGNUM, OsslDeleter<BN_free>>;

// The last OpenSSL error queue entry as text (and the queue cleared), for messages.
std::string openssl_error_text();

}  // namespace qscd::agent::csr
