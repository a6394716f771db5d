// ArchReader and the pieces every family shares: hyper-parameters under "{arch}.", RoPE
// scaling, the standard block's tensors, the embeddings.
#include <fmt/format.h>

#include "model/arch/arch.hpp"
#include "vireo/error.hpp"

namespace vireo::detail {
namespace {

std::string shape_str(const gguf::TensorInfo& t) {
  std::string s = "{";
  for (std::size_t i = 0; i < t.shape.size(); ++i) s += (i ? ", " : "") + std::to_string(t.shape[i]);
  return s + "}";
}

}  // namespace

ArchReader::ArchReader(const gguf::File& f, WeightStore& store)
    : f_(f), store_(store), arch_(f.get("general.architecture").as_string()) {}

int ArchReader::get_int(const std::string& key, std::int64_t lo, std::int64_t hi, std::optional<int> def) const {
  const std::string k = arch_ + "." + key;
  const gguf::Value* v = f_.find(k);
  if (!v) {
    if (def) return *def;
    throw Error(ErrorCode::InvalidModel, fmt::format("metadata '{}' is missing", k));
  }
  const std::int64_t x = v->as_int();
  if (x < lo || x > hi)
    throw Error(ErrorCode::InvalidModel, fmt::format("metadata '{}' = {} is outside [{}, {}]", k, x, lo, hi));
  return int(x);
}

float ArchReader::get_float(const std::string& key, std::optional<float> def) const {
  const std::string k = arch_ + "." + key;
  const gguf::Value* v = f_.find(k);
  if (!v) {
    if (def) return *def;
    throw Error(ErrorCode::InvalidModel, fmt::format("metadata '{}' is missing", k));
  }
  return float(v->as_float());
}

std::optional<std::string> ArchReader::get_string(const std::string& key) const {
  const gguf::Value* v = f_.find(arch_ + "." + key);
  if (!v) return std::nullopt;
  return v->as_string();
}

bool ArchReader::has_key(const std::string& key) const { return f_.find(arch_ + "." + key) != nullptr; }
bool ArchReader::has_tensor(const std::string& name) const { return f_.find_tensor(name) != nullptr; }

WeightView ArchReader::matrix(const std::string& name, std::int64_t rows, std::int64_t cols) const {
  const gguf::TensorInfo& t = f_.tensor(name);
  if (t.shape.size() != 2 || t.shape[0] != std::uint64_t(cols) || t.shape[1] != std::uint64_t(rows))
    throw Error(ErrorCode::InvalidModel,
                fmt::format("tensor '{}' has shape {} but the config needs {{{}, {}}}", name, shape_str(t), cols, rows));
  return {t.type, t.data, rows, cols, t.name};
}

WeightView ArchReader::vector(const std::string& name, std::int64_t n) const {
  const gguf::TensorInfo& t = f_.tensor(name);
  if (t.shape.size() != 1 || t.shape[0] != std::uint64_t(n))
    throw Error(ErrorCode::InvalidModel,
                fmt::format("tensor '{}' has shape {} but the config needs {{{}}}", name, shape_str(t), n));
  std::byte* buf = store_.alloc(std::size_t(n) * sizeof(float));
  gguf::dequantize(t.type, t.data, reinterpret_cast<float*>(buf), std::size_t(n));
  return {gguf::TensorType::F32, buf, 1, n, t.name};
}

void ArchReader::unsupported(const std::string& what) const {
  throw Error(ErrorCode::Unsupported, fmt::format("{} model: {} is not supported", arch_, what));
}

Hparams read_hparams(const ArchReader& r, float default_eps) {
  constexpr std::int64_t kMax = 1 << 20;
  Hparams h;
  h.n_layers = r.get_int("block_count", 1, 4096);
  h.d_model = r.get_int("embedding_length", 1, kMax);
  h.n_heads = r.get_int("attention.head_count", 1, 4096);
  h.n_kv_heads = r.get_int("attention.head_count_kv", 1, 4096, h.n_heads);
  h.d_ff = r.get_int("feed_forward_length", 1, kMax);
  h.context = r.get_int("context_length", 1, 1 << 30, 4096);
  h.head_dim = r.get_int("attention.key_length", 1, 4096, h.d_model / h.n_heads);
  if (r.get_int("attention.value_length", 1, 4096, h.head_dim) != h.head_dim)
    r.unsupported("a value head size different from the key head size");
  h.n_rot = r.get_int("rope.dimension_count", 2, 4096, h.head_dim);
  h.rope_theta = r.get_float("rope.freq_base", 10000.0f);
  h.eps = r.get_float("attention.layer_norm_rms_epsilon", default_eps);
  if (const gguf::Value* v = r.file().find("tokenizer.ggml.tokens"); v && v->type() == gguf::ValueType::Array)
    h.vocab = int(v->array_size());
  else
    h.vocab = r.get_int("vocab_size", 1, 1 << 24);
  if (r.has_key("expert_count") && r.get_int("expert_count", 0, 1 << 16) > 0) r.unsupported("mixture of experts");
  if (h.n_heads % h.n_kv_heads != 0)
    throw Error(ErrorCode::InvalidModel,
                fmt::format("head count {} is not a multiple of kv head count {}", h.n_heads, h.n_kv_heads));
  if (h.n_rot > h.head_dim || h.n_rot % 2)
    throw Error(ErrorCode::InvalidModel,
                fmt::format("rope.dimension_count {} must be even and at most head_dim {}", h.n_rot, h.head_dim));
  if (!(h.eps > 0.0f) || !(h.rope_theta > 0.0f))
    throw Error(ErrorCode::InvalidModel, fmt::format("norm epsilon {} and rope base {} must be positive", h.eps,
                                                     h.rope_theta));
  return h;
}

Network make_network(const std::string& family, const Hparams& h) {
  Network n;
  n.family = family;
  n.d_model = h.d_model;
  n.n_heads = h.n_heads;
  n.n_kv_heads = h.n_kv_heads;
  n.head_dim = h.head_dim;
  n.d_ff = h.d_ff;
  n.vocab = h.vocab;
  n.layers.resize(std::size_t(h.n_layers));
  return n;
}

RopeSpec read_rope(const ArchReader& r, const Hparams& h, RopeStyle style) {
  RopeSpec s;
  s.style = style;
  s.n_rot = h.n_rot;
  s.theta = h.rope_theta;
  const std::string type = r.get_string("rope.scaling.type").value_or("none");
  if (type == "linear") {
    const float factor = r.get_float("rope.scaling.factor");
    if (!(factor >= 1.0f) || factor > 1024.0f)
      throw Error(ErrorCode::InvalidModel, fmt::format("rope.scaling.factor {} is outside [1, 1024]", factor));
    s.pos_scale = 1.0f / factor;
  } else if (type != "none" && type != "llama3") {
    r.unsupported(fmt::format("RoPE scaling '{}'", type));
  }
  if (r.has_tensor("rope_factors_long") || r.has_tensor("rope_factors_short"))
    r.unsupported("RoPE scaling with long/short factors (longrope)");
  if (const gguf::TensorInfo* rf = r.file().find_tensor("rope_freqs.weight")) {
    if (rf->shape.size() != 1 || rf->shape[0] != std::uint64_t(h.n_rot / 2) || rf->type != gguf::TensorType::F32)
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("tensor 'rope_freqs.weight' must be F32 of rope dimensions / 2 = {} values", h.n_rot / 2));
    const float* p = reinterpret_cast<const float*>(rf->data);
    s.freq_div.assign(p, p + h.n_rot / 2);
    for (float v : s.freq_div)
      if (!(v > 0.0f)) throw Error(ErrorCode::InvalidModel, "tensor 'rope_freqs.weight' holds a non-positive factor");
  }
  return s;
}

