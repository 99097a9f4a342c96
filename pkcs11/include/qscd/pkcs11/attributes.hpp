#pragma once
// Attribute templates and attribute values, after Botan's AttributeContainer:
// the template owns every value at a stable address, so the CK_ATTRIBUTE array
// it hands to the module stays valid for as long as the template lives.
#include <p11-kit/pkcs11.h>

#include <list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qscd::p11 {

using Bytes = std::vector<unsigned char>;

class AttributeTemplate {
 public:
  AttributeTemplate() = default;
  // Copying would leave the copy's pointers aimed at the original's values.
  AttributeTemplate(const AttributeTemplate&) = delete;
  AttributeTemplate& operator=(const AttributeTemplate&) = delete;
  AttributeTemplate(AttributeTemplate&&) noexcept = default;
  AttributeTemplate& operator=(AttributeTemplate&&) noexcept = default;

  // Setting a type twice replaces the earlier value.
  AttributeTemplate& add_bool(CK_ATTRIBUTE_TYPE type, bool value);
  AttributeTemplate& add_ulong(CK_ATTRIBUTE_TYPE type, CK_ULONG value);
  AttributeTemplate& add_bytes(CK_ATTRIBUTE_TYPE type, std::span<const unsigned char> value);
  AttributeTemplate& add_string(CK_ATTRIBUTE_TYPE type, std::string_view value);

  AttributeTemplate& object_class(CK_OBJECT_CLASS value) { return add_ulong(CKA_CLASS, value); }
  AttributeTemplate& key_type(CK_KEY_TYPE value) { return add_ulong(CKA_KEY_TYPE, value); }
  AttributeTemplate& certificate_type(CK_CERTIFICATE_TYPE value) { return add_ulong(CKA_CERTIFICATE_TYPE, value); }
  AttributeTemplate& certificate_category(CK_ULONG value) { return add_ulong(CKA_CERTIFICATE_CATEGORY, value); }
  AttributeTemplate& token(bool value) { return add_bool(CKA_TOKEN, value); }
  AttributeTemplate& private_(bool value) { return add_bool(CKA_PRIVATE, value); }
  AttributeTemplate& modifiable(bool value) { return add_bool(CKA_MODIFIABLE, value); }
  AttributeTemplate& sensitive(bool value) { return add_bool(CKA_SENSITIVE, value); }
  AttributeTemplate& extractable(bool value) { return add_bool(CKA_EXTRACTABLE, value); }
  AttributeTemplate& always_authenticate(bool value) { return add_bool(CKA_ALWAYS_AUTHENTICATE, value); }
  AttributeTemplate& sign(bool value) { return add_bool(CKA_SIGN, value); }
  AttributeTemplate& verify(bool value) { return add_bool(CKA_VERIFY, value); }
  AttributeTemplate& encrypt(bool value) { return add_bool(CKA_ENCRYPT, value); }
  AttributeTemplate& decrypt(bool value) { return add_bool(CKA_DECRYPT, value); }
  AttributeTemplate& wrap(bool value) { return add_bool(CKA_WRAP, value); }
  AttributeTemplate& unwrap(bool value) { return add_bool(CKA_UNWRAP, value); }
  AttributeTemplate& derive(bool value) { return add_bool(CKA_DERIVE, value); }
  AttributeTemplate& id(std::span<const unsigned char> value) { return add_bytes(CKA_ID, value); }
  AttributeTemplate& label(std::string_view value) { return add_string(CKA_LABEL, value); }
  AttributeTemplate& value(std::span<const unsigned char> bytes) { return add_bytes(CKA_VALUE, bytes); }
  AttributeTemplate& subject(std::span<const unsigned char> der) { return add_bytes(CKA_SUBJECT, der); }
  AttributeTemplate& issuer(std::span<const unsigned char> der) { return add_bytes(CKA_ISSUER, der); }
  AttributeTemplate& serial_number(std::span<const unsigned char> der) { return add_bytes(CKA_SERIAL_NUMBER, der); }
  AttributeTemplate& modulus_bits(CK_ULONG bits) { return add_ulong(CKA_MODULUS_BITS, bits); }
  AttributeTemplate& public_exponent(std::span<const unsigned char> big_endian) {
    return add_bytes(CKA_PUBLIC_EXPONENT, big_endian);
  }
  AttributeTemplate& ec_params(std::span<const unsigned char> der) { return add_bytes(CKA_EC_PARAMS, der); }

  [[nodiscard]] CK_ATTRIBUTE* data() noexcept { return attributes_.data(); }
  [[nodiscard]] CK_ULONG size() const noexcept { return attributes_.size(); }
  [[nodiscard]] bool empty() const noexcept { return attributes_.empty(); }
  [[nodiscard]] std::span<const CK_ATTRIBUTE> attributes() const noexcept { return attributes_; }

 private:
  AttributeTemplate& add(CK_ATTRIBUTE_TYPE type, Bytes value);

  std::vector<CK_ATTRIBUTE> attributes_;
  // std::list: growing it never moves the values the attributes point at.
  std::list<Bytes> values_;
};

// One attribute read back from an object. A sensitive or absent attribute is an
// answer the caller looks at, not an exception.
struct Attribute {
  enum class State { present, sensitive, absent };

  State state = State::absent;
  Bytes value;

  [[nodiscard]] bool present() const noexcept { return state == State::present; }
  [[nodiscard]] bool sensitive() const noexcept { return state == State::sensitive; }
  // Typed views of a present value; Error when absent, sensitive or of the wrong size.
  [[nodiscard]] bool as_bool() const;
  [[nodiscard]] CK_ULONG as_ulong() const;
  [[nodiscard]] std::string as_string() const;
};

}  // namespace qscd::p11
