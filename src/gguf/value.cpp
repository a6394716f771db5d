// gguf::Value: one typed metadata value, and the names of value/tensor types.
//
// A Value keeps a scalar in one 8-byte slot, bits_: unsigned integers as they are, signed
// integers and bool as two's-complement int64 bits, floats as a double's bits. Strings,
// arrays of strings/arrays (one Value per element) and arrays of numbers/bools (their
// little-endian bytes, packed, so an array costs what the file spends on it) share one
// variant, data_. The accessors convert between integer kinds only when the value is
// representable, so a model loader can read e.g. a block count stored as int32 or uint64
// alike and still reject -1. Elements of packed arrays are decoded on access (at(),
// as_int_array(), as_float_array()) with the same conversions.
#include <fmt/format.h>

#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>

#include "gguf/value_access.hpp"
#include "vireo/gguf.hpp"

namespace vireo::gguf {

const char* to_string(ValueType t) noexcept {
  switch (t) {
    case ValueType::UInt8: return "uint8";
    case ValueType::Int8: return "int8";
    case ValueType::UInt16: return "uint16";
    case ValueType::Int16: return "int16";
    case ValueType::UInt32: return "uint32";
    case ValueType::Int32: return "int32";
    case ValueType::Float32: return "float32";
    case ValueType::Bool: return "bool";
    case ValueType::String: return "string";
    case ValueType::Array: return "array";
    case ValueType::UInt64: return "uint64";
    case ValueType::Int64: return "int64";
    case ValueType::Float64: return "float64";
  }
  return "unknown";
}

const char* to_string(TensorType t) noexcept {
  switch (t) {
    case TensorType::F32: return "F32";
    case TensorType::F16: return "F16";
    case TensorType::Q4_0: return "Q4_0";
    case TensorType::Q4_1: return "Q4_1";
    case TensorType::Q5_0: return "Q5_0";
    case TensorType::Q5_1: return "Q5_1";
    case TensorType::Q8_0: return "Q8_0";
    case TensorType::Q4_K: return "Q4_K";
    case TensorType::IQ4_NL: return "IQ4_NL";
    case TensorType::IQ4_XS: return "IQ4_XS";
    case TensorType::Q2_K: return "Q2_K";
    case TensorType::Q3_K: return "Q3_K";
    case TensorType::Q5_K: return "Q5_K";
    case TensorType::Q6_K: return "Q6_K";
    case TensorType::BF16: return "BF16";
  }
  return "unknown";
}

namespace {

bool is_unsigned(ValueType t) {
  return t == ValueType::UInt8 || t == ValueType::UInt16 || t == ValueType::UInt32 ||
         t == ValueType::UInt64;
}
bool is_signed(ValueType t) {
  return t == ValueType::Int8 || t == ValueType::Int16 || t == ValueType::Int32 ||
         t == ValueType::Int64;
}
bool is_float(ValueType t) { return t == ValueType::Float32 || t == ValueType::Float64; }

[[noreturn]] void wrong_type(const char* wanted, ValueType got) {
  throw Error(ErrorCode::InvalidModel,
              fmt::format("expected a {} value, found a value of type {}", wanted, to_string(got)));
}

}  // namespace

std::uint64_t Value::as_uint() const {
  if (is_unsigned(type_)) return bits_;
  if (is_signed(type_) || type_ == ValueType::Bool) {
    const auto i = std::int64_t(bits_);
    if (i < 0)
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("expected a non-negative integer, found {} ({})", i, to_string(type_)));
    return std::uint64_t(i);
  }
  wrong_type("integer", type_);
}

std::int64_t Value::as_int() const {
  if (is_signed(type_) || type_ == ValueType::Bool) return std::int64_t(bits_);
  if (is_unsigned(type_)) {
    if (bits_ > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("integer {} ({}) does not fit in int64", bits_, to_string(type_)));
    return std::int64_t(bits_);
  }
  wrong_type("integer", type_);
}

double Value::as_float() const {
  if (is_float(type_)) {
    double d;
    std::memcpy(&d, &bits_, sizeof d);
    return d;
  }
  if (is_unsigned(type_)) return double(bits_);
  if (is_signed(type_)) return double(std::int64_t(bits_));
  wrong_type("numeric", type_);
}

bool Value::as_bool() const {
  if (type_ != ValueType::Bool) wrong_type("bool", type_);
  return bits_ != 0;
}

const std::string& Value::as_string() const {
  if (type_ != ValueType::String) wrong_type("string", type_);
  return std::get<std::string>(data_);
}

std::size_t Value::array_size() const {
  if (type_ != ValueType::Array) wrong_type("array", type_);
  if (const auto* p = std::get_if<std::vector<std::byte>>(&data_))
    return p->size() / ValueAccess::element_size(array_type_);
  return std::get<std::vector<Value>>(data_).size();
}

