#pragma once
// Lowercase hex, the form of the journal's tags and the evidence hashes. (CKA_ID text is the
// token layer's p11::to_hex: pkcs11/ builds alone and cannot share this.)
#include <span>
#include <string>

namespace qscd::agent {

std::string hex_lower(std::span<const unsigned char> bytes);

}  // namespace qscd::agent
