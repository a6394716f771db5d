// Phi-3 / Phi-4-mini: fused QKV (attn_qkv) and fused gate/up (ffn_up of 2 d_ff rows, gate
// first) projections, GPT-NeoX RoPE (partial when rope.dimension_count < head_dim), optional
// sliding window. The 128k variants' longrope scaling is refused (read_rope).
#include "model/arch/arch.hpp"

namespace vireo::detail {

Network describe_phi3(const ArchReader& r, ModelConfig& cfg) {
  return describe_decoder_stack(r, cfg,
                                {.name = "phi3", .default_eps = 1e-5f, .rope = RopeStyle::Halves, .sliding_window = true});
}

}  // namespace vireo::detail
