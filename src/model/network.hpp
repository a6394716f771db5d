// The network description: a model family (src/model/arch/<family>.cpp) describes its
// forward pass once, as a program over a small vocabulary of ops, and every backend executes
// that program. No backend holds a family's layer loop.
//
// The program is a register machine over per-token activation buffers (Buf): every op reads
// and writes whole rows [T, width(buf)] of the step's T tokens. One step runs
//   embed (token rows of tok_embd, times embed_scale) -> X
//   for each layer: its ops, in order
//   for the rows that asked for logits only: final norm of X, output projection, soft-cap.
// A layer's ops come from a short list (OpKind); their parameters (which weight, which RoPE,
// which attention variant) are data. Backends may fuse a known sequence of ops (the CUDA
// decode step fuses the pre-norm attention + gated MLP block: src/model/patterns.hpp) and
// refuse, with an Error naming it, an op they do not implement.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "model/weights.hpp"

namespace vireo::detail {

/// Activation buffers, each [T, width]: X the residual stream, H a normalised copy, Q/K/V
/// the attention projections, A the attention output, O a block output, G/U the gate and
/// up projections, M the gated product.
enum class Buf : std::uint8_t { X, H, Q, K, V, A, O, G, U, M };
inline constexpr int kNumBufs = 10;
const char* to_string(Buf b) noexcept;

enum class NormKind : std::uint8_t { RMS, Layer };
/// How RoPE pairs a head's dimensions: Pairs rotates (x[2i], x[2i+1]) (llama.cpp's "norm"
/// RoPE: the GGUF converter permuted Llama's Q/K rows for it), Halves rotates (x[i],
/// x[i + n_rot/2]) (GPT-NeoX style: Qwen2, Phi-3, Gemma).
enum class RopeStyle : std::uint8_t { Pairs, Halves };
/// The gate activation of a gated MLP: silu(g) * u (SwiGLU) or gelu_tanh(g) * u (GeGLU).
enum class GluAct : std::uint8_t { SiLU, GeluTanh };

struct RopeSpec {
  RopeStyle style = RopeStyle::Pairs;
  int n_rot = 0;            ///< dimensions rotated per head (partial rotary when < head_dim)
  float theta = 10000.0f;   ///< base
  float pos_scale = 1.0f;   ///< linear scaling: angle of position p uses p * pos_scale
  /// Per-frequency inverse factors (n_rot / 2 values, llama3 scaling: rope_freqs.weight), or empty.
  std::vector<float> freq_div;
  /// inv_freq[i] = theta^(-2i/n_rot) / freq_div[i] * (1 / pos_scale applied to positions).
  std::vector<float> inv_freq() const;
  bool operator==(const RopeSpec&) const = default;
};

struct AttnSpec {
  float scale = 1.0f;    ///< multiplies q . k
  int window = 0;        ///< sliding window: keys at positions > pos - window (0: all, causal)
  float softcap = 0.0f;  ///< scores -> softcap * tanh(score / softcap) (0: none)
  bool operator==(const AttnSpec&) const = default;
};

enum class OpKind : std::uint8_t {
  Norm,       ///< dst = norm(src) * w (+ b): RMSNorm or LayerNorm over the row
  HeadNorm,   ///< src = rmsnorm(src) * w per head of head_dim values (Q/K norm), in place
  Linear,     ///< dsts = src . W^T (+ bias); W's rows split over the dsts in order (fused QKV / gate-up)
  Rope,       ///< rotate every head of src (Q or K) in place, at the tokens' positions
  Attention,  ///< write K, V of the step into the layer's cache, then A = attention(Q)
  Glu,        ///< M = act(G) * U
  Add,        ///< dst += src (residual)
};
const char* to_string(OpKind k) noexcept;

struct Op {
  OpKind kind = OpKind::Norm;
  Buf src = Buf::X;
  std::array<Buf, 3> dst{Buf::H, Buf::H, Buf::H};
  int n_dst = 1;
  WeightView w;     ///< Norm / HeadNorm weight (f32), Linear matrix
  WeightView bias;  ///< LayerNorm bias or Linear bias (f32), optional
  NormKind norm = NormKind::RMS;
  float eps = 1e-6f;
  GluAct act = GluAct::SiLU;
  int rope = -1;  ///< index into Network::ropes (Rope)
  int attn = -1;  ///< index into Network::attns (Attention)
};

struct LayerProgram {
  std::vector<Op> ops;
};

struct Network {
  std::string family;  ///< the family file that described it ("llama", "gemma3", ...)
  int d_model = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, d_ff = 0, vocab = 0;
  WeightView tok_embd;       ///< [vocab, d_model]
  float embed_scale = 1.0f;  ///< Gemma: sqrt(d_model)
  std::vector<LayerProgram> layers;
  Op final_norm;             ///< a Norm op X -> H over the logit rows
  WeightView output;         ///< [vocab, d_model] (tok_embd when tied)
  float final_softcap = 0.0f;
  std::vector<RopeSpec> ropes;
  std::vector<AttnSpec> attns;

  /// Values per token of buffer b.
  std::int64_t width(Buf b) const noexcept;
  /// Throws InvalidModel when an op is malformed (a buffer width that does not match a
  /// weight, a Linear whose rows do not split over its outputs, a bad index). Run once at load.
  void validate() const;
};

}  // namespace vireo::detail
