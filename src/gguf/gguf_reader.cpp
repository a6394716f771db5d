// gguf::File: memory-maps a GGUF v2/v3 file and validates all of it before handing it out.
//
// Layout (little-endian): "GGUF" magic, u32 version, u64 tensor_count, u64 kv_count, then
// kv_count pairs {string key, u32 value_type, value}, then tensor_count records {string name,
// u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset}, padding to general.alignment
// (default 32), and the data section; each tensor's offset is relative to that section.
// Strings are {u64 length, bytes}; arrays are {u32 element_type, u64 count, elements}.
//
// The parser is a bounds-checked cursor. Every length or count read from the file is
// checked against the bytes that remain *before* anything is allocated (a count of N
// elements needs at least N times the smallest encoding of one element), arithmetic on file
// values is overflow-checked, and nested arrays are limited to MAX_DEPTH levels, so a small
// crafted file can neither crash the reader nor make it allocate much more than its own
// size. Arrays of numbers/bools are copied out as their packed bytes (one allocation the
// size of the array's bytes); only arrays of strings and arrays of arrays hold one Value
// (56 bytes) per element, and each such element costs at least 8 (string) or 12 (array)
// bytes of file, so the worst case is about 7x the file size. Tensor records
// are checked for rank, non-zero dimensions, element-count overflow, known type, block
// divisibility of ne[0], alignment, bounds within the data section, unique names and no
// overlap. The file is mapped by platform::FileMap (src/platform/); on POSIX a mapped file that
// another process truncates afterwards can still fault (SIGBUS): mmap gives no protection
// against that.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_map>

#include "gguf/value_access.hpp"
#include "platform/file_map.hpp"
#include "platform/path.hpp"
#include "vireo/gguf.hpp"

namespace vireo::gguf {

namespace {

constexpr std::uint32_t MAX_DEPTH = 8;  // nesting of arrays inside arrays
constexpr std::uint64_t DEFAULT_ALIGNMENT = 32;
constexpr std::uint32_t MAX_DIMS = 4;

bool known_value_type(std::uint32_t t) { return t <= std::uint32_t(ValueType::Float64); }

bool known_tensor_type(std::uint32_t t) { return block_elements(TensorType(t)) != 0; }

/// " (NAME)" for a ggml tensor type vireo does not read (numbered as gguf-py's
/// GGMLQuantizationType), "" for an id ggml does not define either: the refusal then names
/// what the file holds.
std::string unread_type_name(std::uint32_t t) {
  const char* name = nullptr;
  switch (t) {
    case 9: name = "Q8_1"; break;
    case 15: name = "Q8_K"; break;
    case 16: name = "IQ2_XXS"; break;
    case 17: name = "IQ2_XS"; break;
    case 18: name = "IQ3_XXS"; break;
    case 19: name = "IQ1_S"; break;
    case 21: name = "IQ3_S"; break;
    case 22: name = "IQ2_S"; break;
    case 24: name = "I8"; break;
    case 25: name = "I16"; break;
    case 26: name = "I32"; break;
    case 27: name = "I64"; break;
    case 28: name = "F64"; break;
    case 29: name = "IQ1_M"; break;
    case 34: name = "TQ1_0"; break;
    case 35: name = "TQ2_0"; break;
    case 39: name = "MXFP4"; break;
    case 40: name = "NVFP4"; break;
    case 41: name = "Q1_0"; break;
    default: break;
  }
  return name ? fmt::format(" ({})", name) : std::string();
}

/// Smallest number of bytes one value of type `t` occupies in the file: a scalar's size,
/// the u64 length of an empty string, or the u32 type + u64 count of an empty array.
std::uint64_t min_encoded_size(ValueType t) {
  if (t == ValueType::String) return 8;
  if (t == ValueType::Array) return 12;
  return std::max<std::uint64_t>(1, ValueAccess::element_size(t));
}

/// Bounds-checked little-endian cursor over the file image; errors name the source.
class Cursor {
 public:
  Cursor(const std::uint8_t* data, std::uint64_t size, const std::string& source)
      : p_(data), size_(size), source_(source) {}

