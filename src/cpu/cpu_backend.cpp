// The CPU backend: the fp32 reference executor of a Network (model/network.hpp). One pass
// per op over all T tokens of the step (prefill chunks and decode tokens of many sequences
// alike), in the order the family described them; consecutive Linear ops that read the same
// buffer (Q, K, V; gate, up) run as one matmul_many (one fork / join in decode steps). Only
// the rows that asked for logits go through the final norm and the vocab projection.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "cpu/ops.hpp"
#include "cpu/q8_dot.hpp"
#include "cpu/quant_dot.hpp"
#include "cpu/thread_pool.hpp"
#include "model/backend.hpp"
#include "model/observer.hpp"
#include "vireo/error.hpp"

namespace vireo::detail {
namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend(const Network& net, int n_threads, bool quantize_acts)
      : net_(net),
        pool_(n_threads > 0 ? n_threads : int(std::max(1u, std::thread::hardware_concurrency()))),
        quantize_acts_(quantize_acts) {
    for (const RopeSpec& r : net_.ropes) inv_freq_.push_back(r.inv_freq());
    std::size_t bytes = net_.tok_embd.bytes() + (net_.output.data != net_.tok_embd.data ? net_.output.bytes() : 0) +
                        net_.final_norm.w.bytes();
    for (const LayerProgram& L : net_.layers)
      for (const Op& op : L.ops) bytes += (op.w ? op.w.bytes() : 0) + (op.bias ? op.bias.bytes() : 0);
    weight_bytes_ = bytes;
  }

  DType kv_dtype() const noexcept override { return DType::F32; }
  std::unique_ptr<KVStorage> make_kv_storage(const KVGeometry& g) override {
    return std::make_unique<CpuKVStorage>(g);
  }
  std::size_t weight_bytes() const noexcept override { return weight_bytes_; }
  void set_linear_observer(LinearObserver* obs) noexcept override { observer_ = obs; }
  bool supports_trees() const noexcept override { return true; }
  bool supports_hidden() const noexcept override { return true; }

  void forward(const ForwardPlan& plan, KVStorage& kv_base, Logits& out, const Cancel& cancel) override {
    auto& kv = static_cast<CpuKVStorage&>(kv_base);
    const std::int64_t T = std::int64_t(plan.tokens.size());
    if (T <= kChunkTokens || cancel.call == nullptr) {
      run_tokens(plan, kv, out.mutable_data(), out.mutable_hidden(), cancel);
      return;
    }
    // A long step (a prefill) whose caller may cancel it runs in chunks through the whole
    // network, each chunk's tokens attending to the K/V the earlier chunks wrote: the same
    // rows, the same arithmetic, and a cancellation check at most one op of one chunk away.
    // Without a per-call flag the step runs whole: each weight panel is then dequantized
    // once per step instead of once per chunk, which is measurably faster.
    std::size_t row = 0;
    for (std::int64_t t0 = 0; t0 < T; t0 += kChunkTokens) {
      const ForwardPlan sub = slice(plan, t0, std::min(T, t0 + kChunkTokens));
      float* hidden = out.mutable_hidden();
      run_tokens(sub, kv, out.mutable_data() + row * std::size_t(net_.vocab),
                 hidden ? hidden + row * std::size_t(net_.d_model) : nullptr, cancel);
      row += sub.logit_rows.size();
    }
  }

 private:
  /// Tokens per chunk of a long step: large enough that the matmuls stay efficient, small
  /// enough that one op of one chunk takes a few tens of milliseconds on a small model.
  static constexpr std::int64_t kChunkTokens = 256;

