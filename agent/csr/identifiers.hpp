#pragma once
// The registry numbers the profiles carry: the Belgian CBE (KBO/BCE) enterprise number, the Dutch
// KvK number and the OIN/HRN (certcentral-api.md §4, §5). Checks return why a value is wrong, in
// words, or nothing when it is right.
#include <optional>
#include <string>
#include <string_view>

namespace qscd::agent::csr {

// Drops the dots and spaces of the written form (0566.988.259 -> 0566988259); nothing else.
std::string normalise_cbe(std::string_view input);

// A CBE number is 10 digits, the first 0 or 1, the last two 97 - (first eight mod 97), or 97 when
// that remainder is 0. Returns the explanation of the first failed part.
std::optional<std::string> cbe_problem(std::string_view cbe);

// KvK: exactly 8 digits (no check digit is documented).
std::optional<std::string> kvk_problem(std::string_view kvk);

// OIN/HRN: 20 digits = known prefix (00000001..00000011, 00000099) + main number + suffix, the
// main number 8 digits + 0000 or 9 digits + 000; a KvK-based HRN (prefix 00000003) is 8 + 0000.
std::optional<std::string> oin_problem(std::string_view oin);

// The HRN of a KvK number: 00000003 + kvk + 0000 (seed 002). The kvk is used as given.
std::string hrn_from_kvk(std::string_view kvk);

// The ETSI EN 319 412-1 organizationIdentifier of a KvK number: NTRNL-<kvk>.
std::string organization_identifier_from_kvk(std::string_view kvk);

}  // namespace qscd::agent::csr
