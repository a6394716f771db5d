// Mistral: the Llama block with sliding-window attention (attention.sliding_window keys; a
// file without the key attends to the whole context).
#include "model/arch/arch.hpp"

namespace vireo::detail {

Network describe_mistral(const ArchReader& r, ModelConfig& cfg) {
  const Hparams h = read_hparams(r, 1e-5f);
  Network net = make_network("mistral", h);
  net.ropes.push_back(read_rope(r, h, RopeStyle::Pairs));
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
