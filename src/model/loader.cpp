// Loading a Llama-family model from GGUF: metadata keys are `{arch}.block_count`,
// `{arch}.embedding_length`, ... as written by llama.cpp's converter; tensors are
// `token_embd.weight`, `blk.N.attn_q.weight`, ..., `output_norm.weight`, optional
// `output.weight` (absent = tied to the embedding).
#include "model/loader.hpp"

#include <fmt/format.h>

#include <cstring>
#include <set>

#include "vireo/error.hpp"

namespace vireo::detail {
namespace {

int get_int(const gguf::File& f, const std::string& key, std::int64_t lo, std::int64_t hi) {
  std::int64_t v = f.get(key).as_int();
  if (v < lo || v > hi)
    throw Error(ErrorCode::InvalidModel, fmt::format("metadata '{}' = {} is outside [{}, {}]", key, v, lo, hi));
  return int(v);
}

}  // namespace

void validate_config(const ModelConfig& c) {
  auto bad = [&](const std::string& what) {
    throw Error(ErrorCode::InvalidModel, fmt::format("model config: {}", what));
  };
  if (c.n_layers <= 0 || c.d_model <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.head_dim <= 0 ||
      c.d_ff <= 0 || c.vocab_size <= 0)
    bad(fmt::format("sizes must be positive (layers {}, d_model {}, heads {}, kv_heads {}, head_dim {}, d_ff {}, vocab {})",
                    c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.d_ff, c.vocab_size));
  if (c.n_heads % c.n_kv_heads != 0)
    bad(fmt::format("head count {} is not a multiple of kv head count {}", c.n_heads, c.n_kv_heads));
  if (c.head_dim % 2 != 0) bad(fmt::format("head_dim {} is odd (RoPE rotates pairs)", c.head_dim));
  if (!(c.rms_eps > 0.0f) || !(c.rope_theta > 0.0f))
    bad(fmt::format("rms_eps {} and rope_theta {} must be positive", c.rms_eps, c.rope_theta));
}

ModelConfig config_from_gguf(const gguf::File& f) {
  ModelConfig c;
  c.arch = f.get("general.architecture").as_string();
  if (c.arch != "llama" && c.arch != "qwen2" && c.arch != "mistral")
    throw Error(ErrorCode::Unsupported,
                fmt::format("architecture '{}' is not supported (supported: llama, mistral, qwen2)", c.arch));
  if (auto* n = f.find("general.name"); n && n->type() == gguf::ValueType::String) c.name = n->as_string();
  const std::string a = c.arch + ".";
  constexpr std::int64_t kMax = 1 << 20;
  c.n_layers = get_int(f, a + "block_count", 1, 4096);
  c.d_model = get_int(f, a + "embedding_length", 1, kMax);
  c.n_heads = get_int(f, a + "attention.head_count", 1, 4096);
  c.n_kv_heads = f.find(a + "attention.head_count_kv") ? get_int(f, a + "attention.head_count_kv", 1, 4096) : c.n_heads;
  c.d_ff = get_int(f, a + "feed_forward_length", 1, kMax);
  c.context_length = f.find(a + "context_length") ? get_int(f, a + "context_length", 1, 1 << 30) : 4096;
  c.head_dim = f.find(a + "attention.key_length") ? get_int(f, a + "attention.key_length", 1, 4096)
                                                  : c.d_model / c.n_heads;
  if (auto* rd = f.find(a + "rope.dimension_count"); rd && rd->as_int() != c.head_dim)
    throw Error(ErrorCode::Unsupported, fmt::format("partial RoPE (rope.dimension_count {} != head_dim {}) is not supported",
                                                    rd->as_int(), c.head_dim));
  if (auto* v = f.find(a + "rope.freq_base")) c.rope_theta = float(v->as_float());
  if (auto* v = f.find(a + "attention.layer_norm_rms_epsilon")) c.rms_eps = float(v->as_float());
  if (auto* v = f.find("tokenizer.ggml.tokens"); v && v->type() == gguf::ValueType::Array)
    c.vocab_size = int(v->array_size());
  else
    c.vocab_size = get_int(f, a + "vocab_size", 1, 1 << 24);
  c.tied_embeddings = f.find_tensor("output.weight") == nullptr;
  c.qkv_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  validate_config(c);
  return c;
}

namespace {

struct Mapper {
  const gguf::File& f;
  Weights& w;