  std::uint64_t pos() const { return pos_; }
  std::uint64_t remaining() const { return size_ - pos_; }

  template <class... A>
  [[noreturn]] void fail(ErrorCode code, fmt::format_string<A...> f, A&&... a) const {
    throw Error(code, fmt::format("{}: {}", source_, fmt::format(f, std::forward<A>(a)...)));
  }

  void need(std::uint64_t n, std::string_view what) const {
    if (n > remaining())
      fail(ErrorCode::InvalidModel,
           "truncated file: {} at offset {} needs {} bytes but only {} remain (file size {})",
           what, pos_, n, remaining(), size_);
  }

  template <class T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  /// The next `n` bytes (checked), e.g. a packed array's elements.
  std::span<const std::byte> read_bytes(std::uint64_t n, std::string_view what) {
    need(n, what);
    const auto* b = reinterpret_cast<const std::byte*>(p_ + pos_);
    pos_ += n;
    return {b, std::size_t(n)};
  }

  std::string read_string(std::string_view what) {
    const auto len = read<std::uint64_t>(what);
    if (len > remaining())
      fail(ErrorCode::InvalidModel,
           "{}: string length {} at offset {} exceeds the {} bytes that remain", what, len,
           pos_ - 8, remaining());
    std::string s(reinterpret_cast<const char*>(p_ + pos_), std::size_t(len));
    pos_ += len;
    return s;
  }

 private:
  const std::uint8_t* p_;
  std::uint64_t size_;
  std::uint64_t pos_ = 0;
  const std::string& source_;
};

// `what` names the value in messages, e.g. "metadata key 'general.name'".
Value read_value(Cursor& c, ValueType t, std::uint32_t depth, const std::string& what) {
  switch (t) {
    case ValueType::UInt8: return Value::make_uint(t, c.read<std::uint8_t>(what));
    case ValueType::UInt16: return Value::make_uint(t, c.read<std::uint16_t>(what));
    case ValueType::UInt32: return Value::make_uint(t, c.read<std::uint32_t>(what));
    case ValueType::UInt64: return Value::make_uint(t, c.read<std::uint64_t>(what));
    case ValueType::Int8: return Value::make_int(t, c.read<std::int8_t>(what));
    case ValueType::Int16: return Value::make_int(t, c.read<std::int16_t>(what));
    case ValueType::Int32: return Value::make_int(t, c.read<std::int32_t>(what));
    case ValueType::Int64: return Value::make_int(t, c.read<std::int64_t>(what));
    case ValueType::Float32: return Value::make_float(t, c.read<float>(what));
    case ValueType::Float64: return Value::make_float(t, c.read<double>(what));
    case ValueType::Bool: {
      const auto b = c.read<std::uint8_t>(what);
      if (b > 1)
        c.fail(ErrorCode::InvalidModel, "{}: bool byte {} at offset {} is not 0 or 1",
               what, b, c.pos() - 1);
      return Value::make_bool(b != 0);
    }
    case ValueType::String: return Value::make_string(c.read_string(what));
    case ValueType::Array: {
      if (depth >= MAX_DEPTH)
        c.fail(ErrorCode::InvalidModel,
               "{}: arrays nested deeper than {} levels at offset {}", what,
               MAX_DEPTH, c.pos());
      const auto et = c.read<std::uint32_t>(what);
      if (!known_value_type(et))
        c.fail(ErrorCode::InvalidModel, "{}: unknown array element type {} at offset {}",
               what, et, c.pos() - 4);
      const auto count = c.read<std::uint64_t>(what);
      const ValueType elem = ValueType(et);
      const std::uint64_t min = min_encoded_size(elem);
      if (count > c.remaining() / min)
        c.fail(ErrorCode::InvalidModel,
               "{}: array of {} {} elements at offset {} needs at least {} bytes "
               "per element but only {} bytes remain",
               what, count, to_string(elem), c.pos() - 12, min, c.remaining());
      if (ValueAccess::packed_type(elem)) {
        // min == the element size here, so count * min fits in what remains (checked above).
        const auto in = c.read_bytes(count * min, what);
        std::vector<std::byte> bytes(in.begin(), in.end());
        if (elem == ValueType::Bool)
          for (std::size_t i = 0; i < bytes.size(); ++i)
            if (std::uint8_t(bytes[i]) > 1)
              c.fail(ErrorCode::InvalidModel, "{}: bool byte {} at offset {} is not 0 or 1",
                     what, std::uint8_t(bytes[i]), c.pos() - bytes.size() + i);
        return ValueAccess::packed(elem, std::move(bytes));
      }
      std::vector<Value> v;
      v.reserve(std::size_t(count));
      for (std::uint64_t i = 0; i < count; ++i) v.push_back(read_value(c, elem, depth + 1, what));
      return Value::make_array(elem, std::move(v));
    }
  }
  c.fail(ErrorCode::InvalidModel, "{}: unknown value type {}", what,
         std::uint32_t(t));
}

std::string shape_string(const std::vector<std::uint64_t>& shape) {
  return fmt::format("{{{}}}", fmt::join(shape, ", "));
}

}  // namespace

struct File::Impl {
  std::vector<std::byte> owned;  // from_bytes
  platform::FileMap map;         // open: the read-only mapping
  const std::uint8_t* base = nullptr;
  std::uint64_t size = 0;

