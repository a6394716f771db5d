// Small AVX2 helpers shared by the CPU kernels (only under __AVX2__ + __FMA__; the kernels
// have portable scalar paths otherwise).
#pragma once
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

namespace vireo::cpu {

/// Sum of the 8 lanes of v.
inline float hsum(__m256 v) noexcept {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_hadd_ps(s, s);
  s = _mm_hadd_ps(s, s);
  return _mm_cvtss_f32(s);
}

}  // namespace vireo::cpu
#endif
