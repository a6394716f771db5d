// GGUF reader (format versions 2 and 3).
//
// A File is a validated, read-only view of a GGUF model: metadata key/values (every value
// type, nested arrays included), the tensor directory, and the tensor bytes, memory-mapped
// from disk (or held in memory for tests). Every count, offset and size read from the file
// is checked against the bytes that remain, with overflow-checked arithmetic, before anything
// is allocated: a crafted file cannot make the reader allocate much more than its own size,
// read out of bounds, or crash. Any violation throws vireo::Error(InvalidModel) naming the
// field and the offending value; unknown tensor types throw Error(Unsupported).
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "vireo/error.hpp"
#include "vireo/export.h"

VIREO_CXX_API_BEGIN
namespace vireo::gguf {

/// Metadata value types, numbered as in the GGUF spec.
enum class ValueType : std::uint32_t {
  UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6,
  Bool = 7, String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
};

/// Tensor element types vireo reads (numbered as ggml's `ggml_type`). Q5_0, Q5_1, the
/// K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (the matrices of Q2_K / Q3_K_* / Q4_K_* / Q5_K_* /
/// Q6_K files), IQ4_NL (what llama.cpp's K-quant mixes fall back to for rows that are not
/// a multiple of 256) and IQ4_XS (IQ4_NL's codebook in 256-element super-blocks with 6-bit
/// sub-block scales, 4.25 bits per weight) are read too. quantize() writes every type but
/// Q2_K and IQ4_XS. The CPU multiplies all but Q2_K with fused kernels (sub-blocks dequantized in registers) and Q2_K
/// through dequantized rows; the CUDA backend converts them all at load.
enum class TensorType : std::uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, IQ4_NL = 20, IQ4_XS = 23, BF16 = 30
};

const char* to_string(ValueType t) noexcept;
const char* to_string(TensorType t) noexcept;
/// Elements per block (1 for float types, 32 for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/IQ4_NL, 256 for the
/// K-quants and IQ4_XS; 0 for a type vireo does not know).
constexpr std::size_t block_elements(TensorType t) noexcept {
  switch (t) {
    case TensorType::F32:
    case TensorType::F16:
    case TensorType::BF16: return 1;
    case TensorType::Q4_0:
    case TensorType::Q4_1:
    case TensorType::Q5_0:
    case TensorType::Q5_1:
    case TensorType::Q8_0:
    case TensorType::IQ4_NL: return 32;
    case TensorType::Q2_K:
    case TensorType::Q3_K:
    case TensorType::Q4_K:
    case TensorType::Q5_K:
    case TensorType::Q6_K:
    case TensorType::IQ4_XS: return 256;
  }
  return 0;
}

/// Bytes per block (0 for a type vireo does not know).
constexpr std::size_t block_bytes(TensorType t) noexcept {
  switch (t) {
    case TensorType::F32: return 4;
    case TensorType::F16:
    case TensorType::BF16: return 2;
    case TensorType::Q4_0: return 18;
    case TensorType::Q4_1: return 20;
    case TensorType::Q5_0: return 22;
    case TensorType::Q5_1: return 24;
    case TensorType::Q8_0: return 34;
    case TensorType::IQ4_NL: return 18;
    case TensorType::Q2_K: return 84;
    case TensorType::Q3_K: return 110;
    case TensorType::Q4_K: return 144;
    case TensorType::Q5_K: return 176;
    case TensorType::Q6_K: return 210;
    case TensorType::IQ4_XS: return 136;
  }
  return 0;
}

/// Bytes of `n` elements (n must be a multiple of block_elements); throws on overflow.
std::uint64_t row_bytes(TensorType t, std::uint64_t n);

/// Dequantize `n` elements (a multiple of block_elements(t)) of type `t` from `src` to fp32.
void dequantize(TensorType t, const void* src, float* dst, std::size_t n);
/// Quantize fp32 to `t` (ggml's reference quantizers: round to nearest, the K-quants' and
/// IQ4_NL's scale searches); used by vireo-quantize, random models and tests. `n` must be a
/// multiple of block_elements(t); dst holds row_bytes(t, n) bytes. Q2_K and IQ4_XS throw
/// Unsupported.
void quantize(TensorType t, const float* src, void* dst, std::size_t n);

/// One metadata value. Arrays of numbers or bools (UInt8..Float64, Bool) keep their elements
/// packed as the little-endian bytes the file stores (so reading an N-byte array allocates
/// N bytes); arrays of strings and arrays of arrays keep one Value per element.
class Value {
 public:
  ValueType type() const noexcept { return type_; }
  /// Element type of an array value (only meaningful when type() == Array).
  ValueType array_type() const noexcept { return array_type_; }

