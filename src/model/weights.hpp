// Weight views: a model's matrices and vectors as views into the GGUF file (or into buffers a
// random model owns). Every matrix is row-major [rows = out features, cols = in features], each
// row stored as gguf::row_bytes(type, cols) bytes — exactly GGUF's layout for a tensor of
// shape {cols, rows}. Q and K rows are in GGUF's order (llama.cpp permutes them at
// conversion so RoPE rotates adjacent pairs (x[2i], x[2i+1])).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "vireo/gguf.hpp"
#include "vireo/model.hpp"

namespace vireo::detail {

struct WeightView {
  gguf::TensorType type = gguf::TensorType::F32;
  const std::byte* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::string_view name;  ///< the GGUF tensor's name (points into the file's tensor table), or empty
  explicit operator bool() const noexcept { return data != nullptr; }
  std::size_t row_stride() const { return gguf::row_bytes(type, std::uint64_t(cols)); }
  std::size_t bytes() const { return row_stride() * std::size_t(rows); }
  const std::byte* row(std::int64_t r) const { return data + std::size_t(r) * row_stride(); }
};

/// Owns what the views of a model's Network point into when they are not the GGUF file's
/// mapped bytes: random models' matrices and 1-D tensors converted to F32 at load. Left
/// uninitialized when allocated: Model::random fills 16 GB for an 8B shape in parallel, and
/// a zero-filled vector would first memset (and page-fault) all of it on one thread.
struct WeightStore {
  std::vector<std::unique_ptr<std::byte[]>> owned;
  std::byte* alloc(std::size_t bytes) {
    owned.push_back(std::make_unique_for_overwrite<std::byte[]>(bytes));
    return owned.back().get();
  }
};

/// The weights of a stack of pre-norm attention + gated-MLP blocks, by name: what the CUDA
/// backend's fused step consumes. Made from a Network by match_decoder_stack
/// (model/patterns.hpp), which refuses networks of another shape; fused QKV / gate-up
/// matrices appear as row ranges of the fused tensor.
struct LayerWeights {
  WeightView attn_norm;             // [1, d_model] f32
  WeightView wq, wk, wv, wo;        // [n_heads*hd, d], [n_kv*hd, d], [n_kv*hd, d], [d, n_heads*hd]
  WeightView bq, bk, bv;            // optional biases, f32
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
};

}  // namespace vireo::detail
