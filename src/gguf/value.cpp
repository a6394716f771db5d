// gguf::Value: one typed metadata value, and the names of value/tensor types.
//
// A Value stores integers in u_ (unsigned types) or i_ (signed types and bool), floats in f_,
// strings in s_ and array elements in arr_. The accessors convert between integer kinds
// only when the value is representable, so a model loader can read e.g. a block count
// stored as int32 or uint64 alike and still reject -1.
#include <fmt/format.h>

#include <cmath>
#include <limits>

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
    case TensorType::Q8_0: return "Q8_0";
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
  if (is_unsigned(type_)) return u_;
  if (is_signed(type_) || type_ == ValueType::Bool) {
    if (i_ < 0)
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("expected a non-negative integer, found {} ({})", i_, to_string(type_)));
    return std::uint64_t(i_);
  }
  wrong_type("integer", type_);
}

std::int64_t Value::as_int() const {
  if (is_signed(type_) || type_ == ValueType::Bool) return i_;
  if (is_unsigned(type_)) {
    if (u_ > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("integer {} ({}) does not fit in int64", u_, to_string(type_)));
    return std::int64_t(u_);
  }
  wrong_type("integer", type_);
}

double Value::as_float() const {
  if (is_float(type_)) return f_;
  if (is_unsigned(type_)) return double(u_);
  if (is_signed(type_)) return double(i_);
  wrong_type("numeric", type_);
}

bool Value::as_bool() const {
  if (type_ != ValueType::Bool) wrong_type("bool", type_);
  return i_ != 0;
}

const std::string& Value::as_string() const {
  if (type_ != ValueType::String) wrong_type("string", type_);
  return s_;
}

const std::vector<Value>& Value::as_array() const {
  if (type_ != ValueType::Array) wrong_type("array", type_);
  return arr_;
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
  r.u_ = v;
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
  r.i_ = v;
  return r;
}

Value Value::make_float(ValueType t, double v) {
  if (!is_float(t))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("make_float: {} is not a float type", to_string(t)));
  Value r;
  r.type_ = t;
  // A Float32 value holds exactly what the file will store.
  r.f_ = t == ValueType::Float32 ? double(float(v)) : v;
  return r;
}

Value Value::make_bool(bool v) {
  Value r;
  r.type_ = ValueType::Bool;
  r.i_ = v ? 1 : 0;
  return r;
}

Value Value::make_string(std::string v) {
  Value r;
  r.type_ = ValueType::String;
  r.s_ = std::move(v);
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
  Value r;
  r.type_ = ValueType::Array;
  r.array_type_ = elem;
  r.arr_ = std::move(v);
  return r;
}

}  // namespace vireo::gguf
