// CPU reference ops. matmul reads each quantized weight from memory once per step (decode
// is bandwidth-bound: the Q4_1 bytes are ~1/6 of fp32): decode steps dot the quantized rows
// directly (cpu/quant_dot.hpp), prefill steps dequantize 16 rows at a time into a panel for
// a register-tiled kernel (cpu/gemm.hpp). Attention is
// softmax(q.k / sqrt(d)) . v, parallel over (token, KV head, 256-position chunk) items that
// serve a whole GQA group per K / V row read, with the chunks of a (token, KV head) merged
// by the item that finishes last (see attention()); this measured faster than a loop per
// (token, head) at long contexts (BM_attention; bench/results/). The softmax uses a vector
// exp (cpu/simd.hpp exp_ps), V is accumulated with a 32-column slice of the output in
// registers over all keys, and K / V rows are prefetched 6 keys ahead, each measured faster.
#include "cpu/ops.hpp"

#include "cpu/gemm.hpp"
#include "cpu/quant_dot.hpp"
#include "cpu/simd.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace vireo::cpu {

float dot(const float* a, const float* b, std::int64_t n) noexcept {
  std::int64_t i = 0;
  float sum = 0.0f;
#if defined(__AVX2__) && defined(__FMA__)
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), acc2);
    acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), acc3);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  sum = hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
#else
  float acc[8] = {};
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  for (float v : acc) sum += v;
#endif
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

namespace {

constexpr std::int64_t kFusedMaxTokens = 8;

// Rows [r0, r1) of a decode-sized step (T <= kFusedMaxTokens) over quantized weights: one
// token uses the fused dot (the x-sum trick saves the zero-point FMAs; sums = x's block
// sums), a few tokens dequantize each block into registers once and reuse it for up to 8
// tokens at a time.
void fused_rows(const detail::WeightView& w, const float* x, std::int64_t T, const float* sums, float* y,
                std::int64_t r0, std::int64_t r1) noexcept {
  const std::int64_t rows = w.rows, cols = w.cols;
  const std::size_t stride = w.row_stride();
  float out[8];
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::byte* wr = w.data + std::size_t(r) * stride;
    if (T == 1) {
      y[r] = quant_dot(w.type, wr, x, sums, cols);
      continue;
    }
    for (std::int64_t t0 = 0; t0 < T; t0 += 8) {
      const int nt = int(std::min<std::int64_t>(8, T - t0));
      quant_dot_tokens(w.type, wr, x + t0 * cols, cols, nt, cols, out);
      for (int k = 0; k < nt; ++k) y[(t0 + k) * rows + r] = out[k];
    }
  }
}

}  // namespace

void matmul_many(std::span<const MatmulOut> outs, const float* x, std::int64_t T, ThreadPool& pool) {
  bool fused = T <= kFusedMaxTokens && outs.size() > 0;
  std::int64_t total = 0;
  for (const MatmulOut& o : outs) {
    fused = fused && has_quant_dot(o.w->type) && o.w->cols == outs.begin()->w->cols;
    total += o.w->rows;
  }
  if (!fused) {
    for (const MatmulOut& o : outs) matmul(*o.w, x, T, o.y, pool);
    return;
  }
  const std::int64_t cols = outs.begin()->w->cols;
  std::vector<float> sums(static_cast<std::size_t>(cols / 32));
  if (T == 1) block_sums(x, cols, sums.data());
  pool.parallel_for(total, [&](std::int64_t g0, std::int64_t g1) {
    for_rows_of(outs, g0, g1, [&](const MatmulOut& o, std::int64_t r0, std::int64_t r1) {
      fused_rows(*o.w, x, T, sums.data(), o.y, r0, r1);
    });
  });
}

