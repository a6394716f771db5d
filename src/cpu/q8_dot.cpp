// Integer dot products of quantized weights with 8-bit activations (see q8_dot.hpp).
#include "cpu/q8_dot.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "cpu/quant_dot.hpp"
#include "cpu/simd.hpp"
#include "vireo/error.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VIREO_Q8_AVX2 1
#endif

namespace vireo::cpu {
namespace {

constexpr int QK = 32;
using TT = gguf::TensorType;

// ---- one 32-weight sub-block of a row, decoded ------------------------------------------
// Every type is read 32 weights at a time, the granularity of the activations' scales (the
// K-quants' sub-blocks are 32 wide; Q6_K's scales cover 16, so its sub-block has two). What
// a sub-block contributes to W_row . x:   sum over the two halves h of  d_h dx sum(q x)
// + m sx, with q the integer weights (signed for Q8_0 and Q6_K, unsigned otherwise) and m the
// multiplier of x's block sum (Q4_0: -8 d, Q5_0: -16 d, Q4_1 / Q5_1: m, Q4_K / Q5_K:
// -dmin * min; none for the signed types).
template <TT TY>
constexpr bool kSigned = TY == TT::Q8_0 || TY == TT::Q6_K;

template <TT TY>
constexpr std::size_t kSuperBytes = TY == TT::Q4_K ? 144 : TY == TT::Q5_K ? 176 : 210;  // K-quants

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K super-block (gguf/quant.cpp
// has the reference; this one feeds the integer kernel).
inline void k_scale_min(const std::byte* s8, int j, float* sc, float* mn) noexcept {
  const auto* s = reinterpret_cast<const std::uint8_t*>(s8);
  if (j < 4) {
    *sc = float(s[j] & 63u);
    *mn = float(s[j + 4] & 63u);
  } else {
    *sc = float((s[j + 4] & 0x0Fu) | (unsigned(s[j - 4] >> 6) << 4));
    *mn = float((s[j + 4] >> 4) | (unsigned(s[j] >> 6) << 4));
  }
}

// Scales and offset of sub-block b (no weights): d[0] for elements 0-15, d[1] for 16-31.
template <TT TY>
inline void sub_scales(const std::byte* row, std::int64_t b, float* d, float* m) noexcept {
  if constexpr (TY == TT::Q8_0 || TY == TT::Q4_0 || TY == TT::Q4_1 || TY == TT::Q5_0 || TY == TT::Q5_1) {
    constexpr std::size_t BB = TY == TT::Q8_0 ? 34 : TY == TT::Q4_0 ? 18 : TY == TT::Q4_1 ? 20 : TY == TT::Q5_0 ? 22 : 24;
    const std::byte* blk = row + std::size_t(b) * BB;
    d[0] = d[1] = half_at(blk);
    *m = TY == TT::Q4_0 ? -8.0f * d[0] : TY == TT::Q5_0 ? -16.0f * d[0] : TY == TT::Q8_0 ? 0.0f : half_at(blk + 2);
  } else if constexpr (TY == TT::Q4_K || TY == TT::Q5_K) {
    const std::byte* blk = row + std::size_t(b >> 3) * kSuperBytes<TY>;
    float sc = 0, mn = 0;
    k_scale_min(blk + 4, int(b & 7), &sc, &mn);
    d[0] = d[1] = half_at(blk) * sc;
    *m = -(half_at(blk + 2) * mn);
  } else {  // Q6_K
    const std::byte* blk = row + std::size_t(b >> 3) * 210;
    const int s = int(b & 7);
    const auto* scales = reinterpret_cast<const std::int8_t*>(blk + 192);
    const float dd = half_at(blk + 208);
    d[0] = dd * float(scales[2 * s]);
    d[1] = dd * float(scales[2 * s + 1]);
    *m = 0.0f;
  }
}

#ifdef VIREO_Q8_AVX2
// The 32 nibbles of a Q4 block in element order: low nibbles (elements 0-15), then high.
inline __m256i nibbles(const std::byte* qs) noexcept {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i mask = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), mask), _mm_and_si128(raw, mask));
}

