// Fused quantized dot products (see quant_dot.hpp). AVX2/FMA when the build has it: the
// nibbles / int8 of 8 elements at a time are widened to int32, converted to float and
// FMA'd with x; one vector accumulator per block is scaled by the block's d. The types
// without a one-token kernel of their own (Q5_0, Q5_1, the K-quants) and every multi-token
// step dequantize each 32-weight sub-block into registers (cpu/quant_blocks.hpp). A
// portable scalar loop otherwise.
#include "cpu/quant_dot.hpp"

#include <cstring>

#include "cpu/quant_blocks.hpp"
#include "cpu/simd.hpp"
#include "gguf/fp16.hpp"

#if defined(__AVX2__) && defined(__FMA__) || defined(__F16C__)
#include <immintrin.h>
#endif
#if defined(__AVX2__) && defined(__FMA__)
#define VIREO_AVX2 1
#endif

namespace vireo::cpu {
namespace {

constexpr int QK = 32;

#ifdef VIREO_AVX2
// sum_j q_j x_j for the 32 nibbles of a Q4 block (low nibbles -> x[0..15], high -> x[16..31]).
inline __m256 nibble_dot(const std::byte* qs, const float* x) noexcept {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(raw, mask);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
  __m256 acc = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)), _mm256_loadu_ps(x));
  acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8))), _mm256_loadu_ps(x + 8), acc);
  acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)), _mm256_loadu_ps(x + 16), acc);
  acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))), _mm256_loadu_ps(x + 24), acc);
  return acc;
}
inline __m256 int8_dot(const std::byte* qs, const float* x) noexcept {
  __m256 acc = _mm256_setzero_ps();
  for (int k = 0; k < 4; ++k) {
    const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(qs + 8 * k));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), _mm256_loadu_ps(x + 8 * k), acc);
  }
  return acc;
}
#else
inline float nibble_dot(const std::byte* qs, const float* x) noexcept {
  float s = 0.0f;
  for (int j = 0; j < 16; ++j) {
    const unsigned b = unsigned(qs[j]);
    s += float(b & 15u) * x[j] + float(b >> 4) * x[j + 16];
  }
  return s;
}
inline float int8_dot(const std::byte* qs, const float* x) noexcept {
  float s = 0.0f;
  for (int j = 0; j < QK; ++j) s += float(std::int8_t(qs[j])) * x[j];
  return s;
}
#endif

}  // namespace

bool has_quant_dot(gguf::TensorType t) noexcept {
  switch (t) {
    case gguf::TensorType::Q8_0:
    case gguf::TensorType::Q4_0:
    case gguf::TensorType::Q4_1:
    case gguf::TensorType::Q5_0:
    case gguf::TensorType::Q5_1:
    case gguf::TensorType::Q4_K:
    case gguf::TensorType::Q5_K:
    case gguf::TensorType::Q3_K:
    case gguf::TensorType::Q6_K:
    case gguf::TensorType::IQ4_NL:
    case gguf::TensorType::IQ4_XS: return true;
    default: return false;
  }
}

void block_sums(const float* x, std::int64_t n, float* sums) noexcept {
  for (std::int64_t b = 0; b < n / QK; ++b) {
    float s = 0.0f;
    for (int j = 0; j < QK; ++j) s += x[b * QK + j];
    sums[b] = s;
  }
}