void matmul(const detail::WeightView& w, const float* x, std::int64_t T, float* y, ThreadPool& pool) {
  // Decode-sized steps read each quantized row once (fused_rows). Larger steps, and 16-bit /
  // fp32 weights, go through cpu/gemm.hpp: dot-product tiles up to 23 tokens, 16-row panels
  // from 24.
  if (T <= kFusedMaxTokens && has_quant_dot(w.type)) {
    const MatmulOut one[] = {{&w, y}};
    matmul_many(one, x, T, pool);
    return;
  }
  // Panels pay a transposition per 16 rows; below ~24 tokens the dot-product tiles win
  // (BM_matmul_decode_batch and BM_matmul_prefill, bench/results/cpu-*-ops-matmul-q8-panels.json).
  constexpr std::int64_t kPanelMinTokens = 24;
  if (T < kPanelMinTokens)
    gemm_rows(w, x, T, y, pool);
  else
    gemm_panels(w, x, T, y, pool);
}

void rms_norm(const float* x, const float* g, std::int64_t T, std::int64_t d, float eps, float* y) {
  for (std::int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * d;
    float* yr = y + t * d;
    double ss = 0.0;  // double accumulation: d is small, and it keeps the reference tight
    for (std::int64_t i = 0; i < d; ++i) ss += double(xr[i]) * xr[i];
    float scale = float(1.0 / std::sqrt(ss / double(d) + double(eps)));
    for (std::int64_t i = 0; i < d; ++i) yr[i] = xr[i] * scale * g[i];
  }
}

void layer_norm(const float* x, const float* g, const float* b, std::int64_t T, std::int64_t d, float eps, float* y) {
  for (std::int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * d;
    float* yr = y + t * d;
    double mean = 0.0, var = 0.0;
    for (std::int64_t i = 0; i < d; ++i) mean += xr[i];
    mean /= double(d);
    for (std::int64_t i = 0; i < d; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    const float inv = float(1.0 / std::sqrt(var / double(d) + double(eps))), m = float(mean);
    for (std::int64_t i = 0; i < d; ++i) yr[i] = (xr[i] - m) * inv * g[i] + (b ? b[i] : 0.0f);
  }
}

void rope(float* x, std::int64_t T, int n_heads, int head_dim, const std::int32_t* pos, float theta,
          const float* freq_factors) {
  const int half = head_dim / 2;
  std::vector<float> inv_freq(static_cast<std::size_t>(half));
  for (int i = 0; i < half; ++i) {
    inv_freq[i] = float(std::pow(double(theta), -2.0 * i / head_dim));
    if (freq_factors) inv_freq[i] /= freq_factors[i];
  }
  rope_ex(x, T, n_heads, head_dim, pos, inv_freq.data(), head_dim, false, 1.0f);
}

void rope_ex(float* x, std::int64_t T, int n_heads, int head_dim, const std::int32_t* pos, const float* inv_freq,
             int n_rot, bool halves, float pos_scale) {
  const int half = n_rot / 2;
  for (std::int64_t t = 0; t < T; ++t) {
    for (int i = 0; i < half; ++i) {
      double ang = double(pos[t]) * double(pos_scale) * double(inv_freq[i]);
      float c = float(std::cos(ang)), s = float(std::sin(ang));
      const int i0 = halves ? i : 2 * i, i1 = halves ? i + half : 2 * i + 1;
      for (int h = 0; h < n_heads; ++h) {
        float* p = x + (t * n_heads + h) * head_dim;
        float x0 = p[i0], x1 = p[i1];
        p[i0] = x0 * c - x1 * s;
        p[i1] = x0 * s + x1 * c;
      }
    }
  }
}

void silu_mul(float* g, const float* u, std::int64_t n) noexcept {
  for (std::int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void gelu_tanh_mul(float* g, const float* u, std::int64_t n) noexcept {
  constexpr float k = 0.7978845608028654f;  // sqrt(2 / pi)
  for (std::int64_t i = 0; i < n; ++i) {
    const float x = g[i];
    g[i] = 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x))) * u[i];
  }
}

