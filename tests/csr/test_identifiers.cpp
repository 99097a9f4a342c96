#include <doctest/doctest.h>

#include "csr/identifiers.hpp"

using namespace qscd::agent::csr;

TEST_CASE("CBE numbers: valid ones pass the mod-97 check") {
  for (const char* cbe : {"0403019261", "0428759497", "0566988259"}) {
    CAPTURE(cbe);
    CHECK_FALSE(cbe_problem(cbe).has_value());
  }
}

TEST_CASE("CBE numbers: invalid ones say why") {
  struct Case {
    const char* cbe;
    const char* why;
  };
  const Case cases[] = {
      {"0431150351", "04311503 mod 97 = 47, so they must be 50, found 51"},
      {"0123456789", "01234567 mod 97 = 48, so they must be 49, found 89"},
      {"040301926", "has 10 digits"},
      {"04030192611", "has 10 digits"},
      {"2403019261", "starts with 0 or 1, found 2"},
      {"04030192AB", "has 10 digits"},
      {"0403.019.261", "has 10 digits"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.cbe);
    const auto problem = cbe_problem(c.cbe);
    REQUIRE(problem.has_value());
    CHECK(problem->find(c.why) != std::string::npos);
  }
}

TEST_CASE("CBE numbers: 97 when the first eight digits are a multiple of 97") {
  // 04287594 = 97 * 44202: remainder 0, check digits 97.
  CHECK_FALSE(cbe_problem("0428759497").has_value());
  CHECK(cbe_problem("0428759400").has_value());
}

TEST_CASE("CBE numbers: dots, spaces and a BE prefix of the written forms are dropped, nothing else") {
  CHECK(normalise_cbe("0566.988.259") == "0566988259");
  CHECK(normalise_cbe("0566 988 259") == "0566988259");
  CHECK(normalise_cbe("BE 0403.019.261") == "0403019261");
  CHECK(normalise_cbe("BE0403019261") == "0403019261");
  CHECK(normalise_cbe("be 0403 019 261") == "0403019261");
  CHECK(cbe_problem("BEX0403019").value().find("given as 0403019261, 0403.019.261") != std::string::npos);
  CHECK(normalise_cbe("BE0566988259") == "0566988259");
  CHECK(normalise_cbe("0566-988-259") == "0566-988-259");  // nothing else is dropped
}

TEST_CASE("KvK numbers are exactly 8 digits") {
  CHECK_FALSE(kvk_problem("12345678").has_value());
  CHECK_FALSE(kvk_problem("01234567").has_value());
  for (const char* kvk : {"1234567", "123456789", "1234567A", "", "1234 5678"}) {
    CAPTURE(kvk);
    CHECK(kvk_problem(kvk).has_value());
  }
}

TEST_CASE("HRN and organizationIdentifier derivation from a KvK number") {
  CHECK(hrn_from_kvk("12345678") == "00000003123456780000");  // seed 002's example
  CHECK(hrn_from_kvk("01234567") == "00000003012345670000");
  CHECK(organization_identifier_from_kvk("99999991") == "NTRNL-99999991");
  CHECK_FALSE(oin_problem(hrn_from_kvk("12345678")).has_value());
}

TEST_CASE("OIN/HRN validation table") {
  for (const char* oin : {"00000001002220647000", "00000004194049711000", "00000003123456780000",
                          "00000099999999910000", "00000011123456789000", "00000002123456780000"}) {
    CAPTURE(oin);
    CHECK_FALSE(oin_problem(oin).has_value());
  }
  struct Case {
    const char* oin;
    const char* why;
  };
  const Case cases[] = {
      {"0000000312345678000", "exactly 20 digits"},
      {"000000031234567800000", "exactly 20 digits"},
      {"0000000312345678000A", "exactly 20 digits"},
      {"00000012123456780000", "known prefix"},
      {"00000000123456780000", "known prefix"},
      {"00000098123456780000", "known prefix"},
      {"10000003123456780000", "known prefix"},
      {"00000003123456789000", "00000003 + the 8-digit KvK number + 0000"},
      {"00000001123456789100", "8-digit main number + 0000 or a 9-digit main number + 000"},
      {"00000001000000000000", "not all zeros"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.oin);
    const auto problem = oin_problem(c.oin);
    REQUIRE(problem.has_value());
    CHECK(problem->find(c.why) != std::string::npos);
  }
}
