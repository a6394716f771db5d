// Phi-3 / Phi-4-mini: fused QKV (attn_qkv) and fused gate/up (ffn_up of 2 d_ff rows, gate
// first) projections, GPT-NeoX RoPE (partial when rope.dimension_count < head_dim), optional
// sliding window. The 128k variants' longrope scaling is refused (read_rope).
#include "model/arch/arch.hpp"

namespace vireo::detail {

Network describe_phi3(const ArchReader& r, ModelConfig& cfg) {
  const Hparams h = read_hparams(r, 1e-5f);
  Network net = make_network("phi3", h);
  net.ropes.push_back(read_rope(r, h, RopeStyle::Halves));
  net.attns.push_back({.scale = 1.0f / std::sqrt(float(h.head_dim)),
                       .window = r.get_int("attention.sliding_window", 0, 1 << 30, 0)});
  for (int l = 0; l < h.n_layers; ++l)
    add_decoder_block(net.layers[std::size_t(l)], read_block(r, h, l), h.eps, 0, 0, GluAct::SiLU);
  bool tied = false;
  read_embeddings(r, h, net, &tied);
  fill_config(cfg, net.family, h, tied);
  return net;
}

}  // namespace vireo::detail
