// The weights of a Llama-family model as views into the GGUF file (or into buffers a random
// model owns). Every matrix is row-major [rows = out features, cols = in features], each
// row stored as gguf::row_bytes(type, cols) bytes — exactly GGUF's layout for a tensor of
// shape {cols, rows}. Q and K rows are in GGUF's order (llama.cpp permutes them at
// conversion so RoPE rotates adjacent pairs (x[2i], x[2i+1])).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "vireo/gguf.hpp"
#include "vireo/model.hpp"

namespace vireo::detail {

struct WeightView {
  gguf::TensorType type = gguf::TensorType::F32;
  const std::byte* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  explicit operator bool() const noexcept { return data != nullptr; }
  std::size_t row_stride() const { return gguf::row_bytes(type, std::uint64_t(cols)); }
  std::size_t bytes() const { return row_stride() * std::size_t(rows); }
  const std::byte* row(std::int64_t r) const { return data + std::size_t(r) * row_stride(); }
};

struct LayerWeights {
  // 1-D tensors (norms, biases) are always F32: the loader converts them at load.
  WeightView attn_norm;             // [1, d_model] f32
  WeightView wq, wk, wv, wo;        // [n_heads*hd, d], [n_kv*hd, d], [n_kv*hd, d], [d, n_heads*hd]
  WeightView bq, bk, bv;            // optional biases (Qwen2), f32
  WeightView ffn_norm;              // [1, d_model] f32
  WeightView w_gate, w_up, w_down;  // [d_ff, d], [d_ff, d], [d, d_ff]
};

struct Weights {
  WeightView tok_embd;     // [vocab, d]
  WeightView output_norm;  // [1, d] f32
  WeightView output;       // [vocab, d] (== tok_embd when tied)
  std::vector<LayerWeights> layers;
  /// Llama-3.1 rope scaling: per-frequency divisors (rope_freqs.weight), empty when absent.
  std::vector<float> rope_freqs;
  /// Storage for random models and converted vectors (views point into these). Left
  /// uninitialized when allocated: Model::random fills 16 GB for an 8B shape in parallel, and
  /// a zero-filled vector would first memset (and page-fault) all of it on one thread.
  std::vector<std::unique_ptr<std::byte[]>> owned;
  std::size_t total_bytes() const;
};

}  // namespace vireo::detail
