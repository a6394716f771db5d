// Qwen2 / Qwen2.5: the Llama block with biases on Q, K and V and GPT-NeoX RoPE (the
// converter does not permute Q/K: RoPE rotates the two halves of each head).
#include "model/arch/arch.hpp"

namespace vireo::detail {

Network describe_qwen2(const ArchReader& r, ModelConfig& cfg) {
  const Hparams h = read_hparams(r, 1e-6f);
  Network net = make_network("qwen2", h);
  net.ropes.push_back(read_rope(r, h, RopeStyle::Halves));
  net.attns.push_back({.scale = 1.0f / std::sqrt(float(h.head_dim))});
  for (int l = 0; l < h.n_layers; ++l)
    add_decoder_block(net.layers[std::size_t(l)], read_block(r, h, l), h.eps, 0, 0, GluAct::SiLU);
  bool tied = false;
  read_embeddings(r, h, net, &tied);
  fill_config(cfg, net.family, h, tied);
  return net;
}

}  // namespace vireo::detail
