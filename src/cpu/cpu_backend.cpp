// The CPU backend: the fp32 reference forward pass of a Llama-family decoder over a
// ForwardPlan. One pass per layer over all T tokens of the step (prefill chunks and decode
// tokens of many sequences alike): norm -> QKV -> RoPE -> write K/V to their slots ->
// paged causal attention -> output projection + residual -> norm -> SwiGLU FFN + residual.
// Only the rows that asked for logits go through the final norm and the vocab projection.
#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#include "cpu/ops.hpp"
#include "cpu/q8_dot.hpp"
#include "cpu/quant_dot.hpp"
#include "cpu/thread_pool.hpp"
#include "model/backend.hpp"
#include "vireo/error.hpp"

namespace vireo::detail {
namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend(const ModelConfig& cfg, const Weights& w, int n_threads, bool quantize_acts)
      : cfg_(cfg),
        w_(w),
        pool_(n_threads > 0 ? n_threads : int(std::max(1u, std::thread::hardware_concurrency()))),
        quantize_acts_(quantize_acts) {}

  DType kv_dtype() const noexcept override { return DType::F32; }
  std::unique_ptr<KVStorage> make_kv_storage(const KVGeometry& g) override {
    return std::make_unique<CpuKVStorage>(g);
  }
  std::size_t weight_bytes() const noexcept override { return w_.total_bytes(); }

  void forward(const ForwardPlan& plan, KVStorage& kv_base, Logits& out, const std::atomic<bool>* cancel) override {
    auto& kv = static_cast<CpuKVStorage&>(kv_base);
    const std::int64_t T = std::int64_t(plan.tokens.size());
    const int d = cfg_.d_model, hd = cfg_.head_dim, nh = cfg_.n_heads, nkv = cfg_.n_kv_heads;
    const std::int64_t qd = std::int64_t(nh) * hd, kvd = std::int64_t(nkv) * hd;

    std::vector<float> x(std::size_t(T * d)), xn(std::size_t(T * d));
    std::vector<float> q(std::size_t(T * qd)), k(std::size_t(T * kvd)), v(std::size_t(T * kvd));
    std::vector<float> att(std::size_t(T * qd)), proj(std::size_t(T * d));
    std::vector<float> gate(std::size_t(T * cfg_.d_ff)), up(std::size_t(T * cfg_.d_ff));

    for (std::int64_t t = 0; t < T; ++t) {
      const auto& e = w_.tok_embd;
      gguf::dequantize(e.type, e.row(plan.tokens[t]), x.data() + t * d, std::size_t(d));
    }
    const float* freq = w_.rope_freqs.empty() ? nullptr : w_.rope_freqs.data();
    cpu::Q8Acts qa;  // 8-bit activations (cpu_quantize_activations), reused by every matmul

    for (int l = 0; l < cfg_.n_layers; ++l) {
      if (cancel && cancel->load(std::memory_order_relaxed)) throw Error(ErrorCode::Cancelled, "forward cancelled");
      const LayerWeights& L = w_.layers[std::size_t(l)];
      rms(L.attn_norm, x.data(), T, xn.data());
      matmul({{&L.wq, q.data()}, {&L.wk, k.data()}, {&L.wv, v.data()}}, xn.data(), T, qa);
      if (L.bq) add_bias(q.data(), L.bq, T);
      if (L.bk) add_bias(k.data(), L.bk, T);
      if (L.bv) add_bias(v.data(), L.bv, T);
      cpu::rope(q.data(), T, nh, hd, plan.positions.data(), cfg_.rope_theta, freq);
      cpu::rope(k.data(), T, nkv, hd, plan.positions.data(), cfg_.rope_theta, freq);
      float* kc = kv.k(l);
      float* vc = kv.v(l);
      cpu::AttentionArgs aa{q.data(), kc, vc, att.data(), T, nh, nkv, hd, plan.block_size, plan.positions.data(),
                            plan.seq_of.data(), plan.block_indptr.data(), plan.block_ids.data()};
      if (kv.geometry().int8) {
        // KVPrecision::Int8: each K / V row of each KV head quantized on its own.
        std::int8_t *k8 = kv.k8(l), *v8 = kv.v8(l);
        float *ks = kv.k_scale(l), *vs = kv.v_scale(l);
        for (std::int64_t t = 0; t < T; ++t)
          for (int h = 0; h < nkv; ++h) {
            const std::int64_t row = plan.slots[t] * nkv + h, src = t * kvd + std::int64_t(h) * hd;
            cpu::quantize_kv_row(k.data() + src, hd, k8 + row * hd, ks + row);
            cpu::quantize_kv_row(v.data() + src, hd, v8 + row * hd, vs + row);
          }
        aa.k8 = k8;
        aa.v8 = v8;
        aa.k_scale = ks;
        aa.v_scale = vs;
      } else {
        for (std::int64_t t = 0; t < T; ++t) {
          std::memcpy(kc + plan.slots[t] * kvd, k.data() + t * kvd, sizeof(float) * std::size_t(kvd));
          std::memcpy(vc + plan.slots[t] * kvd, v.data() + t * kvd, sizeof(float) * std::size_t(kvd));
        }
      }
      cpu::attention(aa, pool_);
      matmul({{&L.wo, proj.data()}}, att.data(), T, qa);
      for (std::size_t i = 0; i < x.size(); ++i) x[i] += proj[i];

      rms(L.ffn_norm, x.data(), T, xn.data());
      matmul({{&L.w_gate, gate.data()}, {&L.w_up, up.data()}}, xn.data(), T, qa);
      cpu::silu_mul(gate.data(), up.data(), std::int64_t(gate.size()));
      matmul({{&L.w_down, proj.data()}}, gate.data(), T, qa);
      for (std::size_t i = 0; i < x.size(); ++i) x[i] += proj[i];
    }

    const std::int64_t R = std::int64_t(plan.logit_rows.size());
    if (R == 0) return;
    std::vector<float> sel(std::size_t(R * d));
    for (std::int64_t r = 0; r < R; ++r)
      std::memcpy(sel.data() + r * d, x.data() + std::int64_t(plan.logit_rows[r]) * d, sizeof(float) * std::size_t(d));
    std::vector<float> seln(sel.size());
    rms(w_.output_norm, sel.data(), R, seln.data());
    matmul({{&w_.output, out.mutable_data()}}, seln.data(), R, qa);
  }