void quantize_kv_row(const float* x, int n, std::int8_t* q, float* scale) noexcept {
  float amax = 0.0f;
  bool finite = true;
  for (int i = 0; i < n; ++i) {
    finite = finite && std::isfinite(x[i]);
    amax = std::max(amax, std::fabs(x[i]));
  }
  if (!finite) {  // keep the damage visible rather than silently clamped
    *scale = std::numeric_limits<float>::quiet_NaN();
    std::fill(q, q + n, std::int8_t(0));
    return;
  }
  if (!(amax >= 1e-30f)) {  // zero (or so tiny that 127 / amax would overflow): all zeros
    *scale = 0.0f;
    std::fill(q, q + n, std::int8_t(0));
    return;
  }
  *scale = amax / 127.0f;
  const float inv = 127.0f / amax;
  for (int i = 0; i < n; ++i) q[i] = std::int8_t(std::lrintf(std::clamp(x[i] * inv, -127.0f, 127.0f)));
}

namespace {
/// sum a[i] * b[i] over an int8 row (the row's scale is applied by the caller).
float dot_i8(const float* a, const std::int8_t* b, int n) noexcept {
  int i = 0;
  float s = 0.0f;
#if defined(__AVX2__) && defined(__FMA__)
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  for (; i + 16 <= n; i += 16) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i));
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8))),
                           acc1);
  }
  s = hsum(_mm256_add_ps(acc0, acc1));
#endif
  for (; i < n; ++i) s += a[i] * float(b[i]);
  return s;
}

/// acc[i] += w * b[i] over an int8 row.
}  // namespace

float exp_shift_sum(float* s, std::int64_t n, float mx) noexcept {
  std::int64_t p = 0;
  float sum = 0.0f;
#if defined(__AVX2__) && defined(__FMA__)
  const __m256 m = _mm256_set1_ps(mx);
  __m256 acc = _mm256_setzero_ps();
  for (; p + 8 <= n; p += 8) {
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(s + p), m));
    _mm256_storeu_ps(s + p, e);
    acc = _mm256_add_ps(acc, e);
  }
  sum = hsum(acc);
#endif
  for (; p < n; ++p) sum += (s[p] = std::exp(s[p] - mx));
  return sum;
}

namespace {

/// acc[0..hd) += sum over p < n of e[p] * v[rows[p] * hd ..] (fp32 V rows), keys in order.
/// With AVX2 and hd % 32 == 0 a 32-column slice of acc stays in registers over all keys
/// (the per-key load / store of acc was half the memory traffic of the loop).
void accumulate_v(float* acc, const float* e, const float* v, const std::int64_t* rows, std::int64_t n,
                  int hd) noexcept {
#if defined(__AVX2__) && defined(__FMA__)
  if (hd % 32 == 0) {
    for (int c = 0; c < hd; c += 32) {
      __m256 a0 = _mm256_loadu_ps(acc + c), a1 = _mm256_loadu_ps(acc + c + 8);
      __m256 a2 = _mm256_loadu_ps(acc + c + 16), a3 = _mm256_loadu_ps(acc + c + 24);
      for (std::int64_t p = 0; p < n; ++p) {
        const __m256 w = _mm256_set1_ps(e[p]);
        const float* vr = v + rows[p] * hd + c;
        a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vr), a0);
        a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vr + 8), a1);
        a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vr + 16), a2);
        a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vr + 24), a3);
      }
      _mm256_storeu_ps(acc + c, a0);
      _mm256_storeu_ps(acc + c + 8, a1);
      _mm256_storeu_ps(acc + c + 16, a2);
      _mm256_storeu_ps(acc + c + 24, a3);
    }
    return;
  }
#endif
  for (std::int64_t p = 0; p < n; ++p) {
    const float* vr = v + rows[p] * hd;
    for (int i = 0; i < hd; ++i) acc[i] += e[p] * vr[i];
  }
}

void axpy_i8(float* acc, float w, const std::int8_t* b, int n) noexcept {
  int i = 0;
#if defined(__AVX2__) && defined(__FMA__)
  const __m256 wv = _mm256_set1_ps(w);
  for (; i + 16 <= n; i += 16) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i));
    _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(wv, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), _mm256_loadu_ps(acc + i)));
    _mm256_storeu_ps(acc + i + 8, _mm256_fmadd_ps(wv, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8))),
                                                  _mm256_loadu_ps(acc + i + 8)));
  }