  /// Tokens [t0, t1) of `plan` as a plan of their own (per-sequence arrays whole; the logit
  /// rows that fall in the range, renumbered).
  static ForwardPlan slice(const ForwardPlan& plan, std::int64_t t0, std::int64_t t1) {
    ForwardPlan s;
    auto cut = [&](const auto& v, auto& dst) {
      if (!v.empty()) dst.assign(v.begin() + t0, v.begin() + t1);
    };
    cut(plan.tokens, s.tokens);
    cut(plan.positions, s.positions);
    cut(plan.slots, s.slots);
    cut(plan.seq_of, s.seq_of);
    cut(plan.kv_pos, s.kv_pos);
    cut(plan.tree_base, s.tree_base);
    cut(plan.tree_mask, s.tree_mask);
    s.ctx_len = plan.ctx_len;
    s.block_indptr = plan.block_indptr;
    s.block_ids = plan.block_ids;
    s.block_size = plan.block_size;
    for (std::int32_t r : plan.logit_rows)
      if (r >= t0 && r < t1) s.logit_rows.push_back(std::int32_t(r - t0));
    return s;
  }

  /// The network over all of plan's tokens; logits rows to `logits`, final hidden states
  /// to `hidden` when it is not null.
  void run_tokens(const ForwardPlan& plan, CpuKVStorage& kv, float* logits, float* hidden, const Cancel& cancel) {
    const std::int64_t T = std::int64_t(plan.tokens.size());
    const std::int64_t d = net_.d_model;
    Step st{plan, kv, T, {}, {}};
    for (int b = 0; b < kNumBufs; ++b) st.buf[std::size_t(b)].resize(std::size_t(T * net_.width(Buf(b))));
    float* x = st.data(Buf::X);
    for (std::int64_t t = 0; t < T; ++t) {
      const auto& e = net_.tok_embd;
      gguf::dequantize(e.type, e.row(plan.tokens[std::size_t(t)]), x + t * d, std::size_t(d));
      if (net_.embed_scale != 1.0f)
        for (std::int64_t i = 0; i < d; ++i) x[t * d + i] *= net_.embed_scale;
    }
    for (std::size_t l = 0; l < net_.layers.size(); ++l) {
      const std::vector<Op>& ops = net_.layers[l].ops;
      for (std::size_t i = 0; i < ops.size();) {
        cancel.check();
        i = run_op(st, int(l), ops, i);
      }
    }

    const std::int64_t R = std::int64_t(plan.logit_rows.size());
    if (R == 0) return;
    std::vector<float> sel(std::size_t(R * d)), seln(std::size_t(R * d));
    for (std::int64_t r = 0; r < R; ++r)
      std::memcpy(sel.data() + r * d, x + std::int64_t(plan.logit_rows[std::size_t(r)]) * d, sizeof(float) * std::size_t(d));
    norm(net_.final_norm, sel.data(), R, seln.data());
    if (hidden) std::memcpy(hidden, seln.data(), sizeof(float) * seln.size());
    matmul({{&net_.output, logits}}, seln.data(), R, st.qa);
    if (net_.final_softcap > 0.0f) {
      const float c = net_.final_softcap;
      float* o = logits;
      for (std::int64_t i = 0, n = R * net_.vocab; i < n; ++i) o[i] = c * std::tanh(o[i] / c);
    }
  }

  static constexpr std::int64_t kQ8MaxTokens = 8;  // steps up to this many tokens (decode)

  struct Step {
    const ForwardPlan& plan;
    CpuKVStorage& kv;
    std::int64_t T;
    std::array<std::vector<float>, kNumBufs> buf;
    cpu::Q8Acts qa;  // 8-bit activations (cpu_quantize_activations), reused by every matmul
    float* data(Buf b) { return buf[std::size_t(b)].data(); }
  };

