// Labels and PINs are UTF-8 text without NUL bytes: what require_utf8_text lets through.
#include <doctest/doctest.h>

#include <string>

#include "base/errors.hpp"
#include "base/text.hpp"

using qscd::agent::require_utf8_text;
using qscd::agent::UsageError;

TEST_CASE("UTF-8 text: valid text passes, every kind of broken sequence and NUL is refused with its position") {
  for (const std::string good : {"", "seal", "Zegel Gemeente Voorbeeld", "caf\xc3\xa9", "\xe2\x82\xac 1", "\xf0\x9f\x94\x90", "\xf4\x8f\xbf\xbf"}) {
    CHECK_NOTHROW(require_utf8_text(good, "--label", "the key label"));
  }
  const std::string nul("ab\0c", 4);
  CHECK_THROWS_WITH_AS(require_utf8_text(nul, "--label", "the key label"),
                       "--label: the key label holds a NUL byte at byte 3; PKCS#11 labels and PINs are UTF-8 text", UsageError);
  for (const std::string bad : {"\xff", "a\x80", "\xc0\xaf", "\xc3", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
                                "\xe2\x82", "ok\xc3(x"}) {
    INFO(bad);
    CHECK_THROWS_AS(require_utf8_text(bad, "--new-pin-source", "the new user PIN"), UsageError);
  }
  CHECK_THROWS_WITH_AS(require_utf8_text("ab\xff", "--label", "the key label"),
                       "--label: the key label is not UTF-8 (byte 3); PKCS#11 labels and PINs are UTF-8 text", UsageError);
}
