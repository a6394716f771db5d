// Structured corruption of GGUF images: named mutation classes, each applied to many seeds.
//
// A seed is a random valid image written by the encoder below (independent of gguf::Writer):
// 1..6 metadata pairs of every value type (strings, arrays of numbers, of strings, of
// arrays), 0..4 tensors of F32 / F16 / Q8_0 / Q4_0, sometimes a general.alignment of 64.
// The encoder records where every field lies (header counts, key and string lengths, value
// and element types, array counts, bools, tensor name lengths, n_dims, dims, tensor types,
// offsets) and where each section starts. A mutation class rewrites one kind of field with
// one kind of value (zero, +-1, the largest u64, 2^63, 2^32, past the end of the file, an
// unknown type id, byte-swapped ...) or changes the structure (truncation inside a section,
// duplicate names, bad alignments, misaligned or overlapping tensors, reordering, flipped
// data bytes, trailing garbage, deep nesting). Each class says what must happen:
//   Refused  the reader throws vireo::Error (InvalidModel or Unsupported), with a message
//            naming the problem when the class gives one;
//   Parses   the image parses (e.g. reordered pairs, flipped tensor data, an extra byte at
//            the end) with the same metadata and tensors;
//   Either   either of the two; a parsed image must still satisfy the reader's promises
//            (tensors inside the image, no overlap, byte sizes from type and shape).
// Nothing else is acceptable: no other exception, no crash, no sanitizer report (the CI
// runs this file under ASan + UBSan too). Every class must apply to at least 20 seeds.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "vireo/error.hpp"
#include "vireo/gguf.hpp"

using namespace vireo;