  std::uint32_t version = 0;
  std::uint64_t alignment = DEFAULT_ALIGNMENT;
  std::vector<std::pair<std::string, Value>> kv;
  std::vector<TensorInfo> tensors;
  // Views into the strings above; both vectors are reserved up front and never grow later.
  std::unordered_map<std::string_view, std::size_t> kv_index, tensor_index;

  void parse(const std::string& source);
};

void File::Impl::parse(const std::string& source) {
  Cursor c(base, size, source);

  const auto magic = c.read<std::uint32_t>("magic");
  if (std::memcmp(base, "GGUF", 4) != 0)
    c.fail(ErrorCode::InvalidModel, "not a GGUF file: magic is 0x{:08x}, expected \"GGUF\"", magic);
  version = c.read<std::uint32_t>("version");
  if (version != 2 && version != 3) {
    if (version == 1)
      c.fail(ErrorCode::Unsupported, "GGUF version 1 is not supported (only versions 2 and 3)");
    if ((version & 0xFFFF) == 0 && version != 0)
      c.fail(ErrorCode::Unsupported,
             "GGUF version field 0x{:08x} looks byte-swapped: big-endian GGUF is not supported",
             version);
    c.fail(ErrorCode::Unsupported, "GGUF version {} is not supported (only versions 2 and 3)",
           version);
  }
  const auto tensor_count = c.read<std::uint64_t>("tensor count");
  const auto kv_count = c.read<std::uint64_t>("metadata kv count");

  // A kv pair needs at least a key (u64 length + 1 byte), a u32 type and a 1-byte value.
  constexpr std::uint64_t MIN_KV_BYTES = 8 + 1 + 4 + 1;
  if (kv_count > c.remaining() / MIN_KV_BYTES)
    c.fail(ErrorCode::InvalidModel,
           "metadata kv count {} needs at least {} bytes per pair but only {} bytes remain",
           kv_count, MIN_KV_BYTES, c.remaining());
  kv.reserve(std::size_t(kv_count));
  for (std::uint64_t i = 0; i < kv_count; ++i) {
    const std::uint64_t at = c.pos();
    std::string key = c.read_string(fmt::format("key of metadata pair {}", i));
    if (key.empty()) c.fail(ErrorCode::InvalidModel, "metadata pair {} at offset {} has an empty key", i, at);
    const auto type = c.read<std::uint32_t>(fmt::format("type of metadata key '{}'", key));
    if (!known_value_type(type))
      c.fail(ErrorCode::InvalidModel, "metadata key '{}': unknown value type {} at offset {}", key,
             type, c.pos() - 4);
    Value v = read_value(c, ValueType(type), 0, fmt::format("metadata key '{}'", key));
    if (kv_index.count(key))
      c.fail(ErrorCode::InvalidModel, "duplicate metadata key '{}' at offset {}", key, at);
    kv.emplace_back(std::move(key), std::move(v));
    kv_index.emplace(kv.back().first, kv.size() - 1);
  }

  if (auto it = kv_index.find("general.alignment"); it != kv_index.end()) {
    const Value& a = kv[it->second].second;
    if (a.type() != ValueType::UInt8 && a.type() != ValueType::UInt16 &&
        a.type() != ValueType::UInt32 && a.type() != ValueType::UInt64)
      c.fail(ErrorCode::InvalidModel, "general.alignment has type {}, expected an unsigned integer",
             to_string(a.type()));
    alignment = a.as_uint();
    if (alignment == 0 || (alignment & (alignment - 1)) != 0)
      c.fail(ErrorCode::InvalidModel, "general.alignment {} is not a nonzero power of two", alignment);
  }

  // A tensor record needs a name (u64 length + 1 byte), n_dims, one dim, a type and an offset.
  constexpr std::uint64_t MIN_TENSOR_BYTES = 8 + 1 + 4 + 8 + 4 + 8;
  if (tensor_count > c.remaining() / MIN_TENSOR_BYTES)
    c.fail(ErrorCode::InvalidModel,
           "tensor count {} needs at least {} bytes per tensor record but only {} bytes remain",
           tensor_count, MIN_TENSOR_BYTES, c.remaining());
  tensors.reserve(std::size_t(tensor_count));
  for (std::uint64_t i = 0; i < tensor_count; ++i) {
    const std::uint64_t at = c.pos();
    TensorInfo t;
    t.name = c.read_string(fmt::format("name of tensor {}", i));
    if (t.name.empty()) c.fail(ErrorCode::InvalidModel, "tensor {} at offset {} has an empty name", i, at);
    const std::string what = fmt::format("tensor '{}'", t.name);
    const auto n_dims = c.read<std::uint32_t>(what);
    if (n_dims == 0 || n_dims > MAX_DIMS)
      c.fail(ErrorCode::InvalidModel, "tensor '{}': n_dims {} is outside 1..{}", t.name, n_dims, MAX_DIMS);
    t.shape.resize(n_dims);
    std::uint64_t n = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      t.shape[d] = c.read<std::uint64_t>(what);
      if (t.shape[d] == 0)
        c.fail(ErrorCode::InvalidModel, "tensor '{}': dimension {} is 0", t.name, d);
      if (__builtin_mul_overflow(n, t.shape[d], &n) ||
          n > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
        c.fail(ErrorCode::InvalidModel, "tensor '{}': element count of shape {} overflows", t.name,
               shape_string(std::vector<std::uint64_t>(t.shape.begin(), t.shape.begin() + d + 1)));
    }
    t.n_elements = n;
    const auto type = c.read<std::uint32_t>(what);
    if (!known_tensor_type(type))
      c.fail(ErrorCode::Unsupported, "tensor '{}': tensor type {}{} is not supported", t.name, type,
             unread_type_name(type));
    t.type = TensorType(type);
    const std::uint64_t be = block_elements(t.type);
    if (t.shape[0] % be != 0)
      c.fail(ErrorCode::InvalidModel,
             "tensor '{}': ne[0] = {} is not a multiple of the {} block size {}", t.name,
             t.shape[0], to_string(t.type), be);
    // Rows are ne[0] elements; the product of row bytes and rows cannot exceed n_elements * 34/32.
    const std::uint64_t row = t.shape[0] / be * block_bytes(t.type);
    if (__builtin_mul_overflow(row, n / t.shape[0], &t.size_bytes))
      c.fail(ErrorCode::InvalidModel, "tensor '{}': byte size of shape {} overflows", t.name,
             shape_string(t.shape));
    t.offset = c.read<std::uint64_t>(what);
    if (t.offset % alignment != 0)
      c.fail(ErrorCode::InvalidModel, "tensor '{}': offset {} is not a multiple of the alignment {}",
             t.name, t.offset, alignment);
    if (tensor_index.count(t.name))
      c.fail(ErrorCode::InvalidModel, "duplicate tensor name '{}' at offset {}", t.name, at);
    tensors.push_back(std::move(t));
    tensor_index.emplace(tensors.back().name, tensors.size() - 1);
  }

  // The data section starts at the next multiple of the alignment.
  std::uint64_t data_start = 0;
  const std::uint64_t pad = (alignment - c.pos() % alignment) % alignment;
  if (__builtin_add_overflow(c.pos(), pad, &data_start) || data_start > size) {
    if (!tensors.empty())
      c.fail(ErrorCode::InvalidModel,
             "truncated file: data section would start at offset {} + {} padding, past the end of "
             "the {}-byte file",
             c.pos(), pad, size);
    data_start = size;  // no tensors: a file may end right after its metadata
  }
  const std::uint64_t data_size = size - data_start;
  for (TensorInfo& t : tensors) {
    std::uint64_t end = 0;
    if (__builtin_add_overflow(t.offset, t.size_bytes, &end) || end > data_size)
      c.fail(ErrorCode::InvalidModel,
             "tensor '{}': offset {} + size {} exceeds data section of {} bytes", t.name, t.offset,
             t.size_bytes, data_size);
    t.data = reinterpret_cast<const std::byte*>(base + data_start + t.offset);
  }

  // Tensors must not share bytes: sort by offset and compare neighbours.
  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(tensors.size());
  for (const TensorInfo& t : tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& a = *by_offset[i - 1];
    const TensorInfo& b = *by_offset[i];
    if (a.offset + a.size_bytes > b.offset)
      c.fail(ErrorCode::InvalidModel,
             "tensors '{}' (offset {}, size {}) and '{}' (offset {}) overlap", a.name, a.offset,
             a.size_bytes, b.name, b.offset);
  }
}

File::File(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
File::File(File&&) noexcept = default;
File& File::operator=(File&&) noexcept = default;
File::~File() = default;

File File::open(const std::filesystem::path& path) {
  auto impl = std::make_unique<Impl>();
  impl->map = platform::FileMap::open(path, "model");
  const std::string source = fmt::format("'{}'", platform::path_to_utf8(path));
  if (impl->map.size() == 0)
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: empty file, not a GGUF model", source));
  impl->base = impl->map.data();
  impl->size = impl->map.size();
  impl->parse(source);
  return File(std::move(impl));
}

File File::from_bytes(std::vector<std::byte> bytes) {
  auto impl = std::make_unique<Impl>();
  impl->owned = std::move(bytes);
  impl->base = reinterpret_cast<const std::uint8_t*>(impl->owned.data());
  impl->size = impl->owned.size();
  impl->parse("GGUF image");
  return File(std::move(impl));
}

std::uint32_t File::version() const noexcept { return impl_->version; }
std::uint64_t File::alignment() const noexcept { return impl_->alignment; }
std::uint64_t File::file_size() const noexcept { return impl_->size; }

const std::vector<std::pair<std::string, Value>>& File::metadata() const noexcept {
  return impl_->kv;
}

const Value* File::find(std::string_view key) const noexcept {
  auto it = impl_->kv_index.find(key);
  return it == impl_->kv_index.end() ? nullptr : &impl_->kv[it->second].second;
}

const Value& File::get(std::string_view key) const {
  if (const Value* v = find(key)) return *v;
  throw Error(ErrorCode::InvalidModel, fmt::format("metadata key '{}' is missing", key));
}

const std::vector<TensorInfo>& File::tensors() const noexcept { return impl_->tensors; }

const TensorInfo* File::find_tensor(std::string_view name) const noexcept {
  auto it = impl_->tensor_index.find(name);
  return it == impl_->tensor_index.end() ? nullptr : &impl_->tensors[it->second];
}

const TensorInfo& File::tensor(std::string_view name) const {
  if (const TensorInfo* t = find_tensor(name)) return *t;
  throw Error(ErrorCode::InvalidModel, fmt::format("tensor '{}' is missing", name));
}

}  // namespace vireo::gguf
