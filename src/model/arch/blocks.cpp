// The op builders the family files share, the common pre-norm decoder block, and a whole
// network of those blocks (describe_decoder_stack).
#include "model/arch/arch.hpp"

namespace vireo::detail {

Op norm_op(Buf src, Buf dst, WeightView w, float eps) {
  Op op;
  op.kind = OpKind::Norm;
  op.src = src;
  op.dst = {dst, dst, dst};
  op.w = w;
  op.eps = eps;
  return op;
}

Op linear_op(Buf src, std::initializer_list<Buf> dsts, WeightView w, WeightView bias) {
  Op op;
  op.kind = OpKind::Linear;
  op.src = src;
  op.n_dst = int(dsts.size());
  int i = 0;
  for (Buf b : dsts) op.dst[std::size_t(i++)] = b;
  op.w = w;
  op.bias = bias;
  return op;
}

Op simple_op(OpKind kind, Buf src, Buf dst) {
  Op op;
  op.kind = kind;
  op.src = src;
  op.dst = {dst, dst, dst};
  return op;
}

void add_decoder_block(LayerProgram& layer, const BlockWeights& w, float eps, int rope, int attn, GluAct act) {
  auto& ops = layer.ops;
  ops.push_back(norm_op(Buf::X, Buf::H, w.attn_norm, eps));
  if (w.wqkv) {
    ops.push_back(linear_op(Buf::H, {Buf::Q, Buf::K, Buf::V}, w.wqkv, w.bq));
  } else {
    ops.push_back(linear_op(Buf::H, {Buf::Q}, w.wq, w.bq));
    ops.push_back(linear_op(Buf::H, {Buf::K}, w.wk, w.bk));
    ops.push_back(linear_op(Buf::H, {Buf::V}, w.wv, w.bv));
  }
  Op rq = simple_op(OpKind::Rope, Buf::Q, Buf::Q), rk = simple_op(OpKind::Rope, Buf::K, Buf::K);
  rq.rope = rk.rope = rope;
  ops.push_back(rq);
  ops.push_back(rk);
  Op at = simple_op(OpKind::Attention, Buf::Q, Buf::A);
  at.attn = attn;
  ops.push_back(at);
  ops.push_back(linear_op(Buf::A, {Buf::O}, w.wo));
  ops.push_back(simple_op(OpKind::Add, Buf::O, Buf::X));
  ops.push_back(norm_op(Buf::X, Buf::H, w.ffn_norm, eps));
  if (w.w_gate_up) {
    ops.push_back(linear_op(Buf::H, {Buf::G, Buf::U}, w.w_gate_up));
  } else {
    ops.push_back(linear_op(Buf::H, {Buf::G}, w.w_gate));
    ops.push_back(linear_op(Buf::H, {Buf::U}, w.w_up));
  }
  Op g = simple_op(OpKind::Glu, Buf::G, Buf::M);
  g.act = act;
  ops.push_back(g);
  ops.push_back(linear_op(Buf::M, {Buf::O}, w.w_down));
  ops.push_back(simple_op(OpKind::Add, Buf::O, Buf::X));
}

Network describe_decoder_stack(const ArchReader& r, ModelConfig& cfg, const DecoderFamily& f) {
  const Hparams h = read_hparams(r, f.default_eps);
  Network net = make_network(f.name, h);
  net.ropes.push_back(read_rope(r, h, f.rope));
  net.attns.push_back({.scale = 1.0f / std::sqrt(float(h.head_dim)),
                       .window = f.sliding_window ? r.get_int("attention.sliding_window", 0, 1 << 30, 0) : 0});
  for (int l = 0; l < h.n_layers; ++l)
    add_decoder_block(net.layers[std::size_t(l)], read_block(r, h, l), h.eps, 0, 0, GluAct::SiLU);
  bool tied = false;
  read_embeddings(r, h, net, &tied);
  fill_config(cfg, net.family, h, tied);
  return net;
}

}  // namespace vireo::detail
