// Helpers shared by the tests: where the default model and the fixtures live, and the
// distances between logits rows that the model-level tests bound.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "gguf/fp16.hpp"
#include "model/weights.hpp"
#include "vireo/device.hpp"
#include "vireo/gguf.hpp"
#include "vireo/model.hpp"

namespace vireo::test {
/// Exit code of vireo-tests when every test case that ran is a [cuda] one and at least one
/// skipped (CTest's SKIP_RETURN_CODE for the `cuda` group).
inline constexpr int SKIP_EXIT_CODE = 77;
/// Records that the running test case is skipped, and why (tests/main.cpp counts and lists
/// skipped test cases after the run). The caller returns right after.
void skip(const std::string& why);
}  // namespace vireo::test

/// In a Catch2 test: mark the test case skipped (counted and listed at the end of the run,
/// see tests/main.cpp) and return, when no CUDA device is usable (CPU-only builds and
/// machines without a driver or GPU).
#define VIREO_REQUIRE_GPU()                                             \
  do {                                                                  \
    std::string why_;                                                   \
    if (::vireo::Device::cuda_device_count(&why_) == 0) {               \
      ::vireo::test::skip("no CUDA device: " + why_);                   \
      return;                                                           \
    }                                                                   \
  } while (0)

namespace vireo::test {

/// A Llama shape for random-weight test models: `heads` query heads and `kv_heads` KV heads
/// of `head_dim`, a `d_model` residual stream, a `d_ff` SwiGLU hidden layer.
inline ModelConfig model_shape(int layers, int d_model, int heads, int kv_heads, int head_dim, int d_ff, int vocab,
                               int context) {
  ModelConfig c;
  c.n_layers = layers;
  c.d_model = d_model;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.d_ff = d_ff;
  c.vocab_size = vocab;
  c.context_length = context;
  return c;
}

/// The SmolLM2-135M-Instruct GGUF fetched by scripts/fetch-model.sh (or $VIREO_MODEL).
inline std::filesystem::path model_path() {
  if (const char* p = std::getenv("VIREO_MODEL")) return p;
  return std::filesystem::path(VIREO_SOURCE_DIR) / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf";
}

/// The default model's path; the calling test fails (not skips) when the file is missing:
/// golden tests must not pass without the model they check.
inline std::filesystem::path require_model() {
  const std::filesystem::path p = model_path();
  INFO("model file " << p << " is missing; run scripts/fetch-model.sh (or set VIREO_MODEL)");
  REQUIRE(std::filesystem::exists(p));
  return p;
}

inline std::filesystem::path fixture(const std::string& name) {
  return std::filesystem::path(VIREO_FIXTURES_DIR) / name;
}

/// max |a[i] - b[i]| over two rows of the same length.
inline double max_abs_diff(std::span<const float> a, std::span<const float> b) {
  REQUIRE(a.size() == b.size());
  double e = 0;
  for (std::size_t i = 0; i < a.size(); ++i) e = std::max(e, double(std::abs(a[i] - b[i])));
  return e;
}

/// max |a - b| / max |b| over all rows (every value of a must be finite).
inline double rel_err(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  REQUIRE(a.size() == b.size());
  double num = 0, den = 0;
  for (std::size_t r = 0; r < a.size(); ++r) {
    REQUIRE(a[r].size() == b[r].size());
    for (std::size_t i = 0; i < a[r].size(); ++i) {
      REQUIRE(std::isfinite(a[r][i]));
      num = std::max(num, std::fabs(double(a[r][i]) - b[r][i]));
      den = std::max(den, std::fabs(double(b[r][i])));
    }
  }
  return num / std::max(den, 1e-30);
}

/// Checks y [T][w.rows] (a matmul's result) against a double-precision dot of each
/// dequantized row of w with x [T][w.cols]: within 1e-5 of the magnitudes summed (fp32 sums
/// of up to 512 products; a wrong row, column or scale is off by the order of the value).
inline void check_matmul(const detail::WeightView& w, const std::vector<double>& x, std::int64_t T,
                         const std::vector<float>& y, const std::string& what) {
  const std::int64_t rows = w.rows, cols = w.cols;
  std::vector<float> deq(static_cast<std::size_t>(cols));
  for (std::int64_t r = 0; r < rows; ++r) {
    gguf::dequantize(w.type, w.row(r), deq.data(), std::size_t(cols));
    for (std::int64_t t = 0; t < T; ++t) {
      double ref = 0, mag = 0;
      for (std::int64_t i = 0; i < cols; ++i) {
        ref += double(deq[std::size_t(i)]) * x[std::size_t(t * cols + i)];
        mag += std::fabs(double(deq[std::size_t(i)]) * x[std::size_t(t * cols + i)]);
      }
      const float got = y[std::size_t(t * rows + r)];
      INFO(what << " " << gguf::to_string(w.type) << " T=" << T << " r=" << r << " t=" << t);
      REQUIRE(std::isfinite(got));
      CHECK(std::fabs(got - ref) <= 1e-5 * mag + 1e-6);
    }
  }
}

/// n values drawn from N(0, scale^2).
inline std::vector<float> normal_vec(std::size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

/// n elements of random `t` blocks (the read-only types too, which cannot be quantized):
/// random bytes, then every fp16 field (d, dmin / m) set to a finite value in [0.002, 0.02].
/// Q6_K is tamed: d in [0.000125, 0.00125] and int8 sub-scales in [-8, 8]. Fully random ones
/// give weights of rms ~16, and a tiny model built from those is so ill-conditioned that
/// rounding its weights to bf16 alone moves the logits by 43% of the largest (Q4_K / Q5_K:
/// 0.04%; tamed Q6_K: 0.8%; measured on the CPU); the H100 run of 2026-11-26 saw 53% in bf16.
/// Q3_K likewise takes d in [0.00025, 0.0025] (8.4% untamed, 0.8% tamed; Q2_K: 0.07%), and so
/// does IQ4_NL (codebook levels up to 127 times d): untamed, the H100 run of 2026-11-27 saw
/// its tiny bf16 model 7.5% of the largest logit away from the CPU (the bar: 5%).
inline std::vector<std::byte> random_blocks(gguf::TensorType t, std::uint64_t n, std::mt19937& rng) {
  const std::size_t bb = gguf::block_bytes(t), nb = std::size_t(n / gguf::block_elements(t));
  std::vector<std::byte> b(bb * nb);
  std::uniform_int_distribution<int> byte(0, 255), q6k_scale(-8, 8);
  const bool q6k = t == gguf::TensorType::Q6_K;
  // IQ4_XS (6-bit sub-scales times codebook levels up to 127: weights as large as untamed
  // Q6_K's) is tamed like Q6_K.
  const float tame = q6k || t == gguf::TensorType::IQ4_XS                        ? 16.0f
                     : t == gguf::TensorType::Q3_K || t == gguf::TensorType::IQ4_NL ? 8.0f
                                                                                    : 1.0f;
  std::uniform_real_distribution<float> scale(0.002f / tame, 0.02f / tame);
  std::vector<std::size_t> halves;  // byte offsets of the fp16 fields in a block
  switch (t) {
    case gguf::TensorType::Q6_K: halves = {208}; break;
    case gguf::TensorType::Q2_K: halves = {80, 82}; break;  // d, dmin
    case gguf::TensorType::Q3_K: halves = {108}; break;     // d
    case gguf::TensorType::Q5_0:
    case gguf::TensorType::IQ4_NL:
    case gguf::TensorType::IQ4_XS:  // d; the random scales_h / scales_l give sub-scales in [-32, 31]
    case gguf::TensorType::Q4_0:
    case gguf::TensorType::Q8_0: halves = {0}; break;
    default: halves = {0, 2}; break;  // Q4_1 / Q5_1 d, m; Q4_K / Q5_K d, dmin
  }
  for (std::size_t i = 0; i < nb; ++i) {
    std::byte* blk = b.data() + i * bb;
    for (std::size_t j = 0; j < bb; ++j) blk[j] = std::byte(byte(rng));
    if (q6k)  // int8 scales[16] at bytes 192 .. 207 (after ql[128] and qh[64])
      for (std::size_t j = 192; j < 208; ++j) blk[j] = std::byte(std::uint8_t(std::int8_t(q6k_scale(rng))));
    for (std::size_t off : halves) {
      const std::uint16_t h = detail::fp32_to_fp16(scale(rng));
      std::memcpy(blk + off, &h, 2);
    }
  }
  return b;
}

}  // namespace vireo::test
