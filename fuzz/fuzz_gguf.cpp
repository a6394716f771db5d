// Fuzz target: the GGUF reader on arbitrary bytes (gguf::File::from_bytes, the same parser
// File::open runs over a mapping). A file that parses is then walked the way the loader
// walks it: every metadata value read through its typed accessors, every tensor's bytes
// dequantized and checked for non-finite values (gguf::check_finite), and the tokenizer
// built from its tokenizer.ggml.* metadata and run on a fixed text. vireo::Error is the
// only acceptable failure; anything else (a crash, a sanitizer report, another exception)
// is a bug. Invariants checked on success: tensors lie inside the image, do not overlap,
// and have the byte size their type and shape give.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "fuzz_util.hpp"
#include "gguf/check_finite.hpp"
#include "vireo/error.hpp"
#include "vireo/gguf.hpp"
#include "vireo/tokenizer.hpp"

using namespace vireo;

namespace {

/// Runs f; a vireo::Error (a value of the wrong kind) is an acceptable answer.
template <class F>
void quiet(F&& f) {
  try {
    f();
  } catch (const Error&) {
  }
}

/// Reads v through every accessor (each may refuse with an Error, none may crash).
void walk(const gguf::Value& v) {
  quiet([&] { (void)v.as_uint(); });
  quiet([&] { (void)v.as_int(); });
  quiet([&] { (void)v.as_float(); });
  quiet([&] { (void)v.as_bool(); });
  quiet([&] { (void)v.as_string().size(); });
  if (v.type() != gguf::ValueType::Array) return;
  quiet([&] { (void)v.as_int_array(); });
  quiet([&] { (void)v.as_float_array(); });
  quiet([&] { (void)v.as_array(); });
  const std::size_t n = v.array_size();
  for (std::size_t i = 0; i < n; ++i) walk(v.at(i));
  quiet([&] { (void)v.at(n); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(data), reinterpret_cast<const std::byte*>(data) + size);
  try {
    const gguf::File f = gguf::File::from_bytes(std::move(bytes));
    for (const auto& [key, value] : f.metadata()) {
      VIREO_FUZZ_CHECK(!key.empty(), "empty metadata key accepted");
      VIREO_FUZZ_CHECK(f.find(key) == &value, "find() does not return the metadata entry for " + key);
      walk(value);
    }
    std::vector<std::pair<std::uint64_t, std::uint64_t>> spans;
    for (const gguf::TensorInfo& t : f.tensors()) {
      VIREO_FUZZ_CHECK(t.size_bytes == gguf::row_bytes(t.type, t.shape[0]) * (t.n_elements / t.shape[0]),
                       "size of tensor " + t.name);
      VIREO_FUZZ_CHECK(f.find_tensor(t.name) == &t, "find_tensor(" + t.name + ")");
      spans.emplace_back(t.offset, t.size_bytes);
    }
    std::sort(spans.begin(), spans.end());
    for (std::size_t i = 1; i < spans.size(); ++i)
      VIREO_FUZZ_CHECK(spans[i - 1].first + spans[i - 1].second <= spans[i].first, "tensors overlap");
    try {
      gguf::check_finite(f, "fuzz");
    } catch (const Error&) {
    }
    try {
      const Tokenizer tok = Tokenizer::from_gguf(f);
      const std::vector<Token> ids = tok.encode("Hello, world! <|im_start|> \xF0\x9F\x98\x80 12345");
      for (Token id : ids) VIREO_FUZZ_CHECK(id >= 0 && id < tok.vocab_size(), "encode gave an id out of range");
      (void)tok.decode(ids);
    } catch (const Error&) {
    }
  } catch (const Error&) {
  }
  return 0;
}
