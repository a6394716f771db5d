// Fused quantized dot products (see quant_dot.hpp). AVX2/FMA when the build has it: the
// nibbles / int8 of 8 elements at a time are widened to int32, converted to float and
// FMA'd with x; one vector accumulator per block is scaled by the block's d. A portable
// scalar loop otherwise.
#include "cpu/quant_dot.hpp"

#include <cstring>

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
  return t == gguf::TensorType::Q8_0 || t == gguf::TensorType::Q4_0 || t == gguf::TensorType::Q4_1;
}

void block_sums(const float* x, std::int64_t n, float* sums) noexcept {
  for (std::int64_t b = 0; b < n / QK; ++b) {
    float s = 0.0f;
    for (int j = 0; j < QK; ++j) s += x[b * QK + j];
    sums[b] = s;
  }
}

float quant_dot(gguf::TensorType t, const std::byte* row, const float* x, const float* xs, std::int64_t n) noexcept {
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

// Per-block dequantization into 4 groups of 8 values: w[g][j] = value of element 8 g + j.
// Q8_0: q d; Q4_0: (q - 8) d; Q4_1: q d + m.
#ifdef VIREO_AVX2
inline void block_values(gguf::TensorType t, const std::byte* blk, __m256 w[4]) noexcept {
  if (t == gguf::TensorType::Q8_0) {
    const __m256 d = _mm256_set1_ps(half_at(blk));
    for (int g = 0; g < 4; ++g) {
      const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 2 + 8 * g));
      w[g] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d);
    }
    return;
  }
  const bool q41 = t == gguf::TensorType::Q4_1;
  const float df = half_at(blk);
  const __m256 d = _mm256_set1_ps(df);
  const __m256 m = _mm256_set1_ps(q41 ? half_at(blk + 2) : -8.0f * df);
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + (q41 ? 4 : 2)));
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(raw, mask), hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
  w[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)), d, m);
  w[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8))), d, m);
  w[2] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)), d, m);
  w[3] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))), d, m);
}

// T tokens at once with NACC accumulators per token: T * NACC >= 8 independent FMA chains
// (two FMA ports x 4 cycles of latency), T * NACC + 4 weight vectors <= 16 ymm registers.
// (One accumulator per token made T = 2 latency-bound, slower per token than T = 1.
// BM_matmul_decode_batch, [8192, 2048], 2-core EPYC VM, interleaved runs, ms per step:
// T = 2: Q8_0 1.29 -> 0.96, Q4_1 1.22 -> 0.85; T = 4: Q8_0 1.74 -> 1.61-1.65, Q4_1 1.43 ->
// 1.31; T = 8 (one pass of 8 instead of two of 4): Q8_0 3.40 -> 3.30, Q4_1 3.02 -> 2.90.)
template <int T>
void dot_tokens(gguf::TensorType t, const std::byte* row, const float* x, std::int64_t xs, std::int64_t n,
                float* out) noexcept {
  constexpr int NACC = T <= 2 ? 4 : T <= 4 ? 2 : 1;
  const std::size_t bb = gguf::block_bytes(t);
  __m256 acc[T][NACC];
  for (int k = 0; k < T; ++k)
    for (int a = 0; a < NACC; ++a) acc[k][a] = _mm256_setzero_ps();
  for (std::int64_t b = 0; b < n / QK; ++b, row += bb) {
    __m256 w[4];
    block_values(t, row, w);
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
#ifdef VIREO_AVX2
  switch (T) {
    case 1: return dot_tokens<1>(t, row, x, xs, n, out);
    case 2: return dot_tokens<2>(t, row, x, xs, n, out);
    case 3: return dot_tokens<3>(t, row, x, xs, n, out);
    case 4: return dot_tokens<4>(t, row, x, xs, n, out);
    case 5: return dot_tokens<5>(t, row, x, xs, n, out);
    case 6: return dot_tokens<6>(t, row, x, xs, n, out);
    case 7: return dot_tokens<7>(t, row, x, xs, n, out);
    default: return dot_tokens<8>(t, row, x, xs, n, out);
  }
#else
  float vals[QK];
  for (int k = 0; k < T; ++k) out[k] = 0.0f;
  const std::size_t bb = gguf::block_bytes(t);
  for (std::int64_t b = 0; b < n / QK; ++b, row += bb) {
    gguf::dequantize(t, row, vals, QK);
    for (int k = 0; k < T; ++k)
      for (int j = 0; j < QK; ++j) out[k] += vals[j] * x[k * xs + b * QK + j];
  }
#endif
}

}  // namespace vireo::cpu