  /// Run ops[i] (and the Linear ops after it that read the same buffer); returns the next index.
  std::size_t run_op(Step& st, int layer, const std::vector<Op>& ops, std::size_t i) {
    const Op& op = ops[i];
    const std::int64_t T = st.T;
    switch (op.kind) {
      case OpKind::Norm:
        norm(op, st.data(op.src), T, st.data(op.dst[0]));
        return i + 1;
      case OpKind::HeadNorm: {
        float* p = st.data(op.src);
        const std::int64_t rows = T * net_.width(op.src) / net_.head_dim;
        cpu::rms_norm(p, reinterpret_cast<const float*>(op.w.data), rows, net_.head_dim, op.eps, p);
        return i + 1;
      }
      case OpKind::Linear: {
        std::size_t j = i;
        std::vector<WeightView> views;  // each output's rows of its op's matrix
        std::vector<float*> ys;
        std::vector<const Op*> group;
        views.reserve(9);
        for (; j < ops.size() && ops[j].kind == OpKind::Linear && ops[j].src == op.src; ++j) {
          const Op& o = ops[j];
          if (observer_) observer_->on_linear(layer, o, st.data(o.src), T, net_.width(o.src));
          std::int64_t r0 = 0;
          for (int k = 0; k < o.n_dst; ++k) {
            const std::int64_t n = net_.width(o.dst[std::size_t(k)]);
            WeightView v = o.w;
            v.data = o.w.row(r0);
            v.rows = n;
            views.push_back(v);
            ys.push_back(st.data(o.dst[std::size_t(k)]));
            r0 += n;
          }
          group.push_back(&o);
        }
        std::vector<cpu::MatmulOut> outs;
        for (std::size_t k = 0; k < views.size(); ++k) outs.push_back({&views[k], ys[k]});
        matmul(outs, st.data(op.src), T, st.qa);
        for (const Op* o : group)
          if (o->bias) {
            const float* b = reinterpret_cast<const float*>(o->bias.data);
            std::int64_t off = 0;
            for (int k = 0; k < o->n_dst; ++k) {
              const std::int64_t n = net_.width(o->dst[std::size_t(k)]);
              float* y = st.data(o->dst[std::size_t(k)]);
              for (std::int64_t t = 0; t < T; ++t)
                for (std::int64_t c = 0; c < n; ++c) y[t * n + c] += b[off + c];
              off += n;
            }
          }
        return j;
      }
      case OpKind::Rope: {
        const RopeSpec& r = net_.ropes[std::size_t(op.rope)];
        cpu::rope_ex(st.data(op.src), T, int(net_.width(op.src) / net_.head_dim), net_.head_dim,
                     st.plan.positions.data(), inv_freq_[std::size_t(op.rope)].data(), r.n_rot,
                     r.style == RopeStyle::Halves, r.pos_scale);
        return i + 1;
      }
      case OpKind::Attention:
        attention(st, layer, op);
        return i + 1;
      case OpKind::Glu: {
        float* g = st.data(Buf::G);
        const float* u = st.data(Buf::U);
        const std::int64_t n = T * net_.d_ff;
        if (op.act == GluAct::SiLU) cpu::silu_mul(g, u, n);
        else cpu::gelu_tanh_mul(g, u, n);
        if (op.dst[0] != Buf::G) std::memcpy(st.data(op.dst[0]), g, sizeof(float) * std::size_t(n));
        return i + 1;
      }
      case OpKind::Add: {
        float* y = st.data(op.dst[0]);
        const float* s = st.data(op.src);
        for (std::int64_t k = 0, n = T * net_.width(op.dst[0]); k < n; ++k) y[k] += s[k];
        return i + 1;
      }
    }
    throw Error(ErrorCode::Internal, "CPU backend: unknown op");
  }