  /// Integer/bool values as unsigned; throws InvalidModel for negatives or non-integers.
  std::uint64_t as_uint() const;
  /// Any integer or bool value as signed; throws InvalidModel on overflow or non-integers.
  std::int64_t as_int() const;
  /// Any numeric value as double.
  double as_float() const;
  bool as_bool() const;
  const std::string& as_string() const;

  /// Number of elements of an array value (any element type); throws InvalidModel otherwise.
  std::size_t array_size() const;
  /// Element `i` of an array value, by value (any element type). Throws InvalidModel naming
  /// `i` and the size when out of range, or when this is not an array.
  Value at(std::size_t i) const;
  /// All elements of an integer or bool array as int64. Throws InvalidModel naming the
  /// element type for other arrays, and naming the index for a uint64 above INT64_MAX.
  std::vector<std::int64_t> as_int_array() const;
  /// All elements of an integer or float array as double; throws InvalidModel naming the
  /// element type for other arrays (bool, string, array).
  std::vector<double> as_float_array() const;
  /// The elements of an array of strings or of arrays. Throws InvalidModel when this is not
  /// an array, and InvalidArgument for a packed numeric/bool array (use at(),
  /// as_int_array() or as_float_array() there).
  const std::vector<Value>& as_array() const;

  // Construction (used by the reader and by tests that write GGUF files).
  static Value make_uint(ValueType t, std::uint64_t v);
  static Value make_int(ValueType t, std::int64_t v);
  static Value make_float(ValueType t, double v);
  static Value make_bool(bool v);
  static Value make_string(std::string v);
  /// Every element must have type `elem` (InvalidArgument otherwise); numeric and bool
  /// elements are packed.
  static Value make_array(ValueType elem, std::vector<Value> v);

 private:
  friend struct ValueAccess;  // the reader and writer build/read packed arrays directly
  ValueType type_ = ValueType::UInt8;
  ValueType array_type_ = ValueType::UInt8;
  /// Scalars: integer bits (signed values and bool two's complement) or a double's bits.
  std::uint64_t bits_ = 0;
  /// String: the string; Array of String/Array: the elements; other arrays: packed
  /// little-endian bytes, array_size() * element size of them.
  std::variant<std::monostate, std::string, std::vector<Value>, std::vector<std::byte>> data_;
};

struct TensorInfo {
  std::string name;
  TensorType type = TensorType::F32;
  /// Dimensions, fastest-varying first (GGUF order): a [rows=out, cols=in] weight matrix
  /// has shape {in, out}.
  std::vector<std::uint64_t> shape;
  std::uint64_t n_elements = 0;
  std::uint64_t offset = 0;      ///< offset of the data relative to the data section
  std::uint64_t size_bytes = 0;  ///< exact bytes of the data
  const std::byte* data = nullptr;  ///< points into the mapped file
};

class File {
 public:
  /// Memory-map and validate a GGUF file. Throws Io / InvalidModel / Unsupported.
  static File open(const std::filesystem::path& path);
  /// Validate a GGUF image held in memory (the File keeps the bytes alive).
  static File from_bytes(std::vector<std::byte> bytes);

  File(File&&) noexcept;
  File& operator=(File&&) noexcept;
  ~File();

  std::uint32_t version() const noexcept;
  std::uint64_t alignment() const noexcept;  ///< general.alignment, default 32
  /// Metadata in file order.
  const std::vector<std::pair<std::string, Value>>& metadata() const noexcept;
  /// nullptr when absent.
  const Value* find(std::string_view key) const noexcept;
  /// Throws InvalidModel naming the key when absent.
  const Value& get(std::string_view key) const;
  const std::vector<TensorInfo>& tensors() const noexcept;
  const TensorInfo* find_tensor(std::string_view name) const noexcept;
  /// Throws InvalidModel naming the tensor when absent.
  const TensorInfo& tensor(std::string_view name) const;
  /// Size of the whole file image in bytes.
  std::uint64_t file_size() const noexcept;

 private:
  struct Impl;
  explicit File(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Writes GGUF v3 images; used by tests and by tools that build small models in code.
class Writer {
 public:
  void set(std::string key, Value v);
  /// `data` holds row_bytes(type, n_elements) bytes; shape is fastest-first.
  void add_tensor(std::string name, TensorType type, std::vector<std::uint64_t> shape,
                  std::span<const std::byte> data);
  std::vector<std::byte> bytes(std::uint32_t version = 3, std::uint64_t alignment = 32) const;
  void write(const std::filesystem::path& path) const;

 private:
  std::vector<std::pair<std::string, Value>> kv_;
  struct T {
    std::string name;
    TensorType type;
    std::vector<std::uint64_t> shape;
    std::vector<std::byte> data;
  };
  std::vector<T> tensors_;
};

}  // namespace vireo::gguf
VIREO_CXX_API_END
