// Helpers shared by the tests: where the default model and the fixtures live.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

#include "vireo/model.hpp"

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

}  // namespace vireo::test
