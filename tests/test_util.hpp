// Helpers shared by the tests: where the default model and the fixtures live, and the
// distances between logits rows that the model-level tests bound.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "vireo/device.hpp"
#include "vireo/model.hpp"

/// In a Catch2 test: return early, with a WARN saying why, when no CUDA device is usable
/// (CPU-only builds and machines without a driver or GPU), so [cuda] tests pass there.
#define VIREO_REQUIRE_GPU()                                            \
  do {                                                                 \
    std::string why_;                                                  \
    if (::vireo::Device::cuda_device_count(&why_) == 0) {              \
      WARN("no CUDA device, skipping: " << why_);                      \
      return;                                                          \
    }                                                                  \
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

/// n values drawn from N(0, scale^2).
inline std::vector<float> normal_vec(std::size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace vireo::test