 private:
  static constexpr std::int64_t kQ8MaxTokens = 8;  // steps up to this many tokens (decode)

  // y_i = x . W_i^T for the matrices that read x [T, cols] (one fork / join for all of them
  // in decode steps). With cpu_quantize_activations, a decode step over quantized weights
  // quantizes x once, into qa, and multiplies it with the integer kernels.
  void matmul(std::initializer_list<cpu::MatmulOut> outs, const float* x, std::int64_t T, cpu::Q8Acts& qa) {
    const std::int64_t cols = outs.begin()->w->cols;
    bool q8 = quantize_acts_ && T <= kQ8MaxTokens && cols % 32 == 0;
    for (const cpu::MatmulOut& o : outs) q8 = q8 && cpu::has_quant_dot(o.w->type);
    if (!q8) return cpu::matmul_many(outs, x, T, pool_);
    cpu::quantize_acts(x, T, cols, qa);
    cpu::q8_matmul_many(outs, qa, pool_);
  }

  void rms(const WeightView& g, const float* x, std::int64_t T, float* y) const {
    cpu::rms_norm(x, reinterpret_cast<const float*>(g.data), T, cfg_.d_model, cfg_.rms_eps, y);
  }
  static void add_bias(float* y, const WeightView& b, std::int64_t T) {
    const float* bb = reinterpret_cast<const float*>(b.data);
    for (std::int64_t t = 0; t < T; ++t)
      for (std::int64_t i = 0; i < b.cols; ++i) y[t * b.cols + i] += bb[i];
  }

  ModelConfig cfg_;
  const Weights& w_;
  cpu::ThreadPool pool_;
  bool quantize_acts_ = false;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const ModelConfig& cfg, const Weights& w, int n_threads,
                                          bool quantize_acts) {
  return std::make_unique<CpuBackend>(cfg, w, n_threads, quantize_acts);
}

}  // namespace vireo::detail
