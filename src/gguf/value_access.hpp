// Internal access to gguf::Value's packed arrays, for the reader and the writer.
//
// Arrays of numbers and bools are stored as the raw little-endian bytes of their elements
// (element_size(elem) bytes each, bools as one 0/1 byte); the reader hands the file's bytes
// over in one piece and the writer copies them back out, so neither goes through one Value
// per element.
#pragma once
#include <span>
#include <vector>

#include "vireo/gguf.hpp"

namespace vireo::gguf {

struct ValueAccess {
  /// True for the element types kept packed (every type but String and Array).
  static bool packed_type(ValueType t) noexcept {
    return t != ValueType::String && t != ValueType::Array;
  }
  /// Bytes of one packed element: 1, 2, 4 or 8 (0 for String/Array).
  static std::size_t element_size(ValueType t) noexcept;
  /// An array of `elem` (a packed type) holding `bytes` (a multiple of element_size(elem);
  /// bools must be 0 or 1). Callers validate; this only asserts in debug builds.
  static Value packed(ValueType elem, std::vector<std::byte> bytes);
  /// The packed bytes of an array value; empty span for anything else.
  static std::span<const std::byte> packed_bytes(const Value& v) noexcept;
};

}  // namespace vireo::gguf
