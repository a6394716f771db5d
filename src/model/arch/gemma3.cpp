// Gemma 3 (text): the embedding scaled by sqrt(d_model); per layer
//   H = norm(X); Q, K, V = H W; Q, K RMS-normed per head; rope(Q), rope(K);
//   A = attention(Q, K, V); X += post_attention_norm(A W_o);
//   H = norm(X); M = gelu_tanh(H W_gate) * (H W_up); X += post_ffw_norm(M W_down)
// Five of every six layers attend within a sliding window and rotate with base 10000; every
// sixth layer attends to the whole context with rope.freq_base (llama.cpp's swa pattern 6).
// GPT-NeoX RoPE; q . k scaled by 1 / sqrt(head_dim). GGUF norm weights already hold Gemma's
// (1 + w) (llama.cpp's converter adds the 1), so every norm is a plain RMSNorm here.
#include <cmath>

#include "model/arch/arch.hpp"

namespace vireo::detail {

Network describe_gemma3(const ArchReader& r, ModelConfig& cfg) {
  const Hparams h = read_hparams(r, 1e-6f);
  Network net = make_network("gemma3", h);
  net.embed_scale = std::sqrt(float(h.d_model));
  if (r.has_key("attn_logit_softcapping") || r.has_key("final_logit_softcapping"))
    r.unsupported("logit soft-capping in a gemma3 file");
  // The larger Gemma 3 models scale the global layers' RoPE linearly (read_rope); the local
  // layers keep base 10000 unscaled.
  RopeSpec global = read_rope(r, h, RopeStyle::Halves);
  RopeSpec local = global;
  local.theta = 10000.0f;
  local.pos_scale = 1.0f;
  local.freq_div.clear();
  net.ropes = {local, global};
  const float scale = 1.0f / std::sqrt(float(h.head_dim));
  const int window = r.get_int("attention.sliding_window", 1, 1 << 30);
  net.attns = {{.scale = scale, .window = window}, {.scale = scale}};
  const std::int64_t d = h.d_model, qd = std::int64_t(h.n_heads) * h.head_dim,
                     kvd = std::int64_t(h.n_kv_heads) * h.head_dim;
  for (int l = 0; l < h.n_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    const int kind = (l + 1) % 6 == 0 ? 1 : 0;  // 0: local (sliding window), 1: global
    auto& ops = net.layers[std::size_t(l)].ops;
    ops.push_back(norm_op(Buf::X, Buf::H, r.vector(b + "attn_norm.weight", d), h.eps));
    ops.push_back(linear_op(Buf::H, {Buf::Q}, r.matrix(b + "attn_q.weight", qd, d)));
    ops.push_back(linear_op(Buf::H, {Buf::K}, r.matrix(b + "attn_k.weight", kvd, d)));
    ops.push_back(linear_op(Buf::H, {Buf::V}, r.matrix(b + "attn_v.weight", kvd, d)));
    for (auto [buf, name] : {std::pair{Buf::Q, "attn_q_norm.weight"}, std::pair{Buf::K, "attn_k_norm.weight"}}) {
      Op hn = simple_op(OpKind::HeadNorm, buf, buf);
      hn.w = r.vector(b + name, h.head_dim);
      hn.eps = h.eps;
      ops.push_back(hn);
    }
    for (Buf buf : {Buf::Q, Buf::K}) {
      Op ro = simple_op(OpKind::Rope, buf, buf);
      ro.rope = kind;
      ops.push_back(ro);
    }
    Op at = simple_op(OpKind::Attention, Buf::Q, Buf::A);
    at.attn = kind;
    ops.push_back(at);
    ops.push_back(linear_op(Buf::A, {Buf::O}, r.matrix(b + "attn_output.weight", d, qd)));
    ops.push_back(norm_op(Buf::O, Buf::O, r.vector(b + "post_attention_norm.weight", d), h.eps));
    ops.push_back(simple_op(OpKind::Add, Buf::O, Buf::X));
    ops.push_back(norm_op(Buf::X, Buf::H, r.vector(b + "ffn_norm.weight", d), h.eps));
    ops.push_back(linear_op(Buf::H, {Buf::G}, r.matrix(b + "ffn_gate.weight", h.d_ff, d)));
    ops.push_back(linear_op(Buf::H, {Buf::U}, r.matrix(b + "ffn_up.weight", h.d_ff, d)));
    Op g = simple_op(OpKind::Glu, Buf::G, Buf::M);
    g.act = GluAct::GeluTanh;
    ops.push_back(g);
    ops.push_back(linear_op(Buf::M, {Buf::O}, r.matrix(b + "ffn_down.weight", d, h.d_ff)));
    ops.push_back(norm_op(Buf::O, Buf::O, r.vector(b + "post_ffw_norm.weight", d), h.eps));
    ops.push_back(simple_op(OpKind::Add, Buf::O, Buf::X));
  }
  bool tied = false;
  read_embeddings(r, h, net, &tied);
  fill_config(cfg, net.family, h, tied);
  return net;
}

}  // namespace vireo::detail
