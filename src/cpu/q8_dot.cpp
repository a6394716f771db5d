// Integer dot products of quantized weights with 8-bit activations (see q8_dot.hpp).
#include "cpu/q8_dot.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "cpu/quant_blocks.hpp"
#include "cpu/quant_dot.hpp"
#include "cpu/simd.hpp"
#include "vireo/error.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VIREO_Q8_AVX2 1
#endif

namespace vireo::cpu {
namespace {

using namespace qblock;

#ifdef VIREO_Q8_AVX2
// sum_j w_j x_j of one sub-block as 8 partial int32 sums (lane k: elements 4k..4k+3),
// converted to float. maddubs multiplies unsigned by signed bytes: signed weights go in as
// |w| with x's sign flipped where w < 0. Pair sums stay within int16: |w| <= 128, |x| <= 127.
template <TT TY>
inline __m256 sub_dot(__m256i w, const std::int8_t* xq) noexcept {
  const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq));
  __m256i p16;
  if constexpr (kSigned<TY>)
    p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
  else
    p16 = _mm256_maddubs_epi16(w, x);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

// The per-lane weight scale of a sub-block: lanes 0-3 cover elements 0-15 (d[0]), 4-7 the rest.
inline __m256 lane_scales(const float* d) noexcept {
  return _mm256_setr_ps(d[0], d[0], d[0], d[0], d[1], d[1], d[1], d[1]);
}
#endif

// out[t] = W_row . x[t0 + t] for t < NT; nb = the row's 32-weight sub-blocks.
template <TT TY, int NT>
void row_dot(const std::byte* row, const Q8Acts& a, std::int64_t t0, std::int64_t nb, float* out) noexcept {
  const std::int8_t* xq[NT];
  const float* xd[NT];
  const float* xs[NT];
  for (int t = 0; t < NT; ++t) {
    xq[t] = a.q.data() + (t0 + t) * a.n;
    xd[t] = a.d.data() + (t0 + t) * nb;
    xs[t] = a.s.data() + (t0 + t) * nb;
  }
  float off[NT] = {};  // sum over sub-blocks of m * s_x
#ifdef VIREO_Q8_AVX2
  // Sub-blocks in pairs: the two products meet in a mul + FMA off the accumulator's chain,
  // so each token's chain is one add per two sub-blocks (named accumulators: see gemm.cpp).
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
  std::int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    float d0[2], d1[2], m0 = 0, m1 = 0;
    sub_scales<TY>(row, b, d0, &m0);
    sub_scales<TY>(row, b + 1, d1, &m1);
    const __m256i w0 = sub_weights<TY>(row, b), w1 = sub_weights<TY>(row, b + 1);
    const __m256 s0 = lane_scales(d0), s1 = lane_scales(d1);
#define VIREO_TOKEN(t)                                                                                    \
  if constexpr (NT > t) {                                                                                 \
    const __m256 p = _mm256_fmadd_ps(sub_dot<TY>(w1, xq[t] + (b + 1) * QK), _mm256_mul_ps(s1, _mm256_set1_ps(xd[t][b + 1])), \
                                     _mm256_mul_ps(sub_dot<TY>(w0, xq[t] + b * QK), _mm256_mul_ps(s0, _mm256_set1_ps(xd[t][b])))); \
    acc##t = _mm256_add_ps(acc##t, p);                                                                    \
    if constexpr (!kSigned<TY>) off[t] += m0 * xs[t][b] + m1 * xs[t][b + 1];                              \
  }
    VIREO_TOKEN(0) VIREO_TOKEN(1) VIREO_TOKEN(2) VIREO_TOKEN(3)
#undef VIREO_TOKEN
  }
  if (b < nb) {
    float d0[2], m0 = 0;
    sub_scales<TY>(row, b, d0, &m0);
    const __m256i w0 = sub_weights<TY>(row, b);
    const __m256 s0 = lane_scales(d0);
#define VIREO_TOKEN(t)                                                                                                 \
  if constexpr (NT > t) {                                                                                              \
    acc##t = _mm256_fmadd_ps(sub_dot<TY>(w0, xq[t] + b * QK), _mm256_mul_ps(s0, _mm256_set1_ps(xd[t][b])), acc##t);    \
    if constexpr (!kSigned<TY>) off[t] += m0 * xs[t][b];                                                               \
  }
    VIREO_TOKEN(0) VIREO_TOKEN(1) VIREO_TOKEN(2) VIREO_TOKEN(3)
#undef VIREO_TOKEN
  }
  if constexpr (NT > 0) out[0] = hsum(acc0) + off[0];
  if constexpr (NT > 1) out[1] = hsum(acc1) + off[1];
  if constexpr (NT > 2) out[2] = hsum(acc2) + off[2];
  if constexpr (NT > 3) out[3] = hsum(acc3) + off[3];
#else
  float acc[NT] = {};
  int q[QK];
  for (std::int64_t b = 0; b < nb; ++b) {
    float d[2], m = 0;
    sub_scales<TY>(row, b, d, &m);
    sub_weights_scalar<TY>(row, b, q);
    for (int t = 0; t < NT; ++t) {
      int lo = 0, hi = 0;
      for (int j = 0; j < QK / 2; ++j) lo += q[j] * xq[t][b * QK + j];
      for (int j = QK / 2; j < QK; ++j) hi += q[j] * xq[t][b * QK + j];
      acc[t] += xd[t][b] * (d[0] * float(lo) + d[1] * float(hi));
      if constexpr (!kSigned<TY>) off[t] += m * xs[t][b];
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = acc[t] + off[t];
#endif
}

template <TT TY>
void row_tokens(const std::byte* row, const Q8Acts& a, std::int64_t t0, int nt, std::int64_t nb, float* out) noexcept {
  switch (nt) {
    case 1: row_dot<TY, 1>(row, a, t0, nb, out); break;
    case 2: row_dot<TY, 2>(row, a, t0, nb, out); break;
    case 3: row_dot<TY, 3>(row, a, t0, nb, out); break;
    default: row_dot<TY, 4>(row, a, t0, nb, out); break;
  }
}

}  // namespace

void quantize_acts(const float* x, std::int64_t T, std::int64_t n, Q8Acts& a) {
  const std::int64_t nb = n / QK;
  a.T = T;
  a.n = n;
  a.q.resize(std::size_t(T * n));
  a.d.resize(std::size_t(T * nb));
  a.s.resize(std::size_t(T * nb));
  for (std::int64_t i = 0; i < T * nb; ++i) {
    const float* v = x + i * QK;
    std::int8_t* q = a.q.data() + i * QK;
    float amax = 0.0f, sum = 0.0f;
    for (int j = 0; j < QK; ++j) {
      amax = std::max(amax, std::fabs(v[j]));
      sum += v[j];  // NaN / Inf anywhere in the block makes it non-finite (max drops NaN)
    }
    if (!std::isfinite(sum) || !std::isfinite(amax)) {
      std::fill_n(q, QK, std::int8_t(0));
      a.d[std::size_t(i)] = a.s[std::size_t(i)] = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    if (amax < 1e-30f) {  // all zero (or too small to have a normal 1 / d)
      std::fill_n(q, QK, std::int8_t(0));
      a.d[std::size_t(i)] = a.s[std::size_t(i)] = 0.0f;
      continue;
    }
    const float d = amax / 127.0f, id = 127.0f / amax;
    int qsum = 0;
    for (int j = 0; j < QK; ++j) {
      const int qi = std::clamp(int(std::nearbyint(v[j] * id)), -127, 127);
      q[j] = std::int8_t(qi);
      qsum += qi;
    }
    a.d[std::size_t(i)] = d;
    a.s[std::size_t(i)] = d * float(qsum);
  }
}

namespace {

void check_q8(const detail::WeightView& w, const Q8Acts& a) {
  if (!has_quant_dot(w.type) || a.n != w.cols)
    throw Error(ErrorCode::InvalidArgument,
                "q8_matmul: needs quantized weights (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) with as many "
                "columns as the activations");
}

// Rows [r0, r1) of y = W . x for the activations of a.
void q8_rows(const detail::WeightView& w, const Q8Acts& a, float* y, std::int64_t r0, std::int64_t r1) noexcept {
  const std::int64_t rows = w.rows, nb = w.cols / QK, T = a.T;
  const std::size_t stride = w.row_stride();
  float out[4];
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::byte* row = w.data + std::size_t(r) * stride;
    // (Software prefetch of the row 4 ahead measured slower in BM_q8_matmul_decode_batch and
    // on SmolLM2: left out.)
    for (std::int64_t t0 = 0; t0 < T; t0 += 4) {
      const int nt = int(std::min<std::int64_t>(4, T - t0));
      dispatch(w.type, [&](auto type) { row_tokens<decltype(type)::value>(row, a, t0, nt, nb, out); });
      for (int k = 0; k < nt; ++k) y[(t0 + k) * rows + r] = out[k];
    }
  }
}

}  // namespace

void q8_matmul(const detail::WeightView& w, const Q8Acts& a, float* y, ThreadPool& pool) {
  const MatmulOut one[] = {{&w, y}};
  q8_matmul_many(one, a, pool);
}

void q8_matmul_many(std::span<const MatmulOut> outs, const Q8Acts& a, ThreadPool& pool) {
  std::int64_t total = 0;
  for (const MatmulOut& o : outs) {
    check_q8(*o.w, a);
    total += o.w->rows;
  }
  pool.parallel_for(total, [&](std::int64_t g0, std::int64_t g1) {
    for_rows_of(outs, g0, g1, [&](const MatmulOut& o, std::int64_t r0, std::int64_t r1) { q8_rows(*o.w, a, o.y, r0, r1); });
  });
}

}  // namespace vireo::cpu