  /// Write the step's K and V rows of layer l into their cache slots, then attend.
  void attention(Step& st, int l, const Op& op) {
    const ForwardPlan& plan = st.plan;
    const int hd = net_.head_dim, nh = net_.n_heads, nkv = net_.n_kv_heads;
    const std::int64_t kvd = std::int64_t(nkv) * hd, T = st.T;
    const float *k = st.data(Buf::K), *v = st.data(Buf::V);
    CpuKVStorage& kv = st.kv;
    float* kc = kv.k(l);
    float* vc = kv.v(l);
    const AttnSpec& spec = net_.attns[std::size_t(op.attn)];
    cpu::AttentionArgs aa{st.data(op.src), kc, vc, st.data(op.dst[0]), T, nh, nkv, hd, plan.block_size,
                          plan.positions.data(), plan.seq_of.data(), plan.block_indptr.data(), plan.block_ids.data()};
    aa.scale = spec.scale;
    aa.window = spec.window;
    aa.softcap = spec.softcap;
    if (plan.has_trees()) {
      aa.kv_pos = plan.kv_pos.data();
      aa.tree_base = plan.tree_base.data();
      aa.tree_mask = plan.tree_mask.data();
    }
    if (kv.geometry().int8) {
      // KVPrecision::Int8: each K / V row of each KV head quantized on its own.
      std::int8_t *k8 = kv.k8(l), *v8 = kv.v8(l);
      float *ks = kv.k_scale(l), *vs = kv.v_scale(l);
      for (std::int64_t t = 0; t < T; ++t)
        for (int h = 0; h < nkv; ++h) {
          const std::int64_t row = plan.slots[std::size_t(t)] * nkv + h, src = t * kvd + std::int64_t(h) * hd;
          cpu::quantize_kv_row(k + src, hd, k8 + row * hd, ks + row);
          cpu::quantize_kv_row(v + src, hd, v8 + row * hd, vs + row);
        }
      aa.k8 = k8;
      aa.v8 = v8;
      aa.k_scale = ks;
      aa.v_scale = vs;
    } else {
      for (std::int64_t t = 0; t < T; ++t) {
        std::memcpy(kc + plan.slots[std::size_t(t)] * kvd, k + t * kvd, sizeof(float) * std::size_t(kvd));
        std::memcpy(vc + plan.slots[std::size_t(t)] * kvd, v + t * kvd, sizeof(float) * std::size_t(kvd));
      }
    }
    cpu::attention(aa, pool_);
  }

  // y_i = x . W_i^T for the matrices that read x [T, cols] (one fork / join for all of them
  // in decode steps). With cpu_quantize_activations, a decode step over quantized weights
  // quantizes x once, into qa, and multiplies it with the integer kernels.
  void matmul(std::span<const cpu::MatmulOut> outs, const float* x, std::int64_t T, cpu::Q8Acts& qa) {
    const std::int64_t cols = outs.front().w->cols;
    bool q8 = quantize_acts_ && T <= kQ8MaxTokens && cols % 32 == 0;
    for (const cpu::MatmulOut& o : outs) q8 = q8 && cpu::has_quant_dot(o.w->type);
    if (!q8) return cpu::matmul_many(outs, x, T, pool_);
    cpu::quantize_acts(x, T, cols, qa);
    cpu::q8_matmul_many(outs, qa, pool_);
  }
  void matmul(std::initializer_list<cpu::MatmulOut> outs, const float* x, std::int64_t T, cpu::Q8Acts& qa) {
    matmul(std::span<const cpu::MatmulOut>(outs.begin(), outs.size()), x, T, qa);
  }

  void norm(const Op& op, const float* x, std::int64_t T, float* y) const {
    const float* g = reinterpret_cast<const float*>(op.w.data);
    const std::int64_t n = net_.width(op.src);
    if (op.norm == NormKind::RMS) cpu::rms_norm(x, g, T, n, op.eps, y);
    else cpu::layer_norm(x, g, op.bias ? reinterpret_cast<const float*>(op.bias.data) : nullptr, T, n, op.eps, y);
  }

  const Network& net_;
  cpu::ThreadPool pool_;
  bool quantize_acts_ = false;
  std::size_t weight_bytes_ = 0;
  std::vector<std::vector<float>> inv_freq_;  // per RoPE spec
  LinearObserver* observer_ = nullptr;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const Network& net, int n_threads, bool quantize_acts) {
  return std::make_unique<CpuBackend>(net, n_threads, quantize_acts);
}

}  // namespace vireo::detail