#ifdef VIREO_AVX2
namespace {

// One token through a row of a type read 32 weights at a time (cpu/quant_blocks.hpp): each
// sub-block's integer weights are widened and multiplied with x into two partial sums (one
// per 16-element scale), which are then scaled, and its offset term goes through x's block
// sums: 4 + 2 FMAs per sub-block, where dequantizing first (dot_tokens) takes 4 + 4.
template <gguf::TensorType TY>
float dot_one(const std::byte* row, const float* x, const float* xs, std::int64_t n) noexcept {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();  // even / odd sub-blocks
  float offset = 0.0f;
  auto widen = [](__m128i v) {
    return _mm256_cvtepi32_ps(qblock::kSigned<TY> ? _mm256_cvtepi8_epi32(v) : _mm256_cvtepu8_epi32(v));
  };
  auto sub = [&](std::int64_t b, __m256 acc) {
    float d[2], m = 0.0f;
    qblock::sub_scales<TY>(row, b, d, &m);
    const __m256i q = qblock::sub_weights<TY>(row, b);
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    const float* xb = x + b * QK;
    __m256 p0 = _mm256_mul_ps(widen(lo), _mm256_loadu_ps(xb));
    p0 = _mm256_fmadd_ps(widen(_mm_srli_si128(lo, 8)), _mm256_loadu_ps(xb + 8), p0);
    __m256 p1 = _mm256_mul_ps(widen(hi), _mm256_loadu_ps(xb + 16));
    p1 = _mm256_fmadd_ps(widen(_mm_srli_si128(hi, 8)), _mm256_loadu_ps(xb + 24), p1);
    if constexpr (!qblock::kSigned<TY>) offset += m * xs[b];
    return _mm256_fmadd_ps(_mm256_set1_ps(d[1]), p1, _mm256_fmadd_ps(_mm256_set1_ps(d[0]), p0, acc));
  };
  const std::int64_t nb = n / QK;
  std::int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    acc0 = sub(b, acc0);
    acc1 = sub(b + 1, acc1);
  }
  if (b < nb) acc0 = sub(b, acc0);
  return hsum(_mm256_add_ps(acc0, acc1)) + offset;
}

}  // namespace
#endif

float quant_dot(gguf::TensorType t, const std::byte* row, const float* x, const float* xs, std::int64_t n) noexcept {
  if (t != gguf::TensorType::Q8_0 && t != gguf::TensorType::Q4_0 && t != gguf::TensorType::Q4_1) {
#ifdef VIREO_AVX2
    return qblock::dispatch(t, [&](auto type) { return dot_one<decltype(type)::value>(row, x, xs, n); });
#else
    float out = 0.0f;  // the read-only types: their sub-blocks dequantized in registers
    quant_dot_tokens(t, row, x, 0, 1, n, &out);
    return out;
#endif
  }
  const std::int64_t nb = n / QK;
  float offset = 0.0f;  // sum of the per-block x-sum terms (Q4_0 / Q4_1)
#ifdef VIREO_AVX2
  __m256 acc = _mm256_setzero_ps();
#define VIREO_ACC(d, v) acc = _mm256_fmadd_ps(_mm256_set1_ps(d), (v), acc)
#else
  float acc = 0.0f;
#define VIREO_ACC(d, v) acc += (d) * (v)
#endif
  switch (t) {
    case gguf::TensorType::Q8_0:
      for (std::int64_t b = 0; b < nb; ++b, row += 34) VIREO_ACC(half_at(row), int8_dot(row + 2, x + b * QK));
      break;
    case gguf::TensorType::Q4_0:
      for (std::int64_t b = 0; b < nb; ++b, row += 18) {
        const float d = half_at(row);
        VIREO_ACC(d, nibble_dot(row + 2, x + b * QK));
        offset -= 8.0f * d * xs[b];
      }
      break;
    case gguf::TensorType::Q4_1:
      for (std::int64_t b = 0; b < nb; ++b, row += 20) {
        VIREO_ACC(half_at(row), nibble_dot(row + 4, x + b * QK));
        offset += half_at(row + 2) * xs[b];
      }
      break;
    default:
      break;
  }
#undef VIREO_ACC
#ifdef VIREO_AVX2
  return hsum(acc) + offset;
#else
  return acc + offset;
#endif
}

