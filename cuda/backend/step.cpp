// Step execution: the kernels of one forward step, the layer loop, on the backend's stream
// (eagerly, or under CUDA graph capture; graph_cache.hpp).
//
// Per layer: fused add+RMSNorm -> QKV matmul -> bias+RoPE+KV write -> attention (split-KV
// decode kernel for sequences with one new token, tensor-core FlashAttention for prefill
// chunks; fp32 mode uses the decode kernel for every token) -> Wo -> add+RMSNorm -> gate/up
// matmul -> SwiGLU -> Wdown. Matmuls with <= GEMV_MAX_TOKENS tokens use the GEMV kernel
// (gate/up fused with SwiGLU in gemv_swiglu), larger ones cuBLAS. The residual stream is
// fp32. Only the logit rows go through the final norm and the vocab projection (in chunks of
// kLogitChunk rows).
//
// A fused step (fused_step()) folds the attention RMSNorm, RoPE with the KV write, and the
// residual adds into the GEMVs (cuda::gemv_fused): 6 kernels per layer instead of 8.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "backend/backend.hpp"
#include "backend/limits.hpp"
#include "vireo/error.hpp"

namespace vireo::detail::cuda_backend {

void CudaBackend::matmul(const void* x, const Mat& w, void* y, bool y_f32, int n) {
  if (w.quant) {
    void* s = stream_->get();
    if (n > qgemv_max_tokens(w.fmt) && std::size_t(w.rows) * std::size_t(w.cols) * dtype_size(dt_) <= w_.deq.size()) {
      cuda::check(cuda::dequantize_q(dt_, w.qview(), w_.deq.get(), w.rows, w.cols, s), "dequantize");
      blas_->gemm(dt_, x, w_.deq.get(), y, y_f32, n, w.rows, w.cols);
      return;
    }
    // Decode, small batches, and the embedding-sized LM head (not worth a scratch copy):
    // GEMVs of up to GEMV_MAX_TOKENS tokens each.
    const std::size_t xs = std::size_t(w.cols) * dtype_size(dt_),
                      ys = std::size_t(w.rows) * (y_f32 ? 4 : dtype_size(dt_));
    for (int t0 = 0; t0 < n; t0 += cuda::GEMV_MAX_TOKENS)
      cuda::check(cuda::gemv_q(dt_, w.qview(), static_cast<const char*>(x) + std::size_t(t0) * xs,
                               static_cast<char*>(y) + std::size_t(t0) * ys, y_f32,
                               std::min(cuda::GEMV_MAX_TOKENS, n - t0), w.rows, w.cols, s),
                  "gemv (quantized)");
    return;
  }
  if (n <= cuda::GEMV_MAX_TOKENS)
    cuda::check(cuda::gemv(dt_, w.ptr(), x, y, y_f32, n, w.rows, w.cols, stream_->get()), "gemv");
  else
    blas_->gemm(dt_, x, w.ptr(), y, y_f32, n, w.rows, w.cols);
}

/// Up to how many tokens a quantized matmul runs as GEMVs of GEMV_MAX_TOKENS tokens, each
/// reading the quantized matrix once, rather than dequantizing it into w_.deq for cuBLAS
/// (which reads the quantized bytes, writes and reads 2 bytes per weight: ~4.6 bytes per
/// weight for Q4, ~5.1 for Q8_0). k GEMV groups read k * 0.56 (Q4) or k * 1.06 (Q8_0)
/// bytes per weight, so groups win in bytes up to ~64 (Q4) / ~32 (Q8_0) tokens; the
/// defaults, 32 and 16, leave room for the GEMV's dequantization instructions.
/// VIREO_QGEMV_MAX_TOKENS overrides both (8: dequantize for every step above the GEMV's).
int CudaBackend::qgemv_max_tokens(cuda::QFormat f) const noexcept {
  if (qgemv_max_env_ > 0) return qgemv_max_env_;
  return f == cuda::QFormat::Q8_0 ? 16 : 32;
}

/// Final norm of logit rows [c0, c0 + rows) (adding the last layer's FFN output) and the
/// vocab projection into ws_.logits.
void CudaBackend::project(const Step& st, int c0, int rows) {
  // A fused step has already added the last FFN output into the residual stream.
  cuda::check(cuda::rmsnorm(dt_, st.fused ? nullptr : ws_.tmp.get(), ws_.resid.as<float>(), w_.output_norm.as<float>(),
                            ws_.xn.get(), st.logit_rows + c0, rows, cfg_.d_model, cfg_.rms_eps, stream_->get()),
              "final rmsnorm");
  matmul(ws_.xn.get(), w_.output.ptr() ? w_.output : w_.tok_embd, ws_.logits.get(), true, rows);
}

/// Whether a step of n tokens runs the fused decode path: the attention RMSNorm folded into
/// the QKV GEMV, RoPE + KV write into its epilogue, the residual adds into the Wo and down
/// GEMVs' epilogues; the FFN RMSNorm stays a kernel (6 kernels per layer instead of 8). Only
/// batch-1 steps fuse: fused steps of up to 8 tokens measured slower than unfused ones at
/// batch 8, and the fused batch-1 step faster than the unfused one, on the H100
/// (bench/results/README.md). VIREO_DECODE_FUSION=0 turns it off (docs/TUNING.md).
bool CudaBackend::fused_step(int n) const noexcept {
  const int d = cfg_.d_model, qd = cfg_.n_heads * cfg_.head_dim;
  // Quantized layer matrices fuse too (same kernel, quantized weight load): cols % 32 == 0.
  const bool q_ok = !w_.layer_quant || (d % 32 == 0 && qd % 32 == 0 && cfg_.d_ff % 32 == 0);
  return fuse_ && n == 1 && q_ok && cuda::gemv_fused_supported(dt_, n, d, true) &&
         cuda::gemv_fused_supported(dt_, n, qd, false) && cuda::gemv_fused_supported(dt_, n, cfg_.d_ff, false) &&
         cfg_.head_dim % 16 == 0;
}

/// One fused decode GEMV (cuda::gemv_fused) over a 16-bit or a quantized matrix.
cuda::Status CudaBackend::fused(cuda::GemvEpilogue epi, bool norm, const Mat& w, const void* x, void* y, int n,
                                int rows, const cuda::GemvExtras& ex) {
  if (w.quant) return cuda::gemv_fused(dt_, epi, norm, w.qview(), x, y, n, rows, w.cols, ex, stream_->get());
  return cuda::gemv_fused(dt_, epi, norm, w.ptr(), x, y, n, rows, w.cols, ex, stream_->get());
}

/// Every kernel of one step, on stream_ (possibly under graph capture).
void CudaBackend::run(const Step& st, CudaKVStorage& kv, const Cancel& cancel) {
  void* s = stream_->get();
  const int d = cfg_.d_model, nh = cfg_.n_heads, nkv = cfg_.n_kv_heads, hd = cfg_.head_dim;
  mark(nullptr);
  if (w_.tok_embd.quant)
    cuda::check(cuda::embed_q(dt_, w_.tok_embd.qview(), st.tokens, ws_.resid.as<float>(), st.n, d, s),
                "embed (quantized)");
  else
    cuda::check(cuda::embed(dt_, w_.tok_embd.ptr(), st.tokens, ws_.resid.as<float>(), st.n, d, s), "embed");
  mark("embed");
  for (int l = 0; l < cfg_.n_layers; ++l) {
    cancel.check();
    const Layer& L = w_.layers[std::size_t(l)];
    cuda::RopeKVParams rp;
    rp.qkv = ws_.qkv.get();
    rp.bias = L.bqkv.as<float>();
    rp.inv_freq = w_.inv_freq.as<float>();
    rp.q_out = ws_.q.get();
    rp.k_cache = kv.k(l);
    rp.v_cache = kv.v(l);
    rp.k_scale = kv.k_scale(l);  // int8 K/V: quantized per row as they are written
    rp.v_scale = kv.v_scale(l);
    rp.positions = st.positions;
    rp.slots = st.slots;
    rp.n = st.n;
    rp.n_heads = nh;
    rp.n_kv_heads = nkv;
    rp.head_dim = hd;
    if (st.fused) {
      // The residual stream is already complete (the last GEMV added into it).
      cuda::GemvExtras ex;
      ex.resid = ws_.resid.as<float>();
      ex.norm_w = L.attn_norm.as<float>();
      ex.eps = cfg_.rms_eps;
      ex.rope = rp;
      cuda::check(fused(cuda::GemvEpilogue::RopeKV, true, L.wqkv, nullptr, nullptr, st.n, L.wqkv.rows, ex),
                  "fused attn norm + qkv + rope");
      mark("norm+qkv+rope_kv");
    } else {
      // The previous layer's FFN output (ws_.tmp) joins the residual here.
      cuda::check(cuda::rmsnorm(dt_, l ? ws_.tmp.get() : nullptr, ws_.resid.as<float>(), L.attn_norm.as<float>(),
                                ws_.xn.get(), nullptr, st.n, d, cfg_.rms_eps, s),
                  "attn rmsnorm");
      mark("attn_norm");
      matmul(ws_.xn.get(), L.wqkv, ws_.qkv.get(), false, st.n);
      mark("qkv");
      cuda::check(cuda::rope_kv(dt_, rp, s), "rope_kv");
      mark("rope_kv");
    }
    cuda::AttentionParams ap;
    ap.q = ws_.q.get();
    ap.k_cache = kv.k(l);
    ap.v_cache = kv.v(l);
    ap.k_scale = kv.k_scale(l);
    ap.v_scale = kv.v_scale(l);
    ap.out = ws_.attn.get();
    ap.kv_len = st.kv_len;
    ap.bt_off = st.bt_off;
    ap.block_ids = st.block_ids;
    ap.n_heads = nh;
    ap.n_kv_heads = nkv;
    ap.head_dim = hd;
    ap.block_size = st.block_size;
    ap.scale = 1.0f / std::sqrt(float(hd));
    // The cluster merge (AttentionParams::cluster_merge) measured faster on the H100 for steps
    // of several decode tokens and slower at batch 1 (bench/results/README.md).
    ap.cluster_merge = st.n_dec > 1;
    cuda::check(cuda::decode_attention(dt_, ap, st.dec_list, st.n_dec, st.splits, ws_.attn_ws.as<float>(), s),
                "decode attention");
    cuda::check(cuda::prefill_attention(dt_, ap, st.pf_list, st.tiles, st.n_tiles, s), "prefill attention");
    mark("attention");
    if (st.fused) {
      // Wo follows decode attention, which hardly touches HBM: with PDL its CTAs are
      // resident early, and its first wave pulls its whole slice of Wo into L2 (within
      // 32 MiB; an 8B model's Wo is 32 MiB) while attention runs (measured never slower than
      // one chunk). The Wo and down GEMVs keep two weight chunks per warp in flight: their
      // grids have <= 2 CTAs per SM at batch 1, so the extra registers cost no occupancy, and
      // it measured faster than one (bench/results/README.md).
      cuda::GemvExtras wo_ex;
      wo_ex.depth = 2;
      wo_ex.prefetch_chunks = cuda::gemv_slice_prefetch_chunks(L.wo.rows, L.wo.cols, std::size_t(32) << 20);
      cuda::check(fused(cuda::GemvEpilogue::Add, false, L.wo, ws_.attn.get(), ws_.resid.get(), st.n, L.wo.rows, wo_ex),
                  "fused wo + residual");
      mark("wo+residual");
      // The FFN RMSNorm stays a kernel of its own: the gate/up GEMV has ~5x the CTAs of the
      // QKV one, and each CTA of a fused norm would re-read the residual and norm weights from
      // L2 (folding it in measured slower). The residual is already complete: no delta.
      cuda::check(cuda::rmsnorm(dt_, nullptr, ws_.resid.as<float>(), L.ffn_norm.as<float>(), ws_.xn.get(), nullptr,
                                st.n, d, cfg_.rms_eps, s),
                  "ffn rmsnorm");
      mark("ffn_norm");
      cuda::check(fused(cuda::GemvEpilogue::SwiGLU, false, L.wgu, ws_.xn.get(), ws_.h.get(), st.n, cfg_.d_ff, {}),
                  "gate/up + swiglu");
      mark("gate_up+swiglu");
      cuda::GemvExtras down_ex;
      down_ex.depth = 2;
      cuda::check(
          fused(cuda::GemvEpilogue::Add, false, L.wdown, ws_.h.get(), ws_.resid.get(), st.n, L.wdown.rows, down_ex),
          "fused down + residual");
      mark("down+residual");
      continue;
    }
    matmul(ws_.attn.get(), L.wo, ws_.tmp.get(), false, st.n);
    mark("wo");
    cuda::check(cuda::rmsnorm(dt_, ws_.tmp.get(), ws_.resid.as<float>(), L.ffn_norm.as<float>(), ws_.xn.get(), nullptr,
                              st.n, d, cfg_.rms_eps, s),
                "ffn rmsnorm");
    mark("ffn_norm");
    if (st.n <= cuda::GEMV_MAX_TOKENS) {
      // Decode: gate/up GEMV and SwiGLU in one kernel (no ws_.gu round trip, one launch less).
      if (L.wgu.quant)
        cuda::check(cuda::gemv_swiglu_q(dt_, L.wgu.qview(), ws_.xn.get(), ws_.h.get(), st.n, cfg_.d_ff, L.wgu.cols, s),
                    "gemv_swiglu (quantized)");
      else
        cuda::check(cuda::gemv_swiglu(dt_, L.wgu.ptr(), ws_.xn.get(), ws_.h.get(), st.n, cfg_.d_ff, L.wgu.cols, s),
                    "gemv_swiglu");
    } else {
      matmul(ws_.xn.get(), L.wgu, ws_.gu.get(), false, st.n);
      cuda::check(cuda::swiglu(dt_, ws_.gu.get(), ws_.h.get(), st.n, cfg_.d_ff, s), "swiglu");
    }
    mark("gate_up+swiglu");
    matmul(ws_.h.get(), L.wdown, ws_.tmp.get(), false, st.n);
    mark("down");
  }
  if (st.rows > 0) project(st, 0, std::min(st.rows, kLogitChunk));
  mark("final_norm+lm_head");
}

}  // namespace vireo::detail::cuda_backend