namespace {

// Element `i` of a packed array of `elem`: the raw bits, widened as a scalar Value keeps them.
template <class T>
T load(const std::byte* p, std::size_t i) {
  T v;
  std::memcpy(&v, p + i * sizeof(T), sizeof(T));
  return v;
}

Value packed_element(ValueType elem, const std::byte* p, std::size_t i) {
  switch (elem) {
    case ValueType::UInt8: return Value::make_uint(elem, load<std::uint8_t>(p, i));
    case ValueType::UInt16: return Value::make_uint(elem, load<std::uint16_t>(p, i));
    case ValueType::UInt32: return Value::make_uint(elem, load<std::uint32_t>(p, i));
    case ValueType::UInt64: return Value::make_uint(elem, load<std::uint64_t>(p, i));
    case ValueType::Int8: return Value::make_int(elem, load<std::int8_t>(p, i));
    case ValueType::Int16: return Value::make_int(elem, load<std::int16_t>(p, i));
    case ValueType::Int32: return Value::make_int(elem, load<std::int32_t>(p, i));
    case ValueType::Int64: return Value::make_int(elem, load<std::int64_t>(p, i));
    case ValueType::Float32: return Value::make_float(elem, load<float>(p, i));
    case ValueType::Float64: return Value::make_float(elem, load<double>(p, i));
    case ValueType::Bool: return Value::make_bool(load<std::uint8_t>(p, i) != 0);
    case ValueType::String:
    case ValueType::Array: break;
  }
  throw Error(ErrorCode::Internal,
              fmt::format("packed array of {} elements", to_string(elem)));
}

}  // namespace

Value Value::at(std::size_t i) const {
  const std::size_t n = array_size();  // throws for non-arrays
  if (i >= n)
    throw Error(ErrorCode::InvalidModel,
                fmt::format("array index {} is out of range for an array of {} {} elements", i, n,
                            to_string(array_type_)));
  if (const auto* p = std::get_if<std::vector<std::byte>>(&data_))
    return packed_element(array_type_, p->data(), i);
  return std::get<std::vector<Value>>(data_)[i];
}

std::vector<std::int64_t> Value::as_int_array() const {
  const std::size_t n = array_size();
  if (!is_unsigned(array_type_) && !is_signed(array_type_) && array_type_ != ValueType::Bool)
    throw Error(ErrorCode::InvalidModel,
                fmt::format("expected an array of integers, found an array of {}",
                            to_string(array_type_)));
  const std::byte* p = std::get<std::vector<std::byte>>(data_).data();
  std::vector<std::int64_t> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    switch (array_type_) {
      case ValueType::UInt8:
      case ValueType::Bool: out[i] = load<std::uint8_t>(p, i); break;
      case ValueType::UInt16: out[i] = load<std::uint16_t>(p, i); break;
      case ValueType::UInt32: out[i] = load<std::uint32_t>(p, i); break;
      case ValueType::UInt64: {
        const auto u = load<std::uint64_t>(p, i);
        if (u > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
          throw Error(ErrorCode::InvalidModel,
                      fmt::format("array element {}: integer {} (uint64) does not fit in int64", i, u));
        out[i] = std::int64_t(u);
        break;
      }
      case ValueType::Int8: out[i] = load<std::int8_t>(p, i); break;
      case ValueType::Int16: out[i] = load<std::int16_t>(p, i); break;
      case ValueType::Int32: out[i] = load<std::int32_t>(p, i); break;
      case ValueType::Int64: out[i] = load<std::int64_t>(p, i); break;
      default: break;  // excluded above
    }
  }
  return out;
}

std::vector<double> Value::as_float_array() const {
  const std::size_t n = array_size();
  if (!is_unsigned(array_type_) && !is_signed(array_type_) && !is_float(array_type_))
    throw Error(ErrorCode::InvalidModel,
                fmt::format("expected an array of numbers, found an array of {}",
                            to_string(array_type_)));
  const std::byte* p = std::get<std::vector<std::byte>>(data_).data();
  std::vector<double> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    switch (array_type_) {
      case ValueType::UInt8: out[i] = load<std::uint8_t>(p, i); break;
      case ValueType::UInt16: out[i] = load<std::uint16_t>(p, i); break;
      case ValueType::UInt32: out[i] = load<std::uint32_t>(p, i); break;
      case ValueType::UInt64: out[i] = double(load<std::uint64_t>(p, i)); break;
      case ValueType::Int8: out[i] = load<std::int8_t>(p, i); break;
      case ValueType::Int16: out[i] = load<std::int16_t>(p, i); break;
      case ValueType::Int32: out[i] = load<std::int32_t>(p, i); break;
      case ValueType::Int64: out[i] = double(load<std::int64_t>(p, i)); break;
      case ValueType::Float32: out[i] = load<float>(p, i); break;
      case ValueType::Float64: out[i] = load<double>(p, i); break;
      default: break;  // excluded above
    }
  }
  return out;
}

