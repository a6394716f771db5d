// The architecture layer: one file per model family (llama.cpp, gemma3.cpp, qwen2.cpp,
// mistral.cpp, phi3.cpp) reads its GGUF metadata and tensors and describes its network
// (model/network.hpp). This header is what those files share: a reader of `{arch}.*`
// metadata and tensors that checks shapes, the common decoder-block builder, and the
// registry that picks a family by general.architecture.
//
// Adding a family: write src/model/arch/<family>.cpp with a describe function, add it to
// kFamilies in registry.cpp, and add a golden test (docs/ARCHITECTURE.md).
#pragma once
#include <cmath>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>

#include "model/network.hpp"
#include "model/weights.hpp"
#include "vireo/gguf.hpp"
#include "vireo/model.hpp"

namespace vireo::detail {

/// Reads one GGUF for a family: metadata under "{arch}." and tensors, each checked
/// (presence, shape) before use. Errors name the key or tensor.
class ArchReader {
 public:
  ArchReader(const gguf::File& f, WeightStore& store);
  const std::string& arch() const noexcept { return arch_; }
  const gguf::File& file() const noexcept { return f_; }

  /// "{arch}.<key>" as an integer in [lo, hi]; `def` when absent (no default: required).
  int get_int(const std::string& key, std::int64_t lo, std::int64_t hi, std::optional<int> def = std::nullopt) const;
  float get_float(const std::string& key, std::optional<float> def = std::nullopt) const;
  std::optional<std::string> get_string(const std::string& key) const;
  bool has_key(const std::string& key) const;
  bool has_tensor(const std::string& name) const;

  /// A 2-D matrix [rows, cols] (GGUF shape {cols, rows}).
  WeightView matrix(const std::string& name, std::int64_t rows, std::int64_t cols) const;
  /// A 1-D tensor of n values, converted to F32 (owned by the store).
  WeightView vector(const std::string& name, std::int64_t n) const;
  /// Refuse the file: Unsupported, naming the family and the option.
  [[noreturn]] void unsupported(const std::string& what) const;

 private:
  const gguf::File& f_;
  WeightStore& store_;
  std::string arch_;
};

/// The hyper-parameters every decoder family has, read from the usual llama.cpp keys.
struct Hparams {
  int n_layers = 0, d_model = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, d_ff = 0, vocab = 0, context = 0;
  float eps = 1e-5f;
  float rope_theta = 10000.0f;
  int n_rot = 0;  ///< rope.dimension_count (head_dim when absent)
};
Hparams read_hparams(const ArchReader& r, float default_eps);

/// A Network with the shapes of h and no layers yet.
Network make_network(const std::string& family, const Hparams& h);

/// RoPE of a Llama-family file: rope.scaling.type none / linear (factor) / llama3 (the
/// rope_freqs.weight tensor); other scalings (yarn, longrope, ...) are refused by name.
RopeSpec read_rope(const ArchReader& r, const Hparams& h, RopeStyle style);

/// Op builders: a Norm (RMS) src -> dst, a Linear src -> dsts (rows split in order), an op
/// of `kind` with one source and one destination.
Op norm_op(Buf src, Buf dst, WeightView w, float eps);
Op linear_op(Buf src, std::initializer_list<Buf> dsts, WeightView w, WeightView bias = {});
Op simple_op(OpKind kind, Buf src, Buf dst);

/// The weights of the common pre-norm decoder block (Llama, Mistral, Qwen2, Phi-3):
///   H = norm(X); Q, K, V = H W_qkv (+ b); rope(Q), rope(K); A = attention(Q, K, V);
///   X += A W_o; H = norm(X); M = act(H W_gate) * (H W_up); X += M W_down
/// wqkv (fused) or wq / wk / wv; w_gate_up (fused, gate rows first) or w_gate / w_up.
struct BlockWeights {
  WeightView attn_norm, wq, wk, wv, wqkv, bq, bk, bv, wo;
  WeightView ffn_norm, w_gate, w_up, w_gate_up, w_down;
};
/// Append that block's ops to `layer` (rope / attn: indices into the network's specs).
void add_decoder_block(LayerProgram& layer, const BlockWeights& w, float eps, int rope, int attn, GluAct act);

/// What distinguishes the families made of add_decoder_block layers (Llama, Mistral, Qwen2,
/// Phi-3): the norm epsilon when the file has none, the RoPE pairing, and whether the file's
/// attention.sliding_window applies. The tensors (fused or separate projections, biases) are
/// read as the file has them (read_block).
struct DecoderFamily {
  const char* name;
  float default_eps;
  RopeStyle rope;
  bool sliding_window = false;
};
/// A whole network of such layers: one RoPE and one attention spec for every layer, SwiGLU.
Network describe_decoder_stack(const ArchReader& r, ModelConfig& cfg, const DecoderFamily& f);

/// Map a standard block's tensors (blk.N.attn_norm, attn_q / attn_k / attn_v or attn_qkv,
/// optional biases, attn_output, ffn_norm, ffn_gate + ffn_up or a fused ffn_up of 2 d_ff rows,
/// ffn_down).
BlockWeights read_block(const ArchReader& r, const Hparams& h, int layer);

/// Token embedding, final norm and output (tied when output.weight is absent).
void read_embeddings(const ArchReader& r, const Hparams& h, Network& net, bool* tied);

/// Each family's entry point: fill cfg (shapes, family name) and describe the network.
using DescribeFn = Network (*)(const ArchReader& r, ModelConfig& cfg);
Network describe_llama(const ArchReader& r, ModelConfig& cfg);
Network describe_mistral(const ArchReader& r, ModelConfig& cfg);
Network describe_qwen2(const ArchReader& r, ModelConfig& cfg);
Network describe_phi3(const ArchReader& r, ModelConfig& cfg);
Network describe_gemma3(const ArchReader& r, ModelConfig& cfg);

/// Pick the family by general.architecture; Unsupported naming it and the supported ones.
Network describe_network(const gguf::File& f, WeightStore& store, ModelConfig& cfg);

/// The Llama network of a random model of shape cfg (Model::random).
Network describe_random_llama(const ModelConfig& cfg, const std::vector<BlockWeights>& blocks, WeightView tok_embd,
                              WeightView output_norm, WeightView output);

/// Fill the shape fields of cfg from h.
void fill_config(ModelConfig& cfg, const std::string& family, const Hparams& h, bool tied);

}  // namespace vireo::detail
