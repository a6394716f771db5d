// Memory planning, the model side: a ModelConfig read from a GGUF header's metadata (the
// llama.cpp converter's `{arch}.*` keys, for every architecture that uses them), and the
// bytes its weights take on the CPU or on a GPU, per tensor of the file's directory or per
// matrix of a shape (plan/plan_internal.hpp).
#include <fmt/format.h>

#include <algorithm>

#include "plan/plan_internal.hpp"
#include "vireo/error.hpp"

namespace vireo::detail {
namespace {

std::int64_t meta_int(const gguf::File& f, const std::string& key) {
  const gguf::Value& v = f.get(key);  // InvalidModel naming the key when absent
  if (v.type() == gguf::ValueType::Array) {
    // Per-layer values (some families vary KV heads by layer): plan for the largest.
    std::int64_t m = 0;
    for (std::int64_t x : v.as_int_array()) m = std::max(m, x);
    return m;
  }
  return v.as_int();
}

std::int64_t meta_int_or(const gguf::File& f, const std::string& key, std::int64_t fallback) {
  return f.find(key) ? meta_int(f, key) : fallback;
}

}  // namespace

ModelConfig plan_config(const gguf::File& f) {
  ModelConfig c;
  c.arch = f.get("general.architecture").as_string();
  if (const auto* n = f.find("general.name"); n && n->type() == gguf::ValueType::String) c.name = n->as_string();
  const std::string a = c.arch + ".";
  auto bounded = [&](std::int64_t v, const std::string& key) {
    if (v < 1 || v > (std::int64_t(1) << 30))
      throw Error(ErrorCode::InvalidModel, fmt::format("metadata '{}' = {} is outside [1, 2^30]", key, v));
    return int(v);
  };
  c.n_layers = bounded(meta_int(f, a + "block_count"), a + "block_count");
  c.d_model = bounded(meta_int(f, a + "embedding_length"), a + "embedding_length");
  c.n_heads = bounded(meta_int(f, a + "attention.head_count"), a + "attention.head_count");
  c.n_kv_heads = bounded(meta_int_or(f, a + "attention.head_count_kv", c.n_heads), a + "attention.head_count_kv");
  c.d_ff = bounded(meta_int(f, a + "feed_forward_length"), a + "feed_forward_length");
  c.context_length = bounded(meta_int_or(f, a + "context_length", 4096), a + "context_length");
  c.head_dim = bounded(meta_int_or(f, a + "attention.key_length", c.d_model / c.n_heads), a + "attention.key_length");
  if (const auto* v = f.find("tokenizer.ggml.tokens"); v && v->type() == gguf::ValueType::Array)
    c.vocab_size = bounded(std::int64_t(v->array_size()), "tokenizer.ggml.tokens");
  else
    c.vocab_size = bounded(meta_int(f, a + "vocab_size"), a + "vocab_size");
  c.tied_embeddings = f.find_tensor("output.weight") == nullptr;
  return c;
}

std::uint64_t tensor_device_bytes(gguf::TensorType type, std::uint64_t rows, std::uint64_t cols,
                                  const PlanOptions& o) {
  if (rows <= 1) return cols * 4;  // 1-D tensors (norms, biases) become fp32 everywhere
  if (o.device == DeviceKind::CPU) return rows * gguf::row_bytes(type, cols);
  // As the CUDA backend decides: only with a 16-bit dtype, for the three block formats its
  // GEMVs read.
  const bool keep = o.gpu_quantized && o.dtype != DType::F32 && cols % 32 == 0 &&
                    (type == gguf::TensorType::Q8_0 || type == gguf::TensorType::Q4_0 ||
                     type == gguf::TensorType::Q4_1);
  // Kept blocks are split into quants + fp16 scales (+ fp16 minimums): as many bytes as the
  // GGUF blocks.
  if (keep) return rows * gguf::row_bytes(type, cols);
  return rows * cols * dtype_size(o.dtype);
}

std::uint64_t file_weight_bytes(const gguf::File& f, const PlanOptions& o) {
  std::uint64_t n = 0;
  for (const gguf::TensorInfo& t : f.tensors()) {
    const std::uint64_t cols = t.shape.empty() ? 1 : t.shape[0];
    const std::uint64_t rows = cols ? t.n_elements / cols : 0;
    n += tensor_device_bytes(t.type, rows, cols, o);
  }
  return n;
}

std::uint64_t config_weight_bytes(const ModelConfig& c, gguf::TensorType type, const PlanOptions& o) {
  const std::uint64_t d = std::uint64_t(c.d_model), qd = std::uint64_t(c.n_heads) * std::uint64_t(c.head_dim),
                      kvd = std::uint64_t(c.n_kv_heads) * std::uint64_t(c.head_dim), ff = std::uint64_t(c.d_ff),
                      v = std::uint64_t(c.vocab_size);
  auto mat = [&](std::uint64_t rows, std::uint64_t cols) { return tensor_device_bytes(type, rows, cols, o); };
  const std::uint64_t layer = mat(qd, d) + 2 * mat(kvd, d) + mat(d, qd) + 2 * mat(ff, d) + mat(d, ff) + 2 * d * 4;
  return std::uint64_t(c.n_layers) * layer + mat(v, d) * (c.tied_embeddings ? 1 : 2) + d * 4;
}

}  // namespace vireo::detail
