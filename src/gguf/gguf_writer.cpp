// gguf::Writer: builds GGUF v3 (or v2) images in memory, for tests and code-built models.
//
// The image is laid out as llama.cpp / gguf-py lay it out: header, metadata in insertion
// order, tensor records, zero padding to the alignment, then each tensor's bytes at an
// aligned offset followed by zero padding to the next multiple of the alignment. When
// `alignment` differs from GGUF's default of 32 and the caller did not set
// general.alignment, it is written as a uint32 key; a general.alignment the caller did set
// is written unchanged (tests use that to build inconsistent files).
#include <fmt/format.h>

#include <cstring>
#include <fstream>

#include "gguf/value_access.hpp"
#include "platform/path.hpp"
#include "vireo/gguf.hpp"

namespace vireo::gguf {

namespace {

class Out {
 public:
  explicit Out(std::vector<std::byte>& b) : b_(b) {}
  template <class T>
  void put(T v) {
    const std::size_t at = b_.size();
    b_.resize(at + sizeof(T));
    std::memcpy(b_.data() + at, &v, sizeof(T));
  }
  void put_bytes(const void* p, std::size_t n) {
    const std::size_t at = b_.size();
    b_.resize(at + n);
    if (n) std::memcpy(b_.data() + at, p, n);
  }
  void put_string(const std::string& s) {
    put<std::uint64_t>(s.size());
    put_bytes(s.data(), s.size());
  }
  void pad(std::uint64_t alignment) {
    while (b_.size() % alignment != 0) b_.push_back(std::byte{0});
  }

 private:
  std::vector<std::byte>& b_;
};

void put_value(Out& o, const Value& v) {
  switch (v.type()) {
    case ValueType::UInt8: o.put(std::uint8_t(v.as_uint())); return;
    case ValueType::UInt16: o.put(std::uint16_t(v.as_uint())); return;
    case ValueType::UInt32: o.put(std::uint32_t(v.as_uint())); return;
    case ValueType::UInt64: o.put(std::uint64_t(v.as_uint())); return;
    case ValueType::Int8: o.put(std::int8_t(v.as_int())); return;
    case ValueType::Int16: o.put(std::int16_t(v.as_int())); return;
    case ValueType::Int32: o.put(std::int32_t(v.as_int())); return;
    case ValueType::Int64: o.put(std::int64_t(v.as_int())); return;
    case ValueType::Float32: o.put(float(v.as_float())); return;
    case ValueType::Float64: o.put(double(v.as_float())); return;
    case ValueType::Bool: o.put(std::uint8_t(v.as_bool() ? 1 : 0)); return;
    case ValueType::String: o.put_string(v.as_string()); return;
    case ValueType::Array:
      o.put(std::uint32_t(v.array_type()));
      o.put(std::uint64_t(v.array_size()));
      if (ValueAccess::packed_type(v.array_type())) {
        // Packed elements are already the little-endian bytes the file stores.
        const auto bytes = ValueAccess::packed_bytes(v);
        o.put_bytes(bytes.data(), bytes.size());
      } else {
        for (const Value& e : v.as_array()) put_value(o, e);
      }
      return;
  }
}

}  // namespace

void Writer::set(std::string key, Value v) {
  for (auto& [k, old] : kv_)
    if (k == key) {
      old = std::move(v);
      return;
    }
  kv_.emplace_back(std::move(key), std::move(v));
}

void Writer::add_tensor(std::string name, TensorType type, std::vector<std::uint64_t> shape,
                        std::span<const std::byte> data) {
  if (name.empty()) throw Error(ErrorCode::InvalidArgument, "add_tensor: empty tensor name");
  for (const T& t : tensors_)
    if (t.name == name)
      throw Error(ErrorCode::InvalidArgument, fmt::format("add_tensor: duplicate tensor '{}'", name));
  if (block_elements(type) == 0)
    throw Error(ErrorCode::Unsupported,
                fmt::format("add_tensor '{}': unknown tensor type {}", name, std::uint32_t(type)));
  if (shape.empty() || shape.size() > 4)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("add_tensor '{}': {} dimensions, expected 1..4", name, shape.size()));
  std::uint64_t n = 1;
  for (std::uint64_t d : shape)
    if (d == 0 || __builtin_mul_overflow(n, d, &n))
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("add_tensor '{}': bad shape {{{}}}", name, fmt::join(shape, ", ")));
  if (shape[0] % block_elements(type) != 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("add_tensor '{}': ne[0] = {} is not a multiple of the {} block size {}",
                            name, shape[0], to_string(type), block_elements(type)));
  const std::uint64_t bytes = row_bytes(type, n);
  if (data.size() != bytes)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("add_tensor '{}': {} bytes of data, shape {{{}}} of {} needs {}", name,
                            data.size(), fmt::join(shape, ", "), to_string(type), bytes));
  tensors_.push_back(T{std::move(name), type, std::move(shape),
                       std::vector<std::byte>(data.begin(), data.end())});
}

std::vector<std::byte> Writer::bytes(std::uint32_t version, std::uint64_t alignment) const {
  if (version != 2 && version != 3)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("Writer: GGUF version {} cannot be written (only 2 and 3)", version));
  if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > 0xFFFFFFFFu)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("Writer: alignment {} is not a power of two that fits in uint32", alignment));
  bool has_alignment_key = false;
  for (const auto& kv : kv_) has_alignment_key |= kv.first == "general.alignment";
  const bool add_alignment_key = !has_alignment_key && alignment != 32;

  std::vector<std::byte> b;
  Out o(b);
  o.put_bytes("GGUF", 4);
  o.put(version);
  o.put(std::uint64_t(tensors_.size()));
  o.put(std::uint64_t(kv_.size() + (add_alignment_key ? 1 : 0)));
  for (const auto& [k, v] : kv_) {
    o.put_string(k);
    o.put(std::uint32_t(v.type()));
    put_value(o, v);
  }
  if (add_alignment_key) {
    o.put_string("general.alignment");
    o.put(std::uint32_t(ValueType::UInt32));
    o.put(std::uint32_t(alignment));
  }
  std::uint64_t offset = 0;
  for (const T& t : tensors_) {
    o.put_string(t.name);
    o.put(std::uint32_t(t.shape.size()));
    for (std::uint64_t d : t.shape) o.put(d);
    o.put(std::uint32_t(t.type));
    o.put(offset);
    offset += (t.data.size() + alignment - 1) / alignment * alignment;
  }
  o.pad(alignment);
  for (const T& t : tensors_) {
    o.put_bytes(t.data.data(), t.data.size());
    o.pad(alignment);
  }
  return b;
}

void Writer::write(const std::filesystem::path& path) const {
  const std::vector<std::byte> b = bytes();
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error(ErrorCode::Io, fmt::format("'{}': cannot open for writing", platform::path_to_utf8(path)));
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  f.close();
  if (!f) throw Error(ErrorCode::Io, fmt::format("'{}': write failed", platform::path_to_utf8(path)));
}

}  // namespace vireo::gguf