namespace {

// ---- the seed images ------------------------------------------------------------------------

enum class F { TensorCount, KvCount, KeyLen, StrLen, ArrCount, NameLen, Dim, Offset,  // u64
               Version, ValueType, ElemType, NDims, TensorType,                       // u32
               Bool };                                                                // u8
constexpr int kU64Fields = 8, kU32Fields = 5;
const char* field_name(F f) {
  static const char* n[] = {"tensor_count", "kv_count", "key_length", "string_length", "array_count",
                            "tensor_name_length", "dim", "tensor_offset", "version", "value_type",
                            "array_element_type", "n_dims", "tensor_type", "bool"};
  return n[int(f)];
}

struct Field {
  F kind;
  std::size_t at;
};

struct Val {
  std::uint32_t type = 4;  // GGUF value type id
  std::uint64_t bits = 0;  // scalars
  std::string str;
  std::uint32_t elem = 0;  // arrays
  std::vector<Val> elems;
};

struct Tensor {
  std::string name;
  std::vector<std::uint64_t> dims;
  std::uint32_t type = 0;  // 0 F32, 1 F16, 8 Q8_0, 2 Q4_0
};

struct Desc {
  std::uint32_t version = 3;
  std::vector<std::pair<std::string, Val>> kv;
  std::vector<Tensor> tensors;
  std::uint64_t alignment = 32;  // written as general.alignment when not 32
};

struct Image {
  std::vector<std::uint8_t> b;
  std::vector<Field> fields;
  std::size_t kv_start = 0, records_start = 0, records_end = 0, data_start = 0;
  std::vector<std::uint64_t> tensor_offsets, tensor_sizes;
};

std::size_t scalar_size(std::uint32_t t) {
  switch (t) {
    case 0: case 1: case 7: return 1;
    case 2: case 3: return 2;
    case 4: case 5: case 6: return 4;
    default: return 8;  // 10, 11, 12
  }
}

std::uint64_t tensor_bytes(const Tensor& t) {
  std::uint64_t n = 1;
  for (auto d : t.dims) n *= d;
  switch (t.type) {
    case 0: return n * 4;
    case 1: return n * 2;
    case 8: return n / 32 * 34;
    default: return n / 32 * 18;  // Q4_0
  }
}

struct Enc {
  Image img;
  void put(const void* p, std::size_t n) {
    const auto* c = static_cast<const std::uint8_t*>(p);
    img.b.insert(img.b.end(), c, c + n);
  }
  void u32(std::uint32_t v, std::optional<F> f = std::nullopt) {
    if (f) img.fields.push_back({*f, img.b.size()});
    put(&v, 4);
  }
  void u64(std::uint64_t v, std::optional<F> f = std::nullopt) {
    if (f) img.fields.push_back({*f, img.b.size()});
    put(&v, 8);
  }
  void str(const std::string& s, F len_field) {
    u64(s.size(), len_field);
    put(s.data(), s.size());
  }
  void value(const Val& v) {
    if (v.type == 8) return str(v.str, F::StrLen);
    if (v.type == 9) {
      u32(v.elem, F::ElemType);
      u64(v.elems.size(), F::ArrCount);
      for (const Val& e : v.elems) value(e);
      return;
    }
    if (v.type == 7) img.fields.push_back({F::Bool, img.b.size()});
    put(&v.bits, scalar_size(v.type));
  }
};

Image encode(const Desc& d) {
  Enc e;
  e.put("GGUF", 4);
  e.u32(d.version, F::Version);
  e.u64(d.tensors.size(), F::TensorCount);
  const bool align_kv = d.alignment != 32;
  e.u64(d.kv.size() + (align_kv ? 1 : 0), F::KvCount);
  e.img.kv_start = e.img.b.size();
  auto pair = [&](const std::string& key, const Val& v) {
    e.str(key, F::KeyLen);
    e.u32(v.type, F::ValueType);
    e.value(v);
  };
  for (const auto& [k, v] : d.kv) pair(k, v);
  if (align_kv) pair("general.alignment", Val{4, d.alignment, {}, 0, {}});
  e.img.records_start = e.img.b.size();
  std::uint64_t off = 0;
  for (const Tensor& t : d.tensors) {
    e.str(t.name, F::NameLen);
    e.u32(std::uint32_t(t.dims.size()), F::NDims);
    for (auto x : t.dims) e.u64(x, F::Dim);
    e.u32(t.type, F::TensorType);
    e.u64(off, F::Offset);
    e.img.tensor_offsets.push_back(off);
    e.img.tensor_sizes.push_back(tensor_bytes(t));
    off += (tensor_bytes(t) + d.alignment - 1) / d.alignment * d.alignment;
  }
  e.img.records_end = e.img.b.size();
  while (e.img.b.size() % d.alignment) e.img.b.push_back(0);
  e.img.data_start = e.img.b.size();
  // The data section ends with the last tensor's last byte (no padding after it), so any
  // cut into the data section cuts a tensor.
  const std::uint64_t data = d.tensors.empty() ? 0 : e.img.tensor_offsets.back() + e.img.tensor_sizes.back();
  std::mt19937 rng(std::uint32_t(off * 7 + d.kv.size()));
  for (std::uint64_t i = 0; i < data; ++i) e.img.b.push_back(std::uint8_t(rng()));
  return e.img;
}

Val random_val(std::mt19937& rng, int depth) {
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  static const std::uint32_t scalars[] = {0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12};
  const int pick = uni(0, depth < 2 ? 15 : 12);
  Val v;
  if (pick <= 10) {
    v.type = scalars[pick];
    v.bits = (std::uint64_t(rng()) << 32) | rng();
    if (v.type == 7) v.bits &= 1;
    if (v.type == 6) v.bits = 0x3F800000;                 // 1.0f
    if (v.type == 12) v.bits = 0x3FF0000000000000ull;     // 1.0
  } else if (pick <= 12) {
    v.type = 8;
    for (int i = uni(0, 12); i > 0; --i) v.str += char(uni(32, 126));
  } else {
    v.type = 9;
    const int kind = uni(0, 2);
    v.elem = kind == 0 ? scalars[uni(0, 10)] : kind == 1 ? 8u : 9u;
    for (int i = uni(0, 5); i > 0; --i) {
      Val e;
      if (v.elem == 9) {
        e = random_val(rng, 99);  // a scalar or a string at the leaf ...
        Val arr;                  // ... wrapped in a one-level array
        arr.type = 9;
        arr.elem = e.type == 9 ? 8u : e.type;
        if (e.type != 9) arr.elems.push_back(e);
        e = arr;
      } else if (v.elem == 8) {
        e.type = 8;
        e.str = std::string(std::size_t(uni(0, 6)), char(uni(97, 122)));
      } else {
        e.type = v.elem;
        e.bits = v.elem == 7 ? std::uint64_t(uni(0, 1)) : std::uint64_t(rng());
        if (v.elem == 6) e.bits = 0x40000000;
        if (v.elem == 12) e.bits = 0x4000000000000000ull;
      }
      v.elems.push_back(e);
    }
  }
  return v;
}

Desc random_desc(std::uint32_t seed) {
  std::mt19937 rng(seed);
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Desc d;
  d.version = uni(0, 4) == 0 ? 2 : 3;
  d.alignment = uni(0, 4) == 0 ? 64 : 32;
  d.kv.push_back({"general.architecture", Val{8, 0, "llama", 0, {}}});
  for (int i = uni(0, 5); i > 0; --i) d.kv.push_back({"k" + std::to_string(i) + ".x", random_val(rng, 0)});
  // Most seeds also hold a bool and an array of strings, so the classes that rewrite those
  // fields apply to many seeds.
  if (uni(0, 9) < 7) d.kv.push_back({"general.flag", Val{7, std::uint64_t(uni(0, 1)), {}, 0, {}}});
  if (uni(0, 9) < 7) {
    Val toks{9, 0, {}, 8, {}};
    for (int i = uni(0, 4); i > 0; --i) toks.elems.push_back(Val{8, 0, std::string(std::size_t(i), 'a'), 0, {}});
    d.kv.push_back({"tokenizer.ggml.tokens", toks});
  }
  std::shuffle(d.kv.begin(), d.kv.end(), rng);
  static const std::uint32_t types[] = {0, 1, 8, 2};
  for (int i = uni(0, 4); i > 0; --i) {
    Tensor t;
    t.name = "blk." + std::to_string(i) + ".w";
    t.type = types[uni(0, 3)];
    t.dims.push_back(32 * std::uint64_t(uni(1, 3)));
    if (uni(0, 1)) t.dims.push_back(std::uint64_t(uni(1, 3)));
    d.tensors.push_back(t);
  }
  return d;
}

// ---- what must happen ------------------------------------------------------------------------

enum class Expect { Refused, Parses, Either };

struct Outcome {
  bool parsed = false;
  std::string error;
};

/// The reader's promises on an image it accepted.
void check_parsed(const gguf::File& f, std::size_t image_size) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> spans;
  for (const gguf::TensorInfo& t : f.tensors()) {
    REQUIRE(!t.name.empty());
    REQUIRE(t.size_bytes == gguf::row_bytes(t.type, t.shape[0]) * (t.n_elements / t.shape[0]));
    spans.emplace_back(t.offset, t.size_bytes);
  }
  std::sort(spans.begin(), spans.end());
  for (std::size_t i = 1; i < spans.size(); ++i) REQUIRE(spans[i - 1].first + spans[i - 1].second <= spans[i].first);
  for (const auto& [o, n] : spans) REQUIRE(o + n <= image_size);
  for (const auto& [k, v] : f.metadata()) REQUIRE(!k.empty());
}

