// CPU reference ops. matmul dequantizes one weight row at a time into a per-thread buffer
// and dots it with every token of the step, so a quantized weight is read from memory once
// per step (decode is bandwidth-bound: the Q4_1 bytes are ~1/6 of fp32). Attention is the
// textbook softmax(q.k / sqrt(d)) . v with a running max (one pass for scores, one for the
// weighted sum), parallel over (token, head) pairs.
#include "cpu/ops.hpp"

#include "cpu/quant_dot.hpp"
#include "cpu/simd.hpp"

#include <algorithm>
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

constexpr std::int64_t kTileRows = 4;

// y[0][i] = w[i] . x0, y[rows + i] = w[i] . x1 for the 4 rows w[0..3].
void tile_4x2(const float* const* w, const float* x0, const float* x1, std::int64_t n, float* y,
              std::int64_t rows) noexcept {
  std::int64_t k = 0;
  float acc0[4] = {}, acc1[4] = {};
#if defined(__AVX2__) && defined(__FMA__)
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
  __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
  for (; k + 8 <= n; k += 8) {
    const __m256 u = _mm256_loadu_ps(x0 + k), v = _mm256_loadu_ps(x1 + k);
    __m256 w0 = _mm256_loadu_ps(w[0] + k), w1 = _mm256_loadu_ps(w[1] + k);
    a00 = _mm256_fmadd_ps(w0, u, a00);
    a10 = _mm256_fmadd_ps(w0, v, a10);
    a01 = _mm256_fmadd_ps(w1, u, a01);
    a11 = _mm256_fmadd_ps(w1, v, a11);
    __m256 w2 = _mm256_loadu_ps(w[2] + k), w3 = _mm256_loadu_ps(w[3] + k);
    a02 = _mm256_fmadd_ps(w2, u, a02);
    a12 = _mm256_fmadd_ps(w2, v, a12);
    a03 = _mm256_fmadd_ps(w3, u, a03);
    a13 = _mm256_fmadd_ps(w3, v, a13);
  }
  acc0[0] = hsum(a00), acc0[1] = hsum(a01), acc0[2] = hsum(a02), acc0[3] = hsum(a03);
  acc1[0] = hsum(a10), acc1[1] = hsum(a11), acc1[2] = hsum(a12), acc1[3] = hsum(a13);
#endif
  for (; k < n; ++k)
    for (int i = 0; i < 4; ++i) {
      acc0[i] += w[i][k] * x0[k];
      acc1[i] += w[i][k] * x1[k];
    }
  for (int i = 0; i < 4; ++i) {
    y[i] = acc0[i];
    y[rows + i] = acc1[i];
  }
}

}  // namespace

