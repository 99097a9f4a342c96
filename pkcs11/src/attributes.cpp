#include "qscd/pkcs11/attributes.hpp"

#include <algorithm>
#include <cstring>

#include "qscd/pkcs11/error.hpp"

namespace qscd::p11 {

AttributeTemplate& AttributeTemplate::add(CK_ATTRIBUTE_TYPE type, Bytes value) {
  Bytes& stored = values_.emplace_back(std::move(value));
  CK_ATTRIBUTE attribute{type, stored.empty() ? nullptr : stored.data(), static_cast<CK_ULONG>(stored.size())};
  auto existing = std::find_if(attributes_.begin(), attributes_.end(),
                               [type](const CK_ATTRIBUTE& a) { return a.type == type; });
  if (existing != attributes_.end()) {
    *existing = attribute;
  } else {
    attributes_.push_back(attribute);
  }
  return *this;
}

AttributeTemplate& AttributeTemplate::add_bool(CK_ATTRIBUTE_TYPE type, bool value) {
  return add(type, Bytes{static_cast<unsigned char>(value ? CK_TRUE : CK_FALSE)});
}

AttributeTemplate& AttributeTemplate::add_ulong(CK_ATTRIBUTE_TYPE type, CK_ULONG value) {
  Bytes bytes(sizeof value);
  std::memcpy(bytes.data(), &value, sizeof value);
  return add(type, std::move(bytes));
}

AttributeTemplate& AttributeTemplate::add_bytes(CK_ATTRIBUTE_TYPE type, std::span<const unsigned char> value) {
  return add(type, Bytes(value.begin(), value.end()));
}

AttributeTemplate& AttributeTemplate::add_string(CK_ATTRIBUTE_TYPE type, std::string_view value) {
  return add(type, Bytes(value.begin(), value.end()));
}

namespace {

void require_present(const Attribute& attribute, std::size_t size) {
  if (attribute.state == Attribute::State::sensitive) throw Error("attribute is sensitive");
  if (attribute.state == Attribute::State::absent) throw Error("attribute is not present on the object");
  if (size != 0 && attribute.value.size() != size) {
    throw Error("attribute has " + std::to_string(attribute.value.size()) + " bytes, expected " + std::to_string(size));
  }
}

}  // namespace

bool Attribute::as_bool() const {
  require_present(*this, sizeof(CK_BBOOL));
  return value[0] != CK_FALSE;
}

CK_ULONG Attribute::as_ulong() const {
  require_present(*this, sizeof(CK_ULONG));
  CK_ULONG result = 0;
  std::memcpy(&result, value.data(), sizeof result);
  return result;
}

std::string Attribute::as_string() const {
  require_present(*this, 0);
  return {value.begin(), value.end()};
}

}  // namespace qscd::p11
