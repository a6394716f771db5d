// Allocation bound of the GGUF reader: a file must not make File::from_bytes allocate much
// more than the file's own size.
//
// This file replaces the global operator new/delete of the test binary with malloc/free
// wrappers that, while `g_counting` is set, add every requested size to `g_bytes`. Each test
// builds a GGUF image holding one large metadata array (4 MiB of uint8, of empty strings, or
// of empty arrays; the densest encodings per element), moves it into File::from_bytes with
// counting on, and bounds the bytes requested during parsing: about the file size for a
// packed numeric array (its bytes are copied once), and a small multiple for arrays of
// strings/arrays, which hold one Value per element. The images are encoded by hand here
// (cross-checked against gguf::Writer on a small array) so building them does not itself
// need one Value per element.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#ifdef _WIN32
#include <malloc.h>
#endif
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "vireo/gguf.hpp"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<std::size_t> g_bytes{0};

/// An over-aligned block. The Windows C runtime has no aligned_alloc; its _aligned_malloc
/// blocks must go back through _aligned_free.
void* aligned_block(std::size_t n, std::size_t align) {
#ifdef _WIN32
  return _aligned_malloc(n, align);
#else
  return std::aligned_alloc(align, (n + align - 1) / align * align);
#endif
}

void* counted_alloc(std::size_t n, std::size_t align) {
  if (g_counting.load(std::memory_order_relaxed)) g_bytes.fetch_add(n, std::memory_order_relaxed);
  if (n == 0) n = 1;
  void* p = align <= alignof(std::max_align_t) ? std::malloc(n) : aligned_block(n, align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

/// Frees what counted_alloc(_, align) returned.
void counted_free(void* p, std::size_t align) noexcept {
#ifdef _WIN32
  if (align > alignof(std::max_align_t)) return _aligned_free(p);
#endif
  std::free(p);
}
}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n, 0); }
void* operator new[](std::size_t n) { return counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_alloc(n, std::size_t(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_alloc(n, std::size_t(a)); }
// The nothrow forms too, so that every operator new/delete pair of the binary is ours.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try { return counted_alloc(n, 0); } catch (...) { return nullptr; }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try { return counted_alloc(n, 0); } catch (...) { return nullptr; }
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try { return counted_alloc(n, std::size_t(a)); } catch (...) { return nullptr; }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try { return counted_alloc(n, std::size_t(a)); } catch (...) { return nullptr; }
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t a, const std::nothrow_t&) noexcept { counted_free(p, std::size_t(a)); }
void operator delete[](void* p, std::align_val_t a, const std::nothrow_t&) noexcept { counted_free(p, std::size_t(a)); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t a) noexcept { counted_free(p, std::size_t(a)); }
void operator delete[](void* p, std::align_val_t a) noexcept { counted_free(p, std::size_t(a)); }
void operator delete(void* p, std::size_t, std::align_val_t a) noexcept { counted_free(p, std::size_t(a)); }
void operator delete[](void* p, std::size_t, std::align_val_t a) noexcept { counted_free(p, std::size_t(a)); }

using namespace vireo;
using gguf::File;
using gguf::Value;
using gguf::ValueType;

namespace {

template <class T>
void put(std::vector<std::byte>& b, T v) {
  const std::size_t at = b.size();
  b.resize(at + sizeof(T));
  std::memcpy(b.data() + at, &v, sizeof(T));
}

// A GGUF v3 image with no tensors and one key "a" holding an array of `count` elements of
// `elem`, each encoded as `element` (the bytes of one element), padded to 32 as Writer pads.
std::vector<std::byte> one_array_image(ValueType elem, std::uint64_t count,
                                       const std::vector<std::byte>& element) {
  std::vector<std::byte> b;
  b.reserve(64 + count * element.size());
  for (char c : std::string("GGUF")) b.push_back(std::byte(c));
  put<std::uint32_t>(b, 3);
  put<std::uint64_t>(b, 0);  // tensors
  put<std::uint64_t>(b, 1);  // keys
  put<std::uint64_t>(b, 1);
  b.push_back(std::byte{'a'});
  put<std::uint32_t>(b, std::uint32_t(ValueType::Array));
  put<std::uint32_t>(b, std::uint32_t(elem));
  put<std::uint64_t>(b, count);
  for (std::uint64_t i = 0; i < count; ++i) b.insert(b.end(), element.begin(), element.end());
  while (b.size() % 32 != 0) b.push_back(std::byte{0});
  return b;
}

// Bytes requested from operator new while parsing `img` (moved in, so not copied).
std::size_t parse_allocations(std::vector<std::byte> img, File& out) {
  g_bytes = 0;
  g_counting = true;
  try {
    out = File::from_bytes(std::move(img));
  } catch (...) {
    g_counting = false;
    throw;
  }
  g_counting = false;
  return g_bytes;
}

File empty_file() {
  gguf::Writer w;
  return File::from_bytes(w.bytes());
}

}  // namespace

TEST_CASE("the hand encoder of the allocation tests matches gguf::Writer", "[cpu][gguf]") {
  auto writer_image = [](Value v) {
    gguf::Writer w;
    w.set("a", std::move(v));
    return w.bytes();
  };
  CHECK(one_array_image(ValueType::UInt8, 3, {std::byte{7}}) ==
        writer_image(Value::make_array(ValueType::UInt8, {Value::make_uint(ValueType::UInt8, 7),
                                                          Value::make_uint(ValueType::UInt8, 7),
                                                          Value::make_uint(ValueType::UInt8, 7)})));
  CHECK(one_array_image(ValueType::String, 2, std::vector<std::byte>(8, std::byte{0})) ==
        writer_image(Value::make_array(ValueType::String, {Value::make_string(""), Value::make_string("")})));
  std::vector<std::byte> empty_u8_array(12, std::byte{0});  // element type uint8 (0), count 0
  CHECK(one_array_image(ValueType::Array, 1, empty_u8_array) ==
        writer_image(Value::make_array(ValueType::Array, {Value::make_array(ValueType::UInt8, {})})));
}

TEST_CASE("a 4 MiB uint8 array costs about 4 MiB to parse", "[cpu][gguf]") {
  constexpr std::uint64_t n = 4u << 20;
  std::vector<std::byte> img = one_array_image(ValueType::UInt8, n, {std::byte{0xAB}});
  const std::size_t file = img.size();
  File f = empty_file();
  const std::size_t bytes = parse_allocations(std::move(img), f);
  INFO("file " << file << " bytes, parsing allocated " << bytes << " bytes");
  REQUIRE(f.get("a").array_size() == n);
  CHECK(f.get("a").at(n - 1).as_uint() == 0xAB);
  CHECK(bytes >= n);  // the elements are copied out once
  REQUIRE(bytes <= 2 * file + 64 * 1024);
}

TEST_CASE("a 4 MiB array of empty strings or empty arrays costs a small multiple to parse", "[cpu][gguf]") {
  // The densest encodings of Value-holding elements: 8 bytes per empty string, 12 per empty
  // array (element type + count).
  struct Case {
    const char* name;
    ValueType elem;
    std::vector<std::byte> element;
  };
  for (const Case& c : {Case{"strings", ValueType::String, std::vector<std::byte>(8, std::byte{0})},
                        Case{"arrays", ValueType::Array, std::vector<std::byte>(12, std::byte{0})}}) {
    const std::uint64_t n = (4u << 20) / c.element.size();
    std::vector<std::byte> img = one_array_image(c.elem, n, c.element);
    const std::size_t file = img.size();
    File f = empty_file();
    const std::size_t bytes = parse_allocations(std::move(img), f);
    INFO(c.name << ": file " << file << " bytes, parsing allocated " << bytes << " bytes ("
                << double(bytes) / double(file) << "x)");
    REQUIRE(f.get("a").array_size() == n);
    CHECK(f.get("a").array_type() == c.elem);
    if (c.elem == ValueType::String) CHECK(f.get("a").at(n - 1).as_string().empty());
    else CHECK(f.get("a").at(n - 1).array_size() == 0);
    REQUIRE(bytes <= 8 * file);
  }
}