void matmul(const detail::WeightView& w, const float* x, std::int64_t T, float* y, ThreadPool& pool) {
  const std::int64_t rows = w.rows, cols = w.cols;
  const bool is_f32 = w.type == gguf::TensorType::F32;
  const std::size_t stride = w.row_stride();
  // Decode-sized steps read each quantized row once: one token uses the fused dot (the
  // x-sum trick saves the zero-point FMAs), a few tokens dequantize each block into
  // registers once and reuse it for up to 4 tokens at a time. Larger steps dequantize a
  // row into a buffer and run the register-tiled kernel below.
  constexpr std::int64_t kFusedMaxTokens = 8;
  if (T <= kFusedMaxTokens && has_quant_dot(w.type)) {
    std::vector<float> sums(static_cast<std::size_t>(cols / 32));
    if (T == 1) block_sums(x, cols, sums.data());
    pool.parallel_for(rows, [&](std::int64_t r0, std::int64_t r1) {
      float out[4];
      for (std::int64_t r = r0; r < r1; ++r) {
        const std::byte* wr = w.data + std::size_t(r) * stride;
        if (T == 1) {
          y[r] = quant_dot(w.type, wr, x, sums.data(), cols);
          continue;
        }
        for (std::int64_t t0 = 0; t0 < T; t0 += 4) {
          const int nt = int(std::min<std::int64_t>(4, T - t0));
          quant_dot_tokens(w.type, wr, x + t0 * cols, cols, nt, cols, out);
          for (int k = 0; k < nt; ++k) y[(t0 + k) * rows + r] = out[k];
        }
      }
    });
    return;
  }
  // Prefill: rows in groups of kTileRows, dequantized once into a buffer; each group is
  // multiplied with all T tokens by a 4-row x 2-token register tile (8 accumulators), so
  // every activation load feeds 4 FMAs instead of 1.
  pool.parallel_for((rows + kTileRows - 1) / kTileRows, [&](std::int64_t g0, std::int64_t g1) {
    std::vector<float> buf(static_cast<std::size_t>(kTileRows * cols));
    for (std::int64_t g = g0; g < g1; ++g) {
      const std::int64_t r0 = g * kTileRows, nr = std::min<std::int64_t>(kTileRows, rows - r0);
      const float* wr[kTileRows];
      for (std::int64_t i = 0; i < nr; ++i) {
        const std::byte* src = w.data + std::size_t(r0 + i) * stride;
        if (is_f32) {
          wr[i] = reinterpret_cast<const float*>(src);
        } else {
          gguf::dequantize(w.type, src, buf.data() + i * cols, std::size_t(cols));
          wr[i] = buf.data() + i * cols;
        }
      }
      std::int64_t t = 0;
      if (nr == kTileRows)
        for (; t + 2 <= T; t += 2) tile_4x2(wr, x + t * cols, x + (t + 1) * cols, cols, y + t * rows + r0, rows);
      for (; t < T; ++t)
        for (std::int64_t i = 0; i < nr; ++i) y[t * rows + r0 + i] = dot(wr[i], x + t * cols, cols);
    }
  });
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

void rope(float* x, std::int64_t T, int n_heads, int head_dim, const std::int32_t* pos, float theta,
          const float* freq_factors) {
  const int half = head_dim / 2;
  std::vector<float> inv_freq(static_cast<std::size_t>(half));
  for (int i = 0; i < half; ++i) {
    inv_freq[i] = float(std::pow(double(theta), -2.0 * i / head_dim));
    if (freq_factors) inv_freq[i] /= freq_factors[i];
  }
  for (std::int64_t t = 0; t < T; ++t) {
    for (int i = 0; i < half; ++i) {
      double ang = double(pos[t]) * double(inv_freq[i]);
      float c = float(std::cos(ang)), s = float(std::sin(ang));
      for (int h = 0; h < n_heads; ++h) {
        float* p = x + (t * n_heads + h) * head_dim + 2 * i;
        float x0 = p[0], x1 = p[1];
        p[0] = x0 * c - x1 * s;
        p[1] = x0 * s + x1 * c;
      }
    }
  }
}

void silu_mul(float* g, const float* u, std::int64_t n) noexcept {
  for (std::int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
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
  *scale = amax / 127.0f;
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
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

void attention(const AttentionArgs& a, ThreadPool& pool) {
  const int hd = a.head_dim, group = a.n_heads / a.n_kv_heads;
  const std::int64_t kv_stride = std::int64_t(a.n_kv_heads) * hd;
  const float scale = 1.0f / std::sqrt(float(hd));
  pool.parallel_for(a.T * a.n_heads, [&](std::int64_t w0, std::int64_t w1) {
    std::vector<float> scores;
    std::vector<float> acc(static_cast<std::size_t>(hd));
    for (std::int64_t w = w0; w < w1; ++w) {
      const std::int64_t t = w / a.n_heads;
      const int h = int(w % a.n_heads), g = h / group;
      const int s = a.seq_of[t];
      const std::int32_t* table = a.block_ids + a.block_indptr[s];
      const std::int64_t n_ctx = std::int64_t(a.pos[t]) + 1;
      const float* q = a.q + (t * a.n_heads + h) * hd;
      scores.resize(std::size_t(n_ctx));
      float mx = -INFINITY;
      for (std::int64_t p = 0; p < n_ctx; ++p) {
        std::int64_t slot = std::int64_t(table[p / a.block_size]) * a.block_size + p % a.block_size;
        float sc;
        if (a.k8) {
          const std::int64_t row = slot * a.n_kv_heads + g;
          sc = dot_i8(q, a.k8 + row * hd, hd) * a.k_scale[row] * scale;
        } else {
          sc = dot(q, a.k_cache + slot * kv_stride + std::int64_t(g) * hd, hd) * scale;
        }
        scores[p] = sc;
        mx = std::max(mx, sc);
      }
      float denom = 0.0f;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (std::int64_t p = 0; p < n_ctx; ++p) {
        float e = std::exp(scores[p] - mx);
        denom += e;
        std::int64_t slot = std::int64_t(table[p / a.block_size]) * a.block_size + p % a.block_size;
        if (a.v8) {
          const std::int64_t row = slot * a.n_kv_heads + g;
          axpy_i8(acc.data(), e * a.v_scale[row], a.v8 + row * hd, hd);
        } else {
          const float* v = a.v_cache + slot * kv_stride + std::int64_t(g) * hd;
          for (int i = 0; i < hd; ++i) acc[i] += e * v[i];
        }
      }
      float* o = a.out + (t * a.n_heads + h) * hd;
      for (int i = 0; i < hd; ++i) o[i] = acc[i] / denom;
    }
  });
}

}  // namespace vireo::cpu