namespace {

#ifdef VIREO_AVX2
// Sub-block b (32 weights) dequantized into 4 groups of 8 values: w[g][j] = value of element
// 8 g + j, q * d + m with the scales of cpu/quant_blocks.hpp (Q6_K: d per 16 weights).
template <gguf::TensorType TY>
inline void sub_values(const std::byte* row, std::int64_t b, __m256 w[4]) noexcept {
  float d[2], m = 0.0f;
  qblock::sub_scales<TY>(row, b, d, &m);
  const __m256i q = qblock::sub_weights<TY>(row, b);
  const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  auto widen = [](__m128i v) {
    return _mm256_cvtepi32_ps(qblock::kSigned<TY> ? _mm256_cvtepi8_epi32(v) : _mm256_cvtepu8_epi32(v));
  };
  const __m256 d0 = _mm256_set1_ps(d[0]), d1 = _mm256_set1_ps(d[1]), mm = _mm256_set1_ps(m);
  w[0] = _mm256_fmadd_ps(widen(lo), d0, mm);
  w[1] = _mm256_fmadd_ps(widen(_mm_srli_si128(lo, 8)), d0, mm);
  w[2] = _mm256_fmadd_ps(widen(hi), d1, mm);
  w[3] = _mm256_fmadd_ps(widen(_mm_srli_si128(hi, 8)), d1, mm);
}

// T tokens at once with NACC accumulators per token: T * NACC >= 8 independent FMA chains
// (two FMA ports x 4 cycles of latency), T * NACC + 4 weight vectors <= 16 ymm registers.
// (One accumulator per token made T = 2 latency-bound, slower per token than T = 1.
// BM_matmul_decode_batch, [8192, 2048], 2-core EPYC VM, interleaved runs, ms per step:
// T = 2: Q8_0 1.29 -> 0.96, Q4_1 1.22 -> 0.85; T = 4: Q8_0 1.74 -> 1.61-1.65, Q4_1 1.43 ->
// 1.31; T = 8 (one pass of 8 instead of two of 4): Q8_0 3.40 -> 3.30, Q4_1 3.02 -> 2.90.)
template <gguf::TensorType TY, int T>
void dot_tokens(const std::byte* row, const float* x, std::int64_t xs, std::int64_t n, float* out) noexcept {
  constexpr int NACC = T <= 2 ? 4 : T <= 4 ? 2 : 1;
  __m256 acc[T][NACC];
  for (int k = 0; k < T; ++k)
    for (int a = 0; a < NACC; ++a) acc[k][a] = _mm256_setzero_ps();
  for (std::int64_t b = 0; b < n / QK; ++b) {
    __m256 w[4];
    sub_values<TY>(row, b, w);
    for (int k = 0; k < T; ++k) {
      const float* xb = x + k * xs + b * QK;
      for (int g = 0; g < 4; ++g) acc[k][g % NACC] = _mm256_fmadd_ps(w[g], _mm256_loadu_ps(xb + 8 * g), acc[k][g % NACC]);
    }
  }
  for (int k = 0; k < T; ++k) {
    __m256 s = acc[k][0];
    for (int a = 1; a < NACC; ++a) s = _mm256_add_ps(s, acc[k][a]);
    out[k] = hsum(s);
  }
}
#endif

}  // namespace

void quant_dot_tokens(gguf::TensorType t, const std::byte* row, const float* x, std::int64_t xs, int T,
                      std::int64_t n, float* out) noexcept {
  qblock::dispatch(t, [&](auto type) {
    constexpr gguf::TensorType TY = decltype(type)::value;
#ifdef VIREO_AVX2
    switch (T) {
      case 1: return dot_tokens<TY, 1>(row, x, xs, n, out);
      case 2: return dot_tokens<TY, 2>(row, x, xs, n, out);
      case 3: return dot_tokens<TY, 3>(row, x, xs, n, out);
      case 4: return dot_tokens<TY, 4>(row, x, xs, n, out);
      case 5: return dot_tokens<TY, 5>(row, x, xs, n, out);
      case 6: return dot_tokens<TY, 6>(row, x, xs, n, out);
      case 7: return dot_tokens<TY, 7>(row, x, xs, n, out);
      default: return dot_tokens<TY, 8>(row, x, xs, n, out);
    }
#else
    int q[QK];
    for (int k = 0; k < T; ++k) out[k] = 0.0f;
    for (std::int64_t b = 0; b < n / QK; ++b) {
      float d[2], m = 0.0f;
      qblock::sub_scales<TY>(row, b, d, &m);
      qblock::sub_weights_scalar<TY>(row, b, q);
      for (int k = 0; k < T; ++k)
        for (int j = 0; j < QK; ++j) out[k] += (float(q[j]) * d[j / 16] + m) * x[k * xs + b * QK + j];
    }
#endif
  });
}

}  // namespace vireo::cpu
