#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <utility>

#include "qscd/api/api_key.hpp"
#include "qscd/api/error.hpp"
#include "qscd/api/secret_bytes.hpp"

using qscd::api::ApiKey;
using qscd::api::SecretBytes;

namespace {

void fill(SecretBytes& secret, std::string_view text) {
  for (char c : text) REQUIRE(secret.push_back(static_cast<unsigned char>(c)));
}

bool all_zero(const unsigned char* data, std::size_t size) {
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] != 0) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("SecretBytes has a fixed capacity and never reallocates") {
  SecretBytes secret(8);
  CHECK(secret.capacity() == 8);
  CHECK(secret.empty());
  REQUIRE(secret.push_back('a'));
  const unsigned char* data = secret.bytes().data();
  fill(secret, "bcdefgh");
  CHECK(secret.size() == 8);
  CHECK_FALSE(secret.push_back('i'));  // full: refused, nothing changed
  CHECK(secret.size() == 8);
  CHECK(secret.view() == "abcdefgh");
  CHECK(secret.bytes().data() == data);  // the same buffer all along
  CHECK(SecretBytes().capacity() == SecretBytes::default_capacity);
}

TEST_CASE("SecretBytes wipes on pop_back, clear and destruction of its contents") {
  SecretBytes secret(16);
  fill(secret, "secret");
  const unsigned char* data = secret.bytes().data();
  secret.pop_back();
  CHECK(secret.view() == "secre");
  CHECK(data[5] == 0);
  secret.clear();
  CHECK(secret.empty());
  CHECK(secret.capacity() == 16);
  CHECK(all_zero(data, 16));
}

TEST_CASE("moving a SecretBytes hands the buffer over and leaves nothing behind") {
  SecretBytes source(16);
  fill(source, "1234");
  const unsigned char* data = source.bytes().data();

  SecretBytes moved(std::move(source));
  CHECK(moved.view() == "1234");
  CHECK(moved.bytes().data() == data);  // not copied
  CHECK(source.empty());                // NOLINT(bugprone-use-after-move): checking the moved-from state
  CHECK(source.capacity() == 0);
  CHECK_FALSE(source.push_back('x'));

  // Move assignment wipes the buffer it replaces; the source keeps that wiped buffer, empty.
  SecretBytes target(16);
  fill(target, "old secret");
  const unsigned char* old_data = target.bytes().data();
  target = std::move(moved);
  CHECK(target.view() == "1234");
  CHECK(target.bytes().data() == data);
  CHECK(moved.empty());  // NOLINT(bugprone-use-after-move)
  CHECK(moved.bytes().data() == old_data);
  CHECK(all_zero(old_data, 16));
}

TEST_CASE("SecretBytes::copy_of is an explicit copy sized to its input") {
  const std::string text = "api-key";
  SecretBytes copy = SecretBytes::copy_of({reinterpret_cast<const unsigned char*>(text.data()), text.size()});
  CHECK(copy.view() == "api-key");
  CHECK(copy.capacity() == text.size());
  CHECK(SecretBytes::copy_of({}).empty());
}

TEST_CASE("ApiKey holds its bytes in a SecretBytes and keeps its rules") {
  const std::string text = "0123456789ABCDEF";
  ApiKey key({reinterpret_cast<const unsigned char*>(text.data()), text.size()});
  CHECK(std::string_view(reinterpret_cast<const char*>(key.bytes().data()), key.bytes().size()) == text);
  ApiKey moved(std::move(key));
  CHECK(moved.bytes().size() == text.size());
  CHECK(key.bytes().empty());  // NOLINT(bugprone-use-after-move)
  CHECK_THROWS_WITH_AS(ApiKey({}), "API key: is empty", qscd::api::ConfigError);
  const std::string spaced = "with space";
  CHECK_THROWS_AS(ApiKey({reinterpret_cast<const unsigned char*>(spaced.data()), spaced.size()}),
                  qscd::api::ConfigError);
}
