// Llama (Llama 2 / 3.x, SmolLM2, TinyLlama): pre-norm blocks of grouped-query attention and
// a SwiGLU MLP, RMSNorm, untied or tied LM head. llama.cpp's converter permutes Q/K rows so
// RoPE rotates adjacent pairs. RoPE scaling: none, linear, llama3 (rope_freqs.weight).
#include "model/arch/arch.hpp"

namespace vireo::detail {

Network describe_llama(const ArchReader& r, ModelConfig& cfg) {
  return describe_decoder_stack(r, cfg,
                                {.name = "llama", .default_eps = 1e-5f, .rope = RopeStyle::Pairs});
}

Network describe_random_llama(const ModelConfig& cfg, const std::vector<BlockWeights>& blocks, WeightView tok_embd,
                              WeightView output_norm, WeightView output) {
  Hparams h;
  h.n_layers = cfg.n_layers;
  h.d_model = cfg.d_model;
  h.n_heads = cfg.n_heads;
  h.n_kv_heads = cfg.n_kv_heads;
  h.head_dim = h.n_rot = cfg.head_dim;
  h.d_ff = cfg.d_ff;
  h.vocab = cfg.vocab_size;
  h.eps = cfg.rms_eps;
  h.rope_theta = cfg.rope_theta;
  Network net = make_network("llama", h);
  net.ropes.push_back({.style = RopeStyle::Pairs, .n_rot = h.head_dim, .theta = h.rope_theta});
  net.attns.push_back({.scale = 1.0f / std::sqrt(float(h.head_dim))});
  for (int l = 0; l < h.n_layers; ++l)
    add_decoder_block(net.layers[std::size_t(l)], blocks[std::size_t(l)], h.eps, 0, 0, GluAct::SiLU);
  net.tok_embd = tok_embd;
  net.output = output;
  net.final_norm = norm_op(Buf::X, Buf::H, output_norm, h.eps);
  return net;
}

}  // namespace vireo::detail