Outcome parse(const std::vector<std::uint8_t>& b) {
  Outcome o;
  std::vector<std::byte> bytes(b.size());
  if (!b.empty()) std::memcpy(bytes.data(), b.data(), b.size());  // memcpy(nullptr, ...) is UB even for 0 bytes
  try {
    const gguf::File f = gguf::File::from_bytes(std::move(bytes));
    check_parsed(f, b.size());
    o.parsed = true;
  } catch (const Error& e) {
    o.error = e.what();
    INFO(o.error);
    REQUIRE((e.code() == ErrorCode::InvalidModel || e.code() == ErrorCode::Unsupported));
    REQUIRE(o.error.find("GGUF image: ") != std::string::npos);
  }
  return o;
}

/// A mutation: returns the corrupted image, or nullopt when it does not apply to this seed.
using Mutate = std::function<std::optional<std::vector<std::uint8_t>>(const Desc&, const Image&, std::mt19937&)>;

struct Class {
  std::string name;
  Expect expect;
  Mutate mutate;
  std::string needle;  // Refused: a part of the message (optional)
};

void set_u64(std::vector<std::uint8_t>& b, std::size_t at, std::uint64_t v) { std::memcpy(b.data() + at, &v, 8); }
void set_u32(std::vector<std::uint8_t>& b, std::size_t at, std::uint32_t v) { std::memcpy(b.data() + at, &v, 4); }
std::uint64_t get_u64(const std::vector<std::uint8_t>& b, std::size_t at) {
  std::uint64_t v;
  std::memcpy(&v, b.data() + at, 8);
  return v;
}
std::uint32_t get_u32(const std::vector<std::uint8_t>& b, std::size_t at) {
  std::uint32_t v;
  std::memcpy(&v, b.data() + at, 4);
  return v;
}

