// gguf::check_finite (src/gguf/check_finite.hpp): a file whose weights hold a NaN, an
// infinity or (with a bound) a huge value is refused, naming the source, the tensor, the
// element and the value; clean files pass. The bad values are planted by hand in F32, F16
// and BF16 tensors and in the fp16 scale of a quantized block (Q8_0, Q4_1, Q4_K), at the
// first, a middle and the last element, across chunk boundaries of the scan.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gguf/check_finite.hpp"
#include "gguf/fp16.hpp"
#include "test_util.hpp"
#include "tiny_gguf.hpp"
#include "vireo/error.hpp"
#include "vireo/gguf.hpp"

using namespace vireo;
using gguf::TensorType;

namespace {

/// One file with a clean F32 tensor "a" [64] and the tensor "w" of `type` and `n` elements
/// given as its raw bytes.
gguf::File file_with(TensorType type, std::uint64_t n, const std::vector<std::byte>& bytes) {
  gguf::Writer w;
  std::vector<std::byte> a(64 * 4);
  for (int i = 0; i < 64; ++i) {
    const float v = float(i) - 31.5f;
    std::memcpy(a.data() + i * 4, &v, 4);
  }
  w.add_tensor("a", TensorType::F32, {64}, a);
  w.add_tensor("w", type, {n}, bytes);
  return gguf::File::from_bytes(w.bytes());
}

std::vector<std::byte> f32_bytes(const std::vector<float>& v) {
  std::vector<std::byte> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::string refusal(const gguf::File& f, float max_abs = std::numeric_limits<float>::infinity()) {
  try {
    gguf::check_finite(f, "'model.gguf'", max_abs);
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::InvalidModel);
    return e.what();
  }
  return "";
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("check_finite accepts clean files of every kind", "[cpu][gguf]") {
  CHECK(refusal(gguf::File::from_bytes(test::tiny_gguf({}))).empty());
  for (TensorType t : {TensorType::Q8_0, TensorType::Q4_1, TensorType::Q4_K, TensorType::Q6_K}) {
    test::TinySpec s;
    s.d = s.ff = 256;  // whole blocks of every type in every row
    s.mat_type = t;
    INFO(gguf::to_string(t));
    CHECK(refusal(gguf::File::from_bytes(test::tiny_gguf(s))).empty());
  }
}

TEST_CASE("check_finite names a NaN or an infinity in a float tensor", "[cpu][gguf]") {
  const std::uint64_t n = 200000;  // a few scan chunks
  for (std::uint64_t at : {std::uint64_t(0), std::uint64_t(65535), std::uint64_t(65536), n - 1}) {
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                      -std::numeric_limits<float>::infinity()}) {
      std::vector<float> v(n, 0.25f);
      v[std::size_t(at)] = bad;
      const std::string why = refusal(file_with(TensorType::F32, n, f32_bytes(v)));
      INFO(why);
      CHECK(has(why, "'model.gguf': tensor 'w' (F32) element " + std::to_string(at) + " is "));
      CHECK(has(why, std::isnan(bad) ? "NaN" : bad > 0 ? "+inf" : "-inf"));
    }
  }
}

TEST_CASE("check_finite reads F16 and BF16 tensors", "[cpu][gguf]") {
  const std::uint64_t n = 96;
  std::vector<std::uint16_t> h(n, detail::fp32_to_fp16(0.5f));
  h[70] = 0x7C00;  // fp16 +inf
  std::vector<std::byte> hb(n * 2);
  std::memcpy(hb.data(), h.data(), hb.size());
  const std::string f16 = refusal(file_with(TensorType::F16, n, hb));
  INFO(f16);
  CHECK(has(f16, "tensor 'w' (F16) element 70 is +inf"));

  std::vector<std::uint16_t> b(n, 0x3F00);  // bf16 0.5
  b[3] = 0x7FC0;                            // bf16 NaN
  std::vector<std::byte> bb(n * 2);
  std::memcpy(bb.data(), b.data(), bb.size());
  const std::string bf16 = refusal(file_with(TensorType::BF16, n, bb));
  INFO(bf16);
  CHECK(has(bf16, "tensor 'w' (BF16) element 3 is NaN"));
}

TEST_CASE("check_finite finds a NaN scale in a quantized block", "[cpu][gguf]") {
  std::mt19937 rng(7);
  for (TensorType t : {TensorType::Q8_0, TensorType::Q4_1, TensorType::Q4_K}) {
    const std::uint64_t be = gguf::block_elements(t), n = be * 5;
    std::vector<std::byte> q = test::random_blocks(t, n, rng);
    CHECK(refusal(file_with(t, n, q)).empty());
    const std::uint16_t nan = 0x7E00;  // fp16 NaN, written over block 3's d (byte 0 of each of these types)
    std::memcpy(q.data() + 3 * gguf::block_bytes(t), &nan, 2);
    const std::string why = refusal(file_with(t, n, q));
    INFO(gguf::to_string(t) << ": " << why);
    CHECK(has(why, "tensor 'w' (" + std::string(gguf::to_string(t)) + ") element " + std::to_string(3 * be) + " is NaN"));
  }
}

TEST_CASE("check_finite with a bound refuses huge finite weights", "[cpu][gguf]") {
  std::vector<float> v(100, 1.0f);
  v[42] = 3.0e30f;
  const gguf::File f = file_with(TensorType::F32, 100, f32_bytes(v));
  CHECK(refusal(f).empty());  // finite: fine without a bound
  const std::string why = refusal(f, 1e4f);
  INFO(why);
  CHECK(has(why, "tensor 'w' (F32) element 42 is 3e+30, beyond the bound 10000"));
  // Tensor "a" (first in the file) holds -31.5 .. 31.5: a bound of 31.5 passes it, one of
  // 31 stops at its first element.
  CHECK(has(refusal(f, 31.5f), "tensor 'w' (F32) element 42 is 3e+30, beyond the bound 31.5"));
  CHECK(has(refusal(f, 31.0f), "tensor 'a' (F32) element 0 is -31.5, beyond the bound 31"));
  CHECK_THROWS_AS(gguf::check_finite(f, "x", std::numeric_limits<float>::quiet_NaN()), Error);
}

TEST_CASE("check_finite passes the real SmolLM2", "[golden][gguf]") {
  const gguf::File f = gguf::File::open(test::require_model());
  CHECK_NOTHROW(gguf::check_finite(f, test::model_path().string()));
}