#endif
  for (; i < n; ++i) acc[i] += w * float(b[i]);
}
}  // namespace

namespace {

// out[j * stride] = q_j . k for the query rows q + j * hd of a GQA group (j < group): one pass
// over k per 4 queries, their sums reduced together (the per-key dot() calls of the scores
// loop cost a call and a horizontal sum each).
inline void qk_group(const float* q, int group, const float* k, int hd, float* out, std::int64_t stride) noexcept {
#if defined(__AVX2__) && defined(__FMA__)
  if (hd % 8 == 0) {
    for (int j = 0; j < group; j += 4) {
      const int nj = std::min(4, group - j);
      // Rows past the group repeat its last one (computed, not stored).
      const float* q0 = q + std::int64_t(j) * hd;
      const float* q1 = q + std::int64_t(std::min(j + 1, group - 1)) * hd;
      const float* q2 = q + std::int64_t(std::min(j + 2, group - 1)) * hd;
      const float* q3 = q + std::int64_t(std::min(j + 3, group - 1)) * hd;
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int c = 0; c < hd; c += 8) {
        const __m256 kv = _mm256_loadu_ps(k + c);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + c), kv, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q1 + c), kv, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q2 + c), kv, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q3 + c), kv, a3);
      }
      const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
      alignas(16) float r[4];
      _mm_store_ps(r, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
      for (int i = 0; i < nj; ++i) out[std::int64_t(j + i) * stride] = r[i];
    }
    return;
  }
#endif
  for (int j = 0; j < group; ++j) out[std::int64_t(j) * stride] = dot(q + std::int64_t(j) * hd, k, hd);
}

constexpr std::int64_t kAttnChunk = 256;  // context positions per attention work item

/// The first position a token at position pos sees: 0, or within a sliding window.
std::int64_t attn_lo(const AttentionArgs& a, std::int64_t t) noexcept {
  return a.window > 0 ? std::max<std::int64_t>(0, std::int64_t(a.pos[t]) - a.window + 1) : 0;
}
/// The last key (storage index in its sequence) token t sees: itself.
std::int64_t attn_hi(const AttentionArgs& a, std::int64_t t) noexcept { return a.kv_pos ? a.kv_pos[t] : a.pos[t]; }
/// Chunks of the keys of token t (it sees storage indices attn_lo..attn_hi).
std::int64_t attn_chunks(const AttentionArgs& a, std::int64_t t) noexcept {
  return (attn_hi(a, t) - attn_lo(a, t) + kAttnChunk) / kAttnChunk;
}