/// One field of `kind`, picked at random (nullopt when the seed has none).
std::optional<Field> pick(const Image& img, F kind, std::mt19937& rng) {
  std::vector<Field> c;
  for (const Field& f : img.fields)
    if (f.kind == kind) c.push_back(f);
  if (c.empty()) return std::nullopt;
  return c[std::uniform_int_distribution<std::size_t>(0, c.size() - 1)(rng)];
}

/// Re-encodes a changed description.
Mutate with_desc(std::function<bool(Desc&, std::mt19937&)> change) {
  return [change](const Desc& d, const Image&, std::mt19937& rng) -> std::optional<std::vector<std::uint8_t>> {
    Desc c = d;
    if (!change(c, rng)) return std::nullopt;
    return encode(c).b;
  };
}

std::vector<Class> classes() {
  std::vector<Class> out;
  // u64 fields x values. Values no file of this size can satisfy must be refused.
  struct U64Kind {
    const char* name;
    std::function<std::uint64_t(std::uint64_t old, std::size_t size)> value;
    bool impossible;
  };
  const U64Kind u64_kinds[] = {
      {"zero", [](std::uint64_t, std::size_t) { return std::uint64_t(0); }, false},
      {"plus_one", [](std::uint64_t v, std::size_t) { return v + 1; }, false},
      {"minus_one", [](std::uint64_t v, std::size_t) { return v - 1; }, false},
      {"max", [](std::uint64_t, std::size_t) { return ~std::uint64_t(0); }, true},
      {"top_bit", [](std::uint64_t, std::size_t) { return std::uint64_t(1) << 63; }, true},
      {"two_pow_32", [](std::uint64_t, std::size_t) { return std::uint64_t(1) << 32; }, true},
      {"past_end", [](std::uint64_t, std::size_t n) { return std::uint64_t(n) * 64 + 64; }, true},
      {"times_256", [](std::uint64_t v, std::size_t) { return v * 256 + 256; }, false},
  };
  for (int fi = 0; fi < kU64Fields; ++fi)
    for (const U64Kind& k : u64_kinds) {
      const F field = F(fi);
      Expect e = k.impossible ? Expect::Refused : Expect::Either;
      std::string needle;
      if (std::string(k.name) == "zero") {
        if (field == F::KeyLen) e = Expect::Refused, needle = "empty key";
        if (field == F::NameLen) e = Expect::Refused, needle = "empty name";
        if (field == F::Dim) e = Expect::Refused, needle = "is 0";
      }
      const auto value = k.value;
      out.push_back({std::string(field_name(field)) + "=" + k.name, e,
                     [field, value](const Desc&, const Image& img, std::mt19937& rng) -> std::optional<std::vector<std::uint8_t>> {
                       const auto f = pick(img, field, rng);
                       if (!f) return std::nullopt;
                       auto b = img.b;
                       const std::uint64_t nv = value(get_u64(b, f->at), b.size());
                       if (nv == get_u64(b, f->at)) return std::nullopt;
                       set_u64(b, f->at, nv);
                       return b;
                     },
                     needle});
    }
  // u32 fields x values.
  struct U32Kind {
    const char* name;
    std::function<std::uint32_t(F, std::uint32_t)> value;
  };
  const U32Kind u32_kinds[] = {
      {"zero", [](F, std::uint32_t) { return 0u; }},
      {"max", [](F, std::uint32_t) { return ~0u; }},
      {"plus_one", [](F, std::uint32_t v) { return v + 1; }},
      {"unknown", [](F f, std::uint32_t) { return f == F::Version ? 4u : f == F::NDims ? 5u : f == F::TensorType ? 42u : 13u; }},
      {"byte_swapped", [](F, std::uint32_t v) { return __builtin_bswap32(v); }},
  };
  for (int fi = kU64Fields; fi < kU64Fields + kU32Fields; ++fi)
    for (const U32Kind& k : u32_kinds) {
      const F field = F(fi);
      const std::string kn = k.name;
      Expect e = Expect::Either;
      std::string needle;
      if (kn == "max" || kn == "unknown" || kn == "byte_swapped") e = Expect::Refused;
      if (field == F::Version && kn != "plus_one")  // plus_one turns 2 into 3, which is valid
        e = Expect::Refused, needle = kn == "byte_swapped" ? "byte-swapped" : "not supported";
      if (field == F::NDims && kn == "zero") e = Expect::Refused, needle = "n_dims 0";
      if ((field == F::ValueType || field == F::ElemType) && kn == "unknown") needle = "unknown";
      if (field == F::TensorType && kn == "unknown") needle = "tensor type 42";
      const auto value = k.value;
      out.push_back({std::string(field_name(field)) + "=" + kn, e,
                     [field, value](const Desc&, const Image& img, std::mt19937& rng) -> std::optional<std::vector<std::uint8_t>> {
                       const auto f = pick(img, field, rng);
                       if (!f) return std::nullopt;
                       auto b = img.b;
                       const std::uint32_t nv = value(field, get_u32(b, f->at));
                       if (nv == get_u32(b, f->at)) return std::nullopt;
                       set_u32(b, f->at, nv);
                       return b;
                     },
                     needle});
    }
  // bools.
  for (std::uint8_t v : {2, 0xFF}) {
    out.push_back({"bool=" + std::to_string(v), Expect::Refused,
                   [v](const Desc&, const Image& img, std::mt19937& rng) -> std::optional<std::vector<std::uint8_t>> {
                     const auto f = pick(img, F::Bool, rng);
                     if (!f) return std::nullopt;
                     auto b = img.b;
                     b[f->at] = v;
                     return b;
                   },
                   "not 0 or 1"});
  }
  // Truncation inside each section.
  struct Cut {
    const char* name;
    std::function<std::pair<std::size_t, std::size_t>(const Image&)> range;  // [lo, hi) of the cut point
  };
  const Cut cuts[] = {
      {"truncated_in_header", [](const Image& i) { return std::pair<std::size_t, std::size_t>{0, i.kv_start}; }},
      {"truncated_in_metadata", [](const Image& i) { return std::pair<std::size_t, std::size_t>{i.kv_start, i.records_start}; }},
      {"truncated_in_tensor_records", [](const Image& i) { return std::pair<std::size_t, std::size_t>{i.records_start, i.records_end}; }},
      {"truncated_in_data", [](const Image& i) { return std::pair<std::size_t, std::size_t>{i.data_start, i.b.size()}; }},
      {"truncated_by_one_byte", [](const Image& i) { return std::pair<std::size_t, std::size_t>{i.b.size() - 1, i.b.size()}; }},
  };
  for (const Cut& c : cuts) {
    const auto range = c.range;
    const bool last = std::string(c.name) == "truncated_by_one_byte";
    out.push_back({c.name, Expect::Refused,
                   [range, last](const Desc& d, const Image& img, std::mt19937& rng) -> std::optional<std::vector<std::uint8_t>> {
                     const auto [lo, hi] = range(img);
                     // Without tensors a file may end right after its metadata.
                     if (hi <= lo || (last && d.tensors.empty())) return std::nullopt;
                     auto b = img.b;
                     b.resize(std::uniform_int_distribution<std::size_t>(lo, hi - 1)(rng));
                     return b;
                   }});
  }
  // Structure.
  out.push_back({"duplicate_metadata_key", Expect::Refused, with_desc([](Desc& d, std::mt19937&) {
                   if (d.kv.size() < 2) return false;
                   d.kv[1].first = d.kv[0].first;
                   return true;
                 }),
                 "duplicate metadata key"});
  out.push_back({"duplicate_tensor_name", Expect::Refused, with_desc([](Desc& d, std::mt19937&) {
                   if (d.tensors.size() < 2) return false;
                   d.tensors[1].name = d.tensors[0].name;
                   return true;
                 }),
                 "duplicate tensor name"});
  for (std::uint64_t a : {std::uint64_t(0), std::uint64_t(3), std::uint64_t(48), std::uint64_t(1) << 40}) {
    out.push_back({"alignment=" + std::to_string(a), Expect::Refused, with_desc([a](Desc& d, std::mt19937&) {
                     // 2^40 is a valid alignment: refused only because data would start past the end.
                     if (a > 0xFFFFFFFFu && d.tensors.empty()) return false;
                     d.alignment = 32;
                     d.kv.push_back({"general.alignment", Val{4, a & 0xFFFFFFFFu, {}, 0, {}}});
                     if (a > 0xFFFFFFFFu) d.kv.back().second = Val{10, a, {}, 0, {}};
                     return true;
                   }),
                   a == 0 || a == 3 || a == 48 ? "power of two" : ""});
  }
  out.push_back({"alignment_as_string", Expect::Refused, with_desc([](Desc& d, std::mt19937&) {
                   d.alignment = 32;
                   d.kv.push_back({"general.alignment", Val{8, 0, "32", 0, {}}});
                   return true;
                 }),
                 "general.alignment"});
  out.push_back({"alignment_as_float", Expect::Refused, with_desc([](Desc& d, std::mt19937&) {
                   d.alignment = 32;
                   d.kv.push_back({"general.alignment", Val{6, 0x42000000, {}, 0, {}}});
                   return true;
                 }),
                 "general.alignment"});
  out.push_back({"alignment_64_reencoded", Expect::Parses, with_desc([](Desc& d, std::mt19937&) {
                   if (d.alignment == 64) return false;
                   d.alignment = 64;
                   return true;
                 })});
  out.push_back({"version_2_reencoded", Expect::Parses, with_desc([](Desc& d, std::mt19937&) {
                   if (d.version == 2) return false;
                   d.version = 2;
                   return true;
                 })});
  out.push_back({"tensor_offset_misaligned", Expect::Refused,
                 [](const Desc& d, const Image& img, std::mt19937& rng) -> std::optional<std::vector<std::uint8_t>> {
                   const auto f = pick(img, F::Offset, rng);
                   if (!f) return std::nullopt;
                   auto b = img.b;
                   set_u64(b, f->at, get_u64(b, f->at) + d.alignment / 2);
                   return b;
                 },
                 "alignment"});
  out.push_back({"tensors_overlap", Expect::Refused,
                 [](const Desc& d, const Image& img, std::mt19937&) -> std::optional<std::vector<std::uint8_t>> {
                   if (d.tensors.size() < 2) return std::nullopt;
                   std::vector<Field> offs;
                   for (const Field& f : img.fields)
                     if (f.kind == F::Offset) offs.push_back(f);
                   auto b = img.b;
                   set_u64(b, offs[1].at, get_u64(b, offs[0].at));
                   return b;
                 },
                 "overlap"});
  out.push_back({"tensor_past_data_end", Expect::Refused,
                 [](const Desc& d, const Image& img, std::mt19937&) -> std::optional<std::vector<std::uint8_t>> {
                   if (d.tensors.empty()) return std::nullopt;
                   std::vector<Field> offs;
                   for (const Field& f : img.fields)
                     if (f.kind == F::Offset) offs.push_back(f);
                   auto b = img.b;
                   const std::uint64_t data = b.size() - img.data_start;
                   set_u64(b, offs.back().at, (data + d.alignment) / d.alignment * d.alignment);
                   return b;
                 },
                 "exceeds data section"});
  out.push_back({"ne0_not_a_block_multiple", Expect::Refused, with_desc([](Desc& d, std::mt19937&) {
                   for (Tensor& t : d.tensors)
                     if (t.type == 8 || t.type == 2) {
                       t.dims[0] += 1;
                       return true;
                     }
                   return false;
                 }),
                 "not a multiple"});
  for (std::uint32_t t : {16u, 9u, 39u}) {  // IQ2_XXS, Q8_1, MXFP4: ggml types vireo does not read
    out.push_back({"unsupported_tensor_type_" + std::to_string(t), Expect::Refused,
                   [t](const Desc&, const Image& img, std::mt19937& rng) -> std::optional<std::vector<std::uint8_t>> {
                     const auto f = pick(img, F::TensorType, rng);
                     if (!f) return std::nullopt;
                     auto b = img.b;
                     set_u32(b, f->at, t);
                     return b;
                   },
                   "is not supported"});
  }
  out.push_back({"metadata_reordered", Expect::Parses, with_desc([](Desc& d, std::mt19937& rng) {
                   if (d.kv.size() < 2) return false;
                   std::shuffle(d.kv.begin(), d.kv.end(), rng);
                   return true;
                 })});
  out.push_back({"tensors_reordered", Expect::Parses, with_desc([](Desc& d, std::mt19937& rng) {
                   if (d.tensors.size() < 2) return false;
                   std::shuffle(d.tensors.begin(), d.tensors.end(), rng);
                   return true;
                 })});
  out.push_back({"data_bytes_flipped", Expect::Parses,
                 [](const Desc&, const Image& img, std::mt19937& rng) -> std::optional<std::vector<std::uint8_t>> {
                   if (img.data_start >= img.b.size()) return std::nullopt;
                   auto b = img.b;
                   for (int i = 0; i < 16; ++i)
                     b[std::uniform_int_distribution<std::size_t>(img.data_start, b.size() - 1)(rng)] ^= 0xFF;
                   return b;
                 }});
  out.push_back({"trailing_garbage", Expect::Parses,
                 [](const Desc&, const Image& img, std::mt19937& rng) -> std::optional<std::vector<std::uint8_t>> {
                   auto b = img.b;
                   for (int i = std::uniform_int_distribution<int>(1, 100)(rng); i > 0; --i) b.push_back(std::uint8_t(rng()));
                   return b;
                 }});
  out.push_back({"string_bytes_not_utf8", Expect::Parses,
                 [](const Desc&, const Image& img, std::mt19937& rng) -> std::optional<std::vector<std::uint8_t>> {
                   // The first byte of a key becomes 0xFF (keys stay distinct: they differ later).
                   const auto f = pick(img, F::KeyLen, rng);
                   if (!f || get_u64(img.b, f->at) == 0) return std::nullopt;
                   auto b = img.b;
                   b[f->at + 8] = 0xFF;
                   return b;
                 }});
  out.push_back({"arrays_nested_64_deep", Expect::Refused, with_desc([](Desc& d, std::mt19937&) {
                   Val v{9, 0, {}, 4, {}};
                   for (int i = 0; i < 63; ++i) v = Val{9, 0, {}, 9, {v}};
                   d.kv.push_back({"deep", v});
                   return true;
                 }),
                 "nested deeper"});
  out.push_back({"byte_inserted_in_metadata", Expect::Either,
                 [](const Desc&, const Image& img, std::mt19937& rng) -> std::optional<std::vector<std::uint8_t>> {
                   auto b = img.b;
                   b.insert(b.begin() + std::ptrdiff_t(std::uniform_int_distribution<std::size_t>(img.kv_start, img.records_end)(rng)),
                            std::uint8_t(rng()));
                   return b;
                 }});
  out.push_back({"byte_deleted_in_metadata", Expect::Either,
                 [](const Desc&, const Image& img, std::mt19937& rng) -> std::optional<std::vector<std::uint8_t>> {
                   if (img.records_end <= img.kv_start) return std::nullopt;
                   auto b = img.b;
                   b.erase(b.begin() + std::ptrdiff_t(std::uniform_int_distribution<std::size_t>(img.kv_start, img.records_end - 1)(rng)));
                   return b;
                 }});
  out.push_back({"header_bytes_flipped", Expect::Either,
                 [](const Desc&, const Image& img, std::mt19937& rng) -> std::optional<std::vector<std::uint8_t>> {
                   auto b = img.b;
                   for (int i = std::uniform_int_distribution<int>(1, 8)(rng); i > 0; --i)
                     b[std::uniform_int_distribution<std::size_t>(4, img.records_end - 1)(rng)] ^= std::uint8_t(1 << (rng() % 8));
                   return b;
                 }});
  out.push_back({"counts_swapped", Expect::Either,
                 [](const Desc& d, const Image& img, std::mt19937&) -> std::optional<std::vector<std::uint8_t>> {
                   if (d.tensors.size() == d.kv.size()) return std::nullopt;
                   auto b = img.b;
                   const std::uint64_t t = get_u64(b, 8), k = get_u64(b, 16);
                   set_u64(b, 8, k);
                   set_u64(b, 16, t);
                   return b;
                 }});
  for (const char* magic : {"gguf", "FUGG", "GGML", "\0\0\0\0"}) {
    const std::string m(magic, 4);
    out.push_back({"magic=" + (m[0] ? m : std::string("zeros")), Expect::Refused,
                   [m](const Desc&, const Image& img, std::mt19937&) -> std::optional<std::vector<std::uint8_t>> {
                     auto b = img.b;
                     std::memcpy(b.data(), m.data(), 4);
                     return b;
                   },
                   "not a GGUF file"});
  }
  return out;
}

}  // namespace

