#include "csr/identifiers.hpp"

#include <algorithm>

namespace qscd::agent::csr {

namespace {

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

unsigned long long as_number(std::string_view digits) {
  unsigned long long value = 0;
  for (char c : digits) value = value * 10 + static_cast<unsigned long long>(c - '0');
  return value;
}

std::string two_digits(unsigned long long value) {
  return value < 10 ? "0" + std::to_string(value) : std::to_string(value);
}

}  // namespace

std::string normalise_cbe(std::string_view input) {
  // The forms Belgian registries print: 0403.019.261, 0403 019 261, BE 0403.019.261, BE0403019261.
  while (!input.empty() && input.front() == ' ') input.remove_prefix(1);
  if (input.size() >= 2 && (input[0] == 'B' || input[0] == 'b') && (input[1] == 'E' || input[1] == 'e')) input.remove_prefix(2);
  std::string digits;
  for (char c : input) {
    if (c != '.' && c != ' ') digits.push_back(c);
  }
  return digits;
}

std::optional<std::string> cbe_problem(std::string_view cbe) {
  if (!all_digits(cbe) || cbe.size() != 10) {
    return "a CBE number has 10 digits, given as 0403019261, 0403.019.261, 0403 019 261, BE 0403.019.261 or "
           "BE0403019261 (the subject holds the 10 digits), found \"" + std::string(cbe) + "\"";
  }
  if (cbe[0] != '0' && cbe[0] != '1') return "a CBE number starts with 0 or 1, found " + std::string(1, cbe[0]);
  const unsigned long long first8 = as_number(cbe.substr(0, 8));
  const unsigned long long remainder = first8 % 97;
  const unsigned long long check = remainder == 0 ? 97 : 97 - remainder;
  if (as_number(cbe.substr(8)) != check) {
    return "the last two digits of a CBE number are 97 - (first eight digits mod 97), or 97 when that is 0: " +
           std::string(cbe.substr(0, 8)) + " mod 97 = " + std::to_string(remainder) + ", so they must be " +
           two_digits(check) + ", found " + std::string(cbe.substr(8)) + " (the seed's example 0123456789 fails this too)";
  }
  return std::nullopt;
}

std::optional<std::string> kvk_problem(std::string_view kvk) {
  if (!all_digits(kvk) || kvk.size() != 8) return "a KvK number is exactly 8 digits, found \"" + std::string(kvk) + "\"";
  return std::nullopt;
}

std::optional<std::string> oin_problem(std::string_view oin) {
  if (!all_digits(oin) || oin.size() != 20) return "an OIN/HRN is exactly 20 digits, found \"" + std::string(oin) + "\"";
  const std::string_view prefix = oin.substr(0, 8);
  const unsigned long long prefix_number = as_number(prefix);
  if (!((prefix_number >= 1 && prefix_number <= 11) || prefix_number == 99)) {
    return "an OIN/HRN starts with a known prefix 00000001..00000011 or 00000099, found " + std::string(prefix);
  }
  if (prefix_number == 3) {
    if (oin.substr(16) != "0000") {
      return "a KvK-based HRN is 00000003 + the 8-digit KvK number + 0000, found the tail " + std::string(oin.substr(8));
    }
  } else if (oin.substr(17) != "000") {
    return "after the prefix an OIN is an 8-digit main number + 0000 or a 9-digit main number + 000, found " +
           std::string(oin.substr(8));
  }
  if (as_number(oin.substr(8, 9)) == 0) return "the main number of an OIN/HRN is not all zeros";
  return std::nullopt;
}

std::string hrn_from_kvk(std::string_view kvk) { return "00000003" + std::string(kvk) + "0000"; }

std::string organization_identifier_from_kvk(std::string_view kvk) { return "NTRNL-" + std::string(kvk); }

}  // namespace qscd::agent::csr