const std::vector<Value>& Value::as_array() const {
  if (type_ != ValueType::Array) wrong_type("array", type_);
  if (const auto* p = std::get_if<std::vector<Value>>(&data_)) return *p;
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("as_array: an array of {} is stored packed; use at(), as_int_array() "
                          "or as_float_array()",
                          to_string(array_type_)));
}

Value Value::make_uint(ValueType t, std::uint64_t v) {
  std::uint64_t max = 0;
  switch (t) {
    case ValueType::UInt8: max = 0xFF; break;
    case ValueType::UInt16: max = 0xFFFF; break;
    case ValueType::UInt32: max = 0xFFFFFFFFu; break;
    case ValueType::UInt64: max = ~std::uint64_t(0); break;
    default:
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("make_uint: {} is not an unsigned integer type", to_string(t)));
  }
  if (v > max)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("make_uint: {} does not fit in {}", v, to_string(t)));
  Value r;
  r.type_ = t;
  r.bits_ = v;
  return r;
}

Value Value::make_int(ValueType t, std::int64_t v) {
  std::int64_t lo = 0, hi = 0;
  switch (t) {
    case ValueType::Int8: lo = -128; hi = 127; break;
    case ValueType::Int16: lo = -32768; hi = 32767; break;
    case ValueType::Int32: lo = std::numeric_limits<std::int32_t>::min(); hi = std::numeric_limits<std::int32_t>::max(); break;
    case ValueType::Int64: lo = std::numeric_limits<std::int64_t>::min(); hi = std::numeric_limits<std::int64_t>::max(); break;
    default:
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("make_int: {} is not a signed integer type", to_string(t)));
  }
  if (v < lo || v > hi)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("make_int: {} does not fit in {}", v, to_string(t)));
  Value r;
  r.type_ = t;
  r.bits_ = std::uint64_t(v);
  return r;
}

Value Value::make_float(ValueType t, double v) {
  if (!is_float(t))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("make_float: {} is not a float type", to_string(t)));
  Value r;
  r.type_ = t;
  // A Float32 value holds exactly what the file will store.
  const double d = t == ValueType::Float32 ? double(float(v)) : v;
  std::memcpy(&r.bits_, &d, sizeof d);
  return r;
}

Value Value::make_bool(bool v) {
  Value r;
  r.type_ = ValueType::Bool;
  r.bits_ = v ? 1 : 0;
  return r;
}

Value Value::make_string(std::string v) {
  Value r;
  r.type_ = ValueType::String;
  r.data_ = std::move(v);
  return r;
}

Value Value::make_array(ValueType elem, std::vector<Value> v) {
  if (std::uint32_t(elem) > std::uint32_t(ValueType::Float64))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("make_array: unknown element type {}", std::uint32_t(elem)));
  for (std::size_t i = 0; i < v.size(); ++i)
    if (v[i].type_ != elem)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("make_array: element {} has type {}, the array holds {}", i,
                              to_string(v[i].type_), to_string(elem)));
  if (!ValueAccess::packed_type(elem)) {
    Value r;
    r.type_ = ValueType::Array;
    r.array_type_ = elem;
    r.data_ = std::move(v);
    return r;
  }
  // Pack: each element's low element_size bytes (little-endian host, as the reader assumes);
  // a Float32 element is narrowed back to the float make_float already rounded it to.
  const std::size_t es = ValueAccess::element_size(elem);
  std::vector<std::byte> bytes(v.size() * es);
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::byte* dst = bytes.data() + i * es;
    if (elem == ValueType::Float32) {
      const float f = float(v[i].as_float());
      std::memcpy(dst, &f, sizeof f);
    } else {
      std::memcpy(dst, &v[i].bits_, es);
    }
  }
  return ValueAccess::packed(elem, std::move(bytes));
}

std::size_t ValueAccess::element_size(ValueType t) noexcept {
  switch (t) {
    case ValueType::UInt8:
    case ValueType::Int8:
    case ValueType::Bool: return 1;
    case ValueType::UInt16:
    case ValueType::Int16: return 2;
    case ValueType::UInt32:
    case ValueType::Int32:
    case ValueType::Float32: return 4;
    case ValueType::UInt64:
    case ValueType::Int64:
    case ValueType::Float64: return 8;
    case ValueType::String:
    case ValueType::Array: return 0;
  }
  return 0;
}

Value ValueAccess::packed(ValueType elem, std::vector<std::byte> bytes) {
  assert(packed_type(elem) && bytes.size() % element_size(elem) == 0);
  Value r;
  r.type_ = ValueType::Array;
  r.array_type_ = elem;
  r.data_ = std::move(bytes);
  return r;
}

std::span<const std::byte> ValueAccess::packed_bytes(const Value& v) noexcept {
  if (const auto* p = std::get_if<std::vector<std::byte>>(&v.data_)) return *p;
  return {};
}

}  // namespace vireo::gguf