TEST_CASE("GGUF mutation classes: each over many seeds gives its expected outcome", "[cpu][gguf]") {
  const std::vector<Class> all = classes();
  INFO(all.size() << " mutation classes");
  CHECK(all.size() >= 100);
  constexpr int kSeeds = 80;
  // The seeds themselves parse, with the tensors where the encoder put them.
  for (int s = 0; s < kSeeds; ++s) {
    const Desc d = random_desc(std::uint32_t(s));
    const Image img = encode(d);
    std::vector<std::byte> bytes(img.b.size());
    if (!img.b.empty()) std::memcpy(bytes.data(), img.b.data(), img.b.size());
    const gguf::File f = gguf::File::from_bytes(std::move(bytes));
    REQUIRE(f.tensors().size() == d.tensors.size());
    for (std::size_t i = 0; i < d.tensors.size(); ++i) {
      CHECK(f.tensors()[i].offset == img.tensor_offsets[i]);
      CHECK(f.tensors()[i].size_bytes == img.tensor_sizes[i]);
    }
  }
  std::size_t runs = 0;
  for (const Class& c : all) {
    int applied = 0, refused = 0;
    for (int s = 0; s < kSeeds; ++s) {
      const Desc d = random_desc(std::uint32_t(s));
      const Image img = encode(d);
      std::mt19937 rng(std::uint32_t(1000 * s + 17));
      const auto mutated = c.mutate(d, img, rng);
      if (!mutated) continue;
      ++applied;
      INFO("class " << c.name << " seed " << s);
      const Outcome o = parse(*mutated);
      refused += !o.parsed;
      INFO("error: " << o.error);
      if (c.expect == Expect::Refused) {
        CHECK_FALSE(o.parsed);
        if (!c.needle.empty() && !o.parsed) CHECK(o.error.find(c.needle) != std::string::npos);
      } else if (c.expect == Expect::Parses) {
        CHECK(o.parsed);
      }
    }
    INFO("class " << c.name << ": applied to " << applied << " of " << kSeeds << " seeds, refused " << refused);
    CHECK(applied >= 20);
    runs += std::size_t(applied);
  }
  CHECK(runs > 100 * 20);
}
