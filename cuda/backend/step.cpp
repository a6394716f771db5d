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
                               std::min(cuda::GEMV_MAX_TOKENS, n - t0), w.rows, w.cols, s, quant_extras()),
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

/// Whether a step of n tokens runs the fused decode path. Mode 1 (VIREO_DECODE_FUSION=1):
/// RMSNorm folded into the QKV and gate/up GEMVs, RoPE + KV write into the QKV GEMV's
/// epilogue, the residual adds into the Wo and down GEMVs' epilogues: 5 kernels per layer
/// instead of 8. Mode 2 keeps the FFN RMSNorm a separate kernel (6 per layer).
/// Default: mode 2 for batch-1 steps only. H100, Llama-3.1-8B bf16, context 512 (2026-11-26
/// runs): batch 1 6.05 ms (mode 2) / 6.83 ms (mode 1) / 6.64 ms (unfused), and 5.97 / 6.18
/// (mode 2 / unfused) in a later run. A mode 3 that had the last Wo CTA write the FFN norm
/// (commit 3b12741, removed) took 6.48 ms against 6.10 for mode 2 in the same run: the
/// gate/up CTAs' prefetch then no longer overlaps an HBM-idle kernel. At batch 8 mode 1 took
/// 10.38 ms and mode 2 6.98 ms against 6.49 unfused, so larger steps stay unfused unless
/// VIREO_DECODE_FUSION=1 or 2 asks for every step of up to GEMV_MAX_TOKENS tokens
/// (VIREO_DECODE_FUSION=0: never).
/// A mode 4 (commit 12cb228, removed) folded the FFN RMSNorm into a persistent gate/up GEMV
/// (one wave of CTAs looping over the tiles, each normalizing once): H100, 8B batch 1,
/// 6.93 ms against 5.66 for mode 2 in one process (2026-11-27); probably because one wave of
/// 396 CTAs keeps too few loads in flight for the 235 MB gate/up matrix (not profiled).
bool CudaBackend::fused_step(int n) const noexcept {
  const int d = cfg_.d_model, qd = cfg_.n_heads * cfg_.head_dim;
  // Quantized layer matrices fuse too (same kernel, quantized weight load): cols % 32 == 0.
  const bool q_ok = !w_.layer_quant || (d % 32 == 0 && qd % 32 == 0 && cfg_.d_ff % 32 == 0);
  return fuse_ != 0 && n <= fuse_max_tokens_ && q_ok && cuda::gemv_fused_supported(dt_, n, d, true) &&
         cuda::gemv_fused_supported(dt_, n, qd, false) && cuda::gemv_fused_supported(dt_, n, cfg_.d_ff, false) &&
         cfg_.head_dim % 16 == 0;
}

/// Extras of an unfused quantized GEMV: the decode setting q4_scale_after.
cuda::GemvExtras CudaBackend::quant_extras() const noexcept {
  cuda::GemvExtras ex;
  ex.q4_scale_after = q4_scale_after_;
  return ex;
}

/// One fused decode GEMV (cuda::gemv_fused) over a 16-bit or a quantized matrix.
cuda::Status CudaBackend::fused(cuda::GemvEpilogue epi, bool norm, const Mat& w, const void* x, void* y, int n,
                                int rows, const cuda::GemvExtras& ex) {
  if (w.quant) {
    cuda::GemvExtras qex = ex;
    qex.q4_scale_after = q4_scale_after_;
    return cuda::gemv_fused(dt_, epi, norm, w.qview(), x, y, n, rows, w.cols, qex, stream_->get());
  }
  return cuda::gemv_fused(dt_, epi, norm, w.ptr(), x, y, n, rows, w.cols, ex, stream_->get());
}

/// Every kernel of one step, on stream_ (possibly under graph capture).
void CudaBackend::run(const Step& st, CudaKVStorage& kv, const std::atomic<bool>* cancel) {
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
    if (cancel && cancel->load(std::memory_order_relaxed)) throw Error(ErrorCode::Cancelled, "forward cancelled");
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
    // The cluster merge (AttentionParams::cluster_merge) pays off for steps of several
    // decode tokens only: H100, 2026-11-27, in one process each: batch 8 -0.8% (8B), -1.7%
    // (1B), -6% (SmolLM2 shape) per step; batch 1 +1.7% (8B) and +16% (SmolLM2: 16-CTA
    // clusters).
    ap.cluster_merge = attn_cluster_ == 1 || (attn_cluster_ == 2 && st.n_dec > 1);
    cuda::check(cuda::decode_attention(dt_, ap, st.dec_list, st.n_dec, st.splits, ws_.attn_ws.as<float>(), s),
                "decode attention");
    cuda::check(cuda::prefill_attention(dt_, ap, st.pf_list, st.tiles, st.n_tiles, s), "prefill attention");
    mark("attention");
    if (st.fused) {
      // Wo follows decode attention, which hardly touches HBM: with PDL its CTAs are
      // resident early, and its first wave pulls its whole slice of Wo into L2 (within
      // 32 MiB; an 8B model's Wo is 32 MiB) while attention runs. H100, 8B batch 1: 6.06 ms
      // per token against 6.10 with one chunk, and 5.99 ms together with the attention
      // warm-up and 64-key splits; a confirmation run gave 5.97 against 5.99 for all three
      // against none: within noise, never slower. PDL itself is worth ~2% (6.10 ms with
      // VIREO_PDL=0). VIREO_WO_PREFETCH=k sets the depth.
      cuda::GemvExtras wo_ex;
      wo_ex.depth = gemv_depth_;
      wo_ex.prefetch_chunks = wo_prefetch_ >= 0
                                  ? wo_prefetch_
                                  : cuda::gemv_slice_prefetch_chunks(L.wo.rows, L.wo.cols, std::size_t(32) << 20);
      cuda::check(fused(cuda::GemvEpilogue::Add, false, L.wo, ws_.attn.get(), ws_.resid.get(), st.n, L.wo.rows, wo_ex),
                  "fused wo + residual");
      mark("wo+residual");
      cuda::GemvExtras ex;
      if (fuse_ == 1) {
        ex.resid = ws_.resid.as<float>();
        ex.norm_w = L.ffn_norm.as<float>();
        ex.eps = cfg_.rms_eps;
        cuda::check(fused(cuda::GemvEpilogue::SwiGLU, true, L.wgu, nullptr, ws_.h.get(), st.n, cfg_.d_ff, ex),
                    "fused ffn norm + gate/up + swiglu");
        mark("norm+gate_up+swiglu");
      } else {
        // Level 2: the gate/up GEMV has ~5x the CTAs of the QKV one, and each CTA of a fused
        // norm re-reads the residual and norm weights from L2; a separate RMSNorm (the
        // residual is already complete: no delta) may cost less.
        cuda::check(cuda::rmsnorm(dt_, nullptr, ws_.resid.as<float>(), L.ffn_norm.as<float>(), ws_.xn.get(), nullptr,
                                  st.n, d, cfg_.rms_eps, s),
                    "ffn rmsnorm");
        mark("ffn_norm");
        cuda::check(fused(cuda::GemvEpilogue::SwiGLU, false, L.wgu, ws_.xn.get(), ws_.h.get(), st.n, cfg_.d_ff, ex),
                    "gate/up + swiglu");
        mark("gate_up+swiglu");
      }
      cuda::GemvExtras down_ex;
      down_ex.depth = gemv_depth_;
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
        cuda::check(cuda::gemv_swiglu_q(dt_, L.wgu.qview(), ws_.xn.get(), ws_.h.get(), st.n, cfg_.d_ff, L.wgu.cols, s,
                                        quant_extras()),
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