// 0x10 in byte j where bit j of the little-endian u32 at p is set (Q5_0 / Q5_1's fifth bits).
inline __m256i fifth_bits(const std::byte* p) noexcept {
  std::uint32_t qh;
  std::memcpy(&qh, p, 4);
  // Byte j of each 128-bit lane takes byte j / 8 (+ 2 in the upper lane) of qh, then tests bit j % 8.
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(int(qh)), _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2,
                                                   2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

// (v >> shift) & mask in every byte (16-bit shifts: the bits that cross into a byte are masked off).
inline __m256i byte_field(__m256i v, int shift, char mask) noexcept {
  return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(shift)), _mm256_set1_epi8(mask));
}

inline __m256i load32(const std::byte* p) noexcept { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// The integer weights of sub-block b as 32 bytes (signed for kSigned<TY>).
template <TT TY>
inline __m256i sub_weights(const std::byte* row, std::int64_t b) noexcept {
  if constexpr (TY == TT::Q8_0) return load32(row + std::size_t(b) * 34 + 2);
  if constexpr (TY == TT::Q4_0) return nibbles(row + std::size_t(b) * 18 + 2);
  if constexpr (TY == TT::Q4_1) return nibbles(row + std::size_t(b) * 20 + 4);
  if constexpr (TY == TT::Q5_0) {
    const std::byte* blk = row + std::size_t(b) * 22;
    return _mm256_or_si256(nibbles(blk + 6), fifth_bits(blk + 2));
  }
  if constexpr (TY == TT::Q5_1) {
    const std::byte* blk = row + std::size_t(b) * 24;
    return _mm256_or_si256(nibbles(blk + 8), fifth_bits(blk + 4));
  }
  if constexpr (TY == TT::Q4_K || TY == TT::Q5_K) {
    const std::byte* blk = row + std::size_t(b >> 3) * kSuperBytes<TY>;
    const int s = int(b & 7);
    const __m256i q = byte_field(load32(blk + (TY == TT::Q4_K ? 16 : 48) + 32 * (s >> 1)), 4 * (s & 1), 0x0F);
    if constexpr (TY == TT::Q4_K) return q;
    return _mm256_or_si256(q, _mm256_slli_epi16(byte_field(load32(blk + 16), s, 0x01), 4));
  }
  // Q6_K: sub-block s = 4 h + g of the super-block; q - 32 in [-32, 31].
  const std::byte* blk = row + std::size_t(b >> 3) * 210;
  const int s = int(b & 7), h = s >> 2, g = s & 3;
  const __m256i lo = byte_field(load32(blk + 64 * h + 32 * (g & 1)), 4 * (g >> 1), 0x0F);
  const __m256i hi = _mm256_slli_epi16(byte_field(load32(blk + 128 + 32 * h), 2 * g, 0x03), 4);
  return _mm256_sub_epi8(_mm256_or_si256(lo, hi), _mm256_set1_epi8(32));
}

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
#else
// The integer weights of sub-block b (portable path; the same values as sub_weights).
template <TT TY>
inline void sub_weights_scalar(const std::byte* row, std::int64_t b, int* q) noexcept {
  auto u8 = [](const std::byte* p, int i) { return unsigned(std::uint8_t(p[i])); };
  if constexpr (TY == TT::Q8_0) {
    for (int j = 0; j < QK; ++j) q[j] = int(std::int8_t(row[std::size_t(b) * 34 + 2 + j]));
  } else if constexpr (TY == TT::Q4_0 || TY == TT::Q4_1 || TY == TT::Q5_0 || TY == TT::Q5_1) {
    constexpr std::size_t BB = TY == TT::Q4_0 ? 18 : TY == TT::Q4_1 ? 20 : TY == TT::Q5_0 ? 22 : 24;
    constexpr std::size_t QS = TY == TT::Q4_0 ? 2 : TY == TT::Q4_1 ? 4 : TY == TT::Q5_0 ? 6 : 8;
    const std::byte* blk = row + std::size_t(b) * BB;
    std::uint32_t qh = 0;
    if constexpr (TY == TT::Q5_0 || TY == TT::Q5_1) std::memcpy(&qh, blk + QS - 4, 4);
    for (int j = 0; j < QK / 2; ++j) {
      q[j] = int((u8(blk + QS, j) & 15u) | ((qh >> j) & 1u) << 4);
      q[j + QK / 2] = int((u8(blk + QS, j) >> 4) | ((qh >> (j + QK / 2)) & 1u) << 4);
    }
  } else if constexpr (TY == TT::Q4_K || TY == TT::Q5_K) {
    const std::byte* blk = row + std::size_t(b >> 3) * kSuperBytes<TY>;
    const int s = int(b & 7);
    const std::byte* qs = blk + (TY == TT::Q4_K ? 16 : 48) + 32 * (s >> 1);
    for (int l = 0; l < QK; ++l) {
      q[l] = int((u8(qs, l) >> (4 * (s & 1))) & 15u);
      if constexpr (TY == TT::Q5_K) q[l] |= int((u8(blk + 16, l) >> s) & 1u) << 4;
    }
  } else {  // Q6_K
    const std::byte* blk = row + std::size_t(b >> 3) * 210;
    const int s = int(b & 7), h = s >> 2, g = s & 3;
    for (int l = 0; l < QK; ++l)
      q[l] = int(((u8(blk + 64 * h + 32 * (g & 1), l) >> (4 * (g >> 1))) & 15u) |
                 ((u8(blk + 128 + 32 * h, l) >> (2 * g)) & 3u) << 4) - 32;
  }
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

bool has_q8_dot(gguf::TensorType t) noexcept {
  switch (t) {
    case TT::Q8_0:
    case TT::Q4_0:
    case TT::Q4_1:
    case TT::Q5_0:
    case TT::Q5_1:
    case TT::Q4_K:
    case TT::Q5_K:
    case TT::Q6_K: return true;
    default: return false;
  }
}

void q8_matmul(const detail::WeightView& w, const Q8Acts& a, float* y, ThreadPool& pool) {
  if (!has_q8_dot(w.type) || a.n != w.cols)
    throw Error(ErrorCode::InvalidArgument,
                "q8_matmul: needs quantized weights (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) with as many "
                "columns as the activations");
  const std::int64_t rows = w.rows, nb = w.cols / QK, T = a.T;
  const std::size_t stride = w.row_stride();
  pool.parallel_for(rows, [&](std::int64_t r0, std::int64_t r1) {
    float out[4];
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::byte* row = w.data + std::size_t(r) * stride;
      // (Software prefetch of the row 4 ahead measured slower in BM_q8_matmul_decode_batch,
      // Q8_0 at T = 1: 0.66-0.75 vs 0.55-0.58 ms, and the same on SmolLM2: left out.)
      for (std::int64_t t0 = 0; t0 < T; t0 += 4) {
        const int nt = int(std::min<std::int64_t>(4, T - t0));
        switch (w.type) {
          case TT::Q8_0: row_tokens<TT::Q8_0>(row, a, t0, nt, nb, out); break;
          case TT::Q4_0: row_tokens<TT::Q4_0>(row, a, t0, nt, nb, out); break;
          case TT::Q4_1: row_tokens<TT::Q4_1>(row, a, t0, nt, nb, out); break;
          case TT::Q5_0: row_tokens<TT::Q5_0>(row, a, t0, nt, nb, out); break;
          case TT::Q5_1: row_tokens<TT::Q5_1>(row, a, t0, nt, nb, out); break;
          case TT::Q4_K: row_tokens<TT::Q4_K>(row, a, t0, nt, nb, out); break;
          case TT::Q5_K: row_tokens<TT::Q5_K>(row, a, t0, nt, nb, out); break;
          default: row_tokens<TT::Q6_K>(row, a, t0, nt, nb, out); break;
        }
        for (int k = 0; k < nt; ++k) y[(t0 + k) * rows + r] = out[k];
      }
    }
  });
}

}  // namespace vireo::cpu
