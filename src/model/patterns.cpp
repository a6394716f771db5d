// match_decoder_stack: walks each layer's ops against the decoder block's sequence.
#include "model/patterns.hpp"

#include <fmt/format.h>

#include <cmath>

#include "vireo/error.hpp"

namespace vireo::detail {
namespace {

/// Rows [r0, r0 + n) of a matrix (or values of a vector) as a view of their own.
WeightView slice(const WeightView& w, std::int64_t r0, std::int64_t n) {
  if (!w) return w;
  WeightView v = w;
  if (w.rows == 1) {  // a bias vector: values [r0, r0 + n)
    v.data = w.data + std::size_t(r0) * sizeof(float);
    v.cols = n;
  } else {
    v.data = w.row(r0);
    v.rows = n;
  }
  return v;
}

class Matcher {
 public:
  Matcher(const Network& net, const char* who, int layer) : net_(net), who_(who), layer_(layer) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::Unsupported, fmt::format("{} cannot run the {} network: layer {}: {}", who_, net_.family,
                                                    layer_, what));
  }
  const Op& next(const std::vector<Op>& ops, OpKind kind) {
    if (i_ >= ops.size()) fail(fmt::format("expected a {} op after the last one", to_string(kind)));
    const Op& op = ops[i_++];
    if (op.kind != kind)
      fail(fmt::format("op {} is {} where the fused block has {}", i_ - 1, to_string(op.kind), to_string(kind)));
    return op;
  }
  void norm(const std::vector<Op>& ops, WeightView* w) {
    const Op& op = next(ops, OpKind::Norm);
    if (op.norm != NormKind::RMS || op.bias || op.src != Buf::X || op.dst[0] != Buf::H)
      fail("a norm that is not an RMSNorm of the residual stream");
    *w = op.w;
  }
  /// Linear ops from `src` whose outputs are exactly `want`, in order, fused or separate.
  void linears(const std::vector<Op>& ops, Buf src, std::initializer_list<std::pair<Buf, WeightView*>> want,
               std::initializer_list<WeightView*> biases = {}) {
    std::size_t k = 0;
    auto bias_of = [&](std::size_t idx) { return idx < biases.size() ? biases.begin()[idx] : nullptr; };
    while (k < want.size()) {
      const Op& op = next(ops, OpKind::Linear);
      if (op.src != src) fail(fmt::format("a linear op reads {} where {} was expected", to_string(op.src), to_string(src)));
      std::int64_t r0 = 0;
      for (int j = 0; j < op.n_dst; ++j, ++k) {
        if (k >= want.size() || op.dst[std::size_t(j)] != want.begin()[k].first)
          fail(fmt::format("a linear op writes {} out of the block's order", to_string(op.dst[std::size_t(j)])));
        const std::int64_t n = net_.width(op.dst[std::size_t(j)]);
        *want.begin()[k].second = slice(op.w, r0, n);
        if (op.bias) {
          WeightView* b = bias_of(k);
          if (!b) fail(fmt::format("a bias on {}", to_string(op.dst[std::size_t(j)])));
          *b = slice(op.bias, r0, n);
        }
        r0 += n;
      }
    }
  }
  void done(const std::vector<Op>& ops) const {
    if (i_ != ops.size()) fail(fmt::format("{} ops more than the fused block has", ops.size() - i_));
  }

 private:
  const Network& net_;
  const char* who_;
  int layer_;
  std::size_t i_ = 0;
};

}  // namespace

Weights match_decoder_stack(const Network& net, const char* who) {
  auto fail = [&](const std::string& what) {
    throw Error(ErrorCode::Unsupported, fmt::format("{} cannot run the {} network: {}", who, net.family, what));
  };
  if (net.embed_scale != 1.0f) fail("the embedding scale is not implemented");
  if (net.final_softcap != 0.0f) fail("logit soft-capping is not implemented");
  if (net.final_norm.norm != NormKind::RMS || net.final_norm.bias) fail("the final norm is not an RMSNorm");
  Weights w;
  w.tok_embd = net.tok_embd;
  w.output_norm = net.final_norm.w;
  w.output = net.output;
  int rope = -1, attn = -1;
  for (std::size_t l = 0; l < net.layers.size(); ++l) {
    const std::vector<Op>& ops = net.layers[l].ops;
    Matcher m(net, who, int(l));
    LayerWeights L;
    m.norm(ops, &L.attn_norm);
    m.linears(ops, Buf::H, {{Buf::Q, &L.wq}, {Buf::K, &L.wk}, {Buf::V, &L.wv}}, {&L.bq, &L.bk, &L.bv});
    for (Buf b : {Buf::Q, Buf::K}) {
      const Op& op = m.next(ops, OpKind::Rope);
      if (op.src != b) m.fail("RoPE is not applied to Q then K");
      if (rope >= 0 && op.rope != rope) m.fail("layers use different RoPE settings");
      rope = op.rope;
    }
    const Op& at = m.next(ops, OpKind::Attention);
    if (attn >= 0 && at.attn != attn) m.fail("layers use different attention settings");
    attn = at.attn;
    if (at.src != Buf::Q || at.dst[0] != Buf::A) m.fail("attention does not read Q and write A");
    m.linears(ops, Buf::A, {{Buf::O, &L.wo}});
    if (const Op& add = m.next(ops, OpKind::Add); add.src != Buf::O || add.dst[0] != Buf::X)
      m.fail("the attention output is not added to the residual stream");
    m.norm(ops, &L.ffn_norm);
    m.linears(ops, Buf::H, {{Buf::G, &L.w_gate}, {Buf::U, &L.w_up}});
    if (const Op& g = m.next(ops, OpKind::Glu); g.act != GluAct::SiLU || g.dst[0] != Buf::M)
      m.fail("the MLP activation is not SwiGLU");
    m.linears(ops, Buf::M, {{Buf::O, &L.w_down}});
    if (const Op& add = m.next(ops, OpKind::Add); add.src != Buf::O || add.dst[0] != Buf::X)
      m.fail("the MLP output is not added to the residual stream");
    m.done(ops);
    w.layers.push_back(L);
  }
  if (rope >= 0) {
    const RopeSpec& r = net.ropes[std::size_t(rope)];
    if (r.style != RopeStyle::Pairs) fail("GPT-NeoX (halves) RoPE is not implemented");
    if (r.n_rot != net.head_dim) fail("partial RoPE is not implemented");
    if (r.pos_scale != 1.0f) fail("linear RoPE scaling is not implemented");
    w.rope_freqs = r.freq_div;
  }
  if (attn >= 0) {
    const AttnSpec& a = net.attns[std::size_t(attn)];
    if (a.window != 0) fail("sliding-window attention is not implemented");
    if (a.softcap != 0.0f) fail("attention soft-capping is not implemented");
    if (std::fabs(a.scale * std::sqrt(float(net.head_dim)) - 1.0f) > 1e-6f)
      fail("an attention scale other than 1 / sqrt(head_dim) is not implemented");
  }
  return w;
}

}  // namespace vireo::detail