  // A 2-D matrix [rows, cols] = GGUF shape {cols, rows}.
  WeightView matrix(const std::string& name, std::int64_t rows, std::int64_t cols) {
    const gguf::TensorInfo& t = f.tensor(name);
    if (t.shape.size() != 2 || t.shape[0] != std::uint64_t(cols) || t.shape[1] != std::uint64_t(rows))
      throw Error(ErrorCode::InvalidModel, fmt::format("tensor '{}' has shape {} but the config needs {{{}, {}}}", name,
                                                       shape_str(t), cols, rows));
    return {t.type, t.data, rows, cols};
  }
  // A 1-D vector of n values, converted to F32 and owned.
  WeightView vector(const std::string& name, std::int64_t n) {
    const gguf::TensorInfo& t = f.tensor(name);
    if (t.shape.size() != 1 || t.shape[0] != std::uint64_t(n))
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("tensor '{}' has shape {} but the config needs {{{}}}", name, shape_str(t), n));
    auto buf = std::make_unique_for_overwrite<std::byte[]>(std::size_t(n) * sizeof(float));
    gguf::dequantize(t.type, t.data, reinterpret_cast<float*>(buf.get()), std::size_t(n));
    w.owned.push_back(std::move(buf));
    return {gguf::TensorType::F32, w.owned.back().get(), 1, n};
  }
  static std::string shape_str(const gguf::TensorInfo& t) {
    std::string s = "{";
    for (std::size_t i = 0; i < t.shape.size(); ++i) s += (i ? ", " : "") + std::to_string(t.shape[i]);
    return s + "}";
  }
};

}  // namespace

Weights map_weights(const gguf::File& f, const ModelConfig& c) {
  Weights w;
  w.owned.reserve(std::size_t(c.n_layers) * 5 + 4);  // views point into owned: no reallocation
  Mapper m{f, w};
  const std::int64_t d = c.d_model, qd = std::int64_t(c.n_heads) * c.head_dim,
                     kvd = std::int64_t(c.n_kv_heads) * c.head_dim;
  w.tok_embd = m.matrix("token_embd.weight", c.vocab_size, d);
  w.output_norm = m.vector("output_norm.weight", d);
  w.output = c.tied_embeddings ? w.tok_embd : m.matrix("output.weight", c.vocab_size, d);
  if (const auto* rf = f.find_tensor("rope_freqs.weight")) {
    if (rf->shape.size() != 1 || rf->shape[0] != std::uint64_t(c.head_dim / 2) || rf->type != gguf::TensorType::F32)
      throw Error(ErrorCode::InvalidModel, "tensor 'rope_freqs.weight' must be F32 of head_dim/2 values");
    const float* p = reinterpret_cast<const float*>(rf->data);
    w.rope_freqs.assign(p, p + c.head_dim / 2);
  }
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string b = fmt::format("blk.{}.", l);
    LayerWeights L;
    L.attn_norm = m.vector(b + "attn_norm.weight", d);
    L.wq = m.matrix(b + "attn_q.weight", qd, d);
    L.wk = m.matrix(b + "attn_k.weight", kvd, d);
    L.wv = m.matrix(b + "attn_v.weight", kvd, d);
    L.wo = m.matrix(b + "attn_output.weight", d, qd);
    if (c.qkv_bias) {
      L.bq = m.vector(b + "attn_q.bias", qd);
      L.bk = m.vector(b + "attn_k.bias", kvd);
      L.bv = m.vector(b + "attn_v.bias", kvd);
    }
    L.ffn_norm = m.vector(b + "ffn_norm.weight", d);
    L.w_gate = m.matrix(b + "ffn_gate.weight", c.d_ff, d);
    L.w_up = m.matrix(b + "ffn_up.weight", c.d_ff, d);
    L.w_down = m.matrix(b + "ffn_down.weight", d, c.d_ff);
    w.layers.push_back(L);
  }
  return w;
}

std::size_t Weights::total_bytes() const {
  std::size_t n = tok_embd.bytes() + output_norm.bytes() + (output.data != tok_embd.data ? output.bytes() : 0);
  for (const auto& L : layers)
    for (const WeightView* v : {&L.attn_norm, &L.wq, &L.wk, &L.wv, &L.wo, &L.bq, &L.bk, &L.bv, &L.ffn_norm,
                                &L.w_gate, &L.w_up, &L.w_down})
      if (*v) n += v->bytes();
  return n;
}

}  // namespace vireo::detail