BlockWeights read_block(const ArchReader& r, const Hparams& h, int l) {
  const std::string b = fmt::format("blk.{}.", l);
  const std::int64_t d = h.d_model, qd = std::int64_t(h.n_heads) * h.head_dim,
                     kvd = std::int64_t(h.n_kv_heads) * h.head_dim;
  BlockWeights w;
  w.attn_norm = r.vector(b + "attn_norm.weight", d);
  if (r.has_tensor(b + "attn_qkv.weight")) {
    w.wqkv = r.matrix(b + "attn_qkv.weight", qd + 2 * kvd, d);
    if (r.has_tensor(b + "attn_qkv.bias")) w.bq = r.vector(b + "attn_qkv.bias", qd + 2 * kvd);
  } else {
    w.wq = r.matrix(b + "attn_q.weight", qd, d);
    w.wk = r.matrix(b + "attn_k.weight", kvd, d);
    w.wv = r.matrix(b + "attn_v.weight", kvd, d);
    const bool bq = r.has_tensor(b + "attn_q.bias"), bk = r.has_tensor(b + "attn_k.bias"),
               bv = r.has_tensor(b + "attn_v.bias");
    if (bq || bk || bv) {
      if (!(bq && bk && bv)) r.unsupported(fmt::format("layer {} with biases on only some of Q, K, V", l));
      w.bq = r.vector(b + "attn_q.bias", qd);
      w.bk = r.vector(b + "attn_k.bias", kvd);
      w.bv = r.vector(b + "attn_v.bias", kvd);
    }
  }
  if (r.has_tensor(b + "attn_output.bias")) r.unsupported("a bias on the attention output");
  w.wo = r.matrix(b + "attn_output.weight", d, qd);
  w.ffn_norm = r.vector(b + "ffn_norm.weight", d);
  if (r.has_tensor(b + "ffn_gate.weight")) {
    w.w_gate = r.matrix(b + "ffn_gate.weight", h.d_ff, d);
    w.w_up = r.matrix(b + "ffn_up.weight", h.d_ff, d);
  } else {
    w.w_gate_up = r.matrix(b + "ffn_up.weight", 2 * std::int64_t(h.d_ff), d);
  }
  w.w_down = r.matrix(b + "ffn_down.weight", d, h.d_ff);
  return w;
}

void read_embeddings(const ArchReader& r, const Hparams& h, Network& net, bool* tied) {
  net.tok_embd = r.matrix("token_embd.weight", h.vocab, h.d_model);
  *tied = !r.has_tensor("output.weight");
  net.output = *tied ? net.tok_embd : r.matrix("output.weight", h.vocab, h.d_model);
  net.final_norm.kind = OpKind::Norm;
  net.final_norm.src = Buf::X;
  net.final_norm.dst = {Buf::H, Buf::H, Buf::H};
  net.final_norm.w = r.vector("output_norm.weight", h.d_model);
  net.final_norm.eps = h.eps;
}

void fill_config(ModelConfig& cfg, const std::string& family, const Hparams& h, bool tied) {
  cfg.arch = family;
  cfg.n_layers = h.n_layers;
  cfg.d_model = h.d_model;
  cfg.n_heads = h.n_heads;
  cfg.n_kv_heads = h.n_kv_heads;
  cfg.head_dim = h.head_dim;
  cfg.d_ff = h.d_ff;
  cfg.vocab_size = h.vocab;
  cfg.context_length = h.context;
  cfg.rope_theta = h.rope_theta;
  cfg.rms_eps = h.eps;
  cfg.tied_embeddings = tied;
}

}  // namespace vireo::detail
