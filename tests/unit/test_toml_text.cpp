#include <doctest/doctest.h>

#include <string>

#include "base/config.hpp"
#include "base/errors.hpp"
#include "base/toml_text.hpp"

using qscd::agent::check_toml_text;
using qscd::agent::UsageError;

// toml++ 3.3.0 reaches __builtin_unreachable when it tests a character of U+00A1..U+0499 (and two
// other ranges) for whitespace; check_toml_text keeps such text from it (docs/reliability.md).

TEST_CASE("TOML text: non-ASCII inside strings and comments passes") {
  CHECK_NOTHROW(check_toml_text("organization = \"Soci\xc3\xa9t\xc3\xa9 G\xc3\xa9n\xc3\xa9rale\"\n", "s.toml"));
  CHECK_NOTHROW(check_toml_text("locality = 'Li\xc3\xa8ge' # commentaire \xc3\xa9\n", "s.toml"));
  CHECK_NOTHROW(check_toml_text("o = \"\"\"Soci\xc3\xa9t\xc3\xa9 \\\n  G\xc3\xa9n\xc3\xa9rale\"\"\"\n", "s.toml"));
  CHECK_NOTHROW(check_toml_text("o = '''\xcf\xbb'''\n", "s.toml"));
  CHECK_NOTHROW(check_toml_text("a = [\"x\", \"\xcf\xbb\"]\nb = { c = \"\xcf\xbb\" }\n", "s.toml"));
  CHECK_NOTHROW(check_toml_text("\xEF\xBB\xBF" "a = 1\n", "s.toml"));  // a byte order mark
  CHECK_NOTHROW(check_toml_text("a = \"\\\"\xcf\xbb\"\n", "s.toml"));   // an escaped quote does not end it
  CHECK_NOTHROW(check_toml_text("a=\"\xc3\xa9\"\nb='\xc3\xa9'\n", "s.toml"));  // no spaces around =
  CHECK_NOTHROW(check_toml_text("x = { b = \"\xc3\xa9\", c = 1 }\n", "s.toml"));
  CHECK_NOTHROW(check_toml_text("subject = [\n  [\"CN\", \"Zo\xc3\xab\"],\n  [\"O\", \"Zo\xc3\xab\"],\n]\n", "s.toml"));
}

TEST_CASE("TOML text: what would reach toml++'s undefined behaviour is refused, naming line and column") {
  // The known input (base64 W3NzdM+7CQAAAA==) and the fuzzer's own finding.
  CHECK_THROWS_WITH_AS(check_toml_text(std::string("[sst\xcf\xbb\t\0\0\0\0", 10), "a.toml"),
                       "a.toml:1:5: the TOML text holds a non-ASCII character outside a quoted string or a comment", UsageError);
  CHECK_THROWS_AS(check_toml_text("x =0\"\"\"Soci\xc3\xa9t\xc3\xa9\"\"\"\n", "a.toml"), UsageError);
  for (const char* text : {"a = 1\xcf\xbb", "a = 1 \xc3\xa9", "\xcf\xbb = 1", "a.\xcf\xbb = 1", "a = \"x\"\xcf\xbb", "a = [1,\xcf\xbb]",
                           "a = \"\"\"\\\xcf\xbb\"\"\"", "a = \"\"\"a \\\n  \n \xcf\xbb\"\"\"", "a.\"\xcf\xbb\" = 1",
                           "a = \"\"\"x\"\"\"\"\xcf\xbb", "t = 00:0g=\"n\xc3\xa9\"", "a = [\n 00:0g=\"\xc3\xa9\"]",
                           "Jo.5o=00:0g=\"n\xc3\xa9\xc3\xa9 \\ue21\xc3\xa9\n~918:998 ]"}) {
    CAPTURE(text);
    CHECK_THROWS_AS(check_toml_text(text, "a.toml"), UsageError);
  }
}

TEST_CASE("TOML text: not UTF-8, or control characters, is refused") {
  CHECK_THROWS_WITH_AS(check_toml_text("a = \"\xff\"\n", "a.toml"), "a.toml:1:6: the TOML text is not UTF-8", UsageError);
  CHECK_THROWS_WITH_AS(check_toml_text(std::string("a = 1\n\0", 7), "a.toml"),
                       "a.toml:2:1: the TOML text holds the control character U+0000 (TOML allows only tab, LF and CR)", UsageError);
  CHECK_THROWS_AS(check_toml_text("# \x7f\n", "a.toml"), UsageError);
}

TEST_CASE("the config refuses the known toml++ input with a usage error") {
  CHECK_THROWS_AS(qscd::agent::parse_config(std::string("[sst\xcf\xbb\t\0\0\0\0", 10), "agent.toml"), UsageError);
}