/// attention() for the tokens [tb, te) of the step (see attention()).
void attention_range(const AttentionArgs& a, ThreadPool& pool, std::int64_t tb, std::int64_t te) {
  const int hd = a.head_dim, nkv = a.n_kv_heads, group = a.n_heads / nkv;
  const std::int64_t part_len = hd + 2;
  const float scale = a.scale > 0.0f ? a.scale : 1.0f / std::sqrt(float(hd));
  // chunk_start[t]: index of token t's first chunk; its chunks are numbered consecutively.
  // Token tb + i is local token i here.
  const std::int64_t T = te - tb;
  std::vector<std::int64_t> chunk_start(static_cast<std::size_t>(T) + 1, 0);
  for (std::int64_t i = 0; i < T; ++i)
    chunk_start[std::size_t(i) + 1] = chunk_start[std::size_t(i)] + attn_chunks(a, tb + i);
  const std::int64_t n_items = chunk_start[std::size_t(T)] * nkv;
  const bool direct = chunk_start[std::size_t(T)] == T;  // every token within one chunk
  // Per item and query head of its group: {max, exp-sum, acc[hd]}; per (token, KV head) the
  // number of its chunks still running.
  std::vector<float> parts(static_cast<std::size_t>(direct ? 0 : n_items * group * part_len));
  std::vector<std::atomic<int>> pending(static_cast<std::size_t>(direct ? 0 : T * nkv));
  for (std::int64_t t = 0; !direct && t < T; ++t)
    for (int g = 0; g < nkv; ++g)
      pending[std::size_t(t * nkv + g)].store(int(chunk_start[std::size_t(t) + 1] - chunk_start[std::size_t(t)]),
                                              std::memory_order_relaxed);
  // out rows of (t, KV head g) = the merge of its chunks' parts.
  auto merge = [&](std::int64_t t, int g) {
    const std::int64_t c0 = chunk_start[std::size_t(t)], c1 = chunk_start[std::size_t(t) + 1];
    for (int j = 0; j < group; ++j) {
      auto part = [&](std::int64_t c) { return parts.data() + ((c * nkv + g) * group + j) * part_len; };
      float M = -INFINITY;
      for (std::int64_t c = c0; c < c1; ++c) M = std::max(M, part(c)[0]);
      float* o = a.out + ((tb + t) * a.n_heads + std::int64_t(g) * group + j) * hd;
      std::fill_n(o, hd, 0.0f);
      float denom = 0.0f;
      for (std::int64_t c = c0; c < c1; ++c) {
        const float* pc = part(c);
        if (pc[0] == -INFINITY) continue;  // a chunk of -inf scores only adds nothing
        const float f = std::exp(pc[0] - M);
        denom += f * pc[1];
        for (int i = 0; i < hd; ++i) o[i] += f * pc[2 + i];
      }
      for (int i = 0; i < hd; ++i) o[i] /= denom;
    }
  };
  pool.parallel_for(n_items, [&](std::int64_t i0, std::int64_t i1) {
    std::vector<float> sc(static_cast<std::size_t>(group * kAttnChunk));
    std::vector<std::int64_t> rows(static_cast<std::size_t>(kAttnChunk));  // cache row of each key of the item
    std::vector<float> own(static_cast<std::size_t>(direct ? group * part_len : 0));
    for (std::int64_t it = i0; it < i1; ++it) {
      const std::int64_t tc = it / nkv;
      const int g = int(it % nkv);
      const std::int64_t t =
          std::int64_t(std::upper_bound(chunk_start.begin(), chunk_start.end(), tc) - chunk_start.begin()) - 1;
      const std::int64_t ta = tb + t;  // the token in the step
      const std::int64_t p0 = attn_lo(a, ta) + (tc - chunk_start[std::size_t(t)]) * kAttnChunk;
      const std::int64_t p1 = std::min<std::int64_t>(attn_hi(a, ta) + 1, p0 + kAttnChunk), n = p1 - p0;
      // A tree token sees the tree's tokens in its mask only (itself and its ancestors).
      const std::int64_t tbase = a.tree_base && a.tree_base[ta] >= 0 ? a.tree_base[ta] : p1;
      const std::uint64_t tmask = a.tree_mask ? a.tree_mask[ta] : 0;
      const std::int32_t* table = a.block_ids + a.block_indptr[a.seq_of[ta]];
      const float* q = a.q + (ta * a.n_heads + std::int64_t(g) * group) * hd;  // the group's heads are consecutive
      auto row_of = [&](std::int64_t p) {
        return (std::int64_t(table[p / a.block_size]) * a.block_size + p % a.block_size) * nkv + g;
      };
      for (std::int64_t p = p0; p < p1; ++p) rows[std::size_t(p - p0)] = row_of(p);
      // Keys sit in scattered blocks: prefetch the K and V rows a few keys ahead (V is read
      // by the accumulation pass below, from L2 then).
      const std::size_t kv_row_bytes = std::size_t(hd) * (a.k8 ? 1 : sizeof(float));
      const char* kbase = a.k8 ? reinterpret_cast<const char*>(a.k8) : reinterpret_cast<const char*>(a.k_cache);
      const char* vbase = a.v8 ? reinterpret_cast<const char*>(a.v8) : reinterpret_cast<const char*>(a.v_cache);
      constexpr std::int64_t kAhead = 6;
      for (std::int64_t p = p0; p < p1; ++p) {
        if (p + kAhead < p1) {
          const std::size_t off = std::size_t(rows[std::size_t(p + kAhead - p0)]) * kv_row_bytes;
          for (std::size_t b = 0; b < kv_row_bytes; b += 64) {
            __builtin_prefetch(kbase + off + b);
            __builtin_prefetch(vbase + off + b);
          }
        }
        const std::int64_t row = rows[std::size_t(p - p0)];
        float* sp = sc.data() + (p - p0);
        if (a.k8) {
          for (int j = 0; j < group; ++j)
            sp[j * kAttnChunk] = dot_i8(q + j * hd, a.k8 + row * hd, hd) * a.k_scale[row] * scale;
        } else {
          qk_group(q, group, a.k_cache + row * hd, hd, sp, kAttnChunk);
          for (int j = 0; j < group; ++j) sp[j * kAttnChunk] *= scale;
        }
        if (a.softcap > 0.0f)
          for (int j = 0; j < group; ++j) sp[j * kAttnChunk] = a.softcap * std::tanh(sp[j * kAttnChunk] / a.softcap);
        if (p >= tbase && !((tmask >> (p - tbase)) & 1))
          for (int j = 0; j < group; ++j) sp[j * kAttnChunk] = -INFINITY;
      }
      float* part = direct ? own.data() : parts.data() + it * group * part_len;
      for (int j = 0; j < group; ++j) {
        float* s = sc.data() + j * kAttnChunk;
        float mx = -INFINITY;
        for (std::int64_t p = 0; p < n; ++p) mx = std::max(mx, s[p]);
        part[j * part_len] = mx;
        part[j * part_len + 1] = exp_shift_sum(s, n, mx);
        std::fill_n(part + j * part_len + 2, hd, 0.0f);
      }
      for (int j = 0; j < group; ++j) {
        float* acc = part + j * part_len + 2;
        const float* e = sc.data() + j * kAttnChunk;
        if (a.v8) {
          for (std::int64_t p = 0; p < n; ++p) {
            const std::int64_t row = rows[std::size_t(p)];
            axpy_i8(acc, e[p] * a.v_scale[row], a.v8 + row * hd, hd);
          }
        } else {
          accumulate_v(acc, e, a.v_cache, rows.data(), n, hd);
        }
      }
      if (direct) {
        for (int j = 0; j < group; ++j) {
          float* o = a.out + (ta * a.n_heads + std::int64_t(g) * group + j) * hd;
          const float* pj = part + j * part_len;
          for (int i = 0; i < hd; ++i) o[i] = pj[2 + i] / pj[1];
        }
      } else if (pending[std::size_t(t * nkv + g)].fetch_sub(1, std::memory_order_acq_rel) == 1) {
        merge(t, g);  // the last of the chunks: every other part is written and visible
      }
    }
  });
}

}  // namespace

void attention(const AttentionArgs& a, ThreadPool& pool) {
  // Work items are (token, KV head, chunk of kAttnChunk context positions), so a single
  // long sequence still spreads over every thread. An item reads each K and V row of its
  // chunk once for the whole GQA group of query heads (the rows stay in L1 across the group)
  // and leaves, per query head, the chunk's max, exp-sum and weighted V sum; the item that
  // finishes a (token, KV head) last merges its chunks in order (flash-decoding's combine,
  // without a second pass over the pool). A token within one chunk writes its output
  // directly. The partials take (hd + 2) floats per chunk and query head: tokens go in
  // ranges whose partials stay under ~16 MiB (a 4096-token prefill at Llama-8B's shape would
  // need ~0.5 GB at once).
  constexpr std::int64_t kPartsBudget = std::int64_t(16) << 20;  // bytes
  const std::int64_t per_chunk = std::int64_t(a.n_heads) * (a.head_dim + 2) * std::int64_t(sizeof(float));
  std::int64_t tb = 0;
  while (tb < a.T) {
    std::int64_t te = tb + 1, bytes = attn_chunks(a, tb) * per_chunk;  // at least one token
    for (; te < a.T; ++te) {
      const std::int64_t next = attn_chunks(a, te) * per_chunk;
      if (bytes + next > kPartsBudget) break;
      bytes += next;
    }
    attention_range(a, pool, tb, te);
    tb = te;
  }
}

}  // namespace vireo::cpu
