// One 32-weight (sub-)block of a quantized row, decoded for the fused kernels: its integer
// weights, the scales of its products and the multiplier of the activations' block sum, for
// every type vireo reads (the K-quants' 256-element super-blocks are read 32 weights at a
// time). Shared by the 8-bit-activation kernels (q8_dot.cpp) and the fp32 decode dots
// (quant_dot.cpp); gguf/quant.cpp's dequantize is the reference both are tested against.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cpu/quant_dot.hpp"  // half_at
#include "gguf/kquant.hpp"
#include "vireo/gguf.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace vireo::cpu::qblock {

using TT = gguf::TensorType;
constexpr int QK = 32;

// ---- one 32-weight sub-block of a row, decoded ------------------------------------------
// Every type is read 32 weights at a time, the granularity of the activations' scales (the
// K-quants' sub-blocks are 32 wide; Q6_K's scales cover 16, so its sub-block has two). What
// a sub-block contributes to W_row . x:   sum over the two halves h of  d_h dx sum(q x)
// + m sx, with q the integer weights (signed for Q8_0, Q6_K and IQ4_NL, whose q are its
// codebook's levels; unsigned otherwise) and m the multiplier of x's block sum (Q4_0: -8 d,
// Q5_0: -16 d, Q4_1 / Q5_1: m, Q4_K / Q5_K: -dmin * min; none for the signed types).
template <TT TY>
constexpr bool kSigned = TY == TT::Q8_0 || TY == TT::Q3_K || TY == TT::Q6_K || TY == TT::IQ4_NL || TY == TT::IQ4_XS;

// The block of a row that holds its sub-block b (a K-quant super-block holds 8).
template <TT TY>
inline const std::byte* block_of(const std::byte* row, std::int64_t b) noexcept {
  constexpr std::size_t kSubBlocks = gguf::block_elements(TY) / QK;
  return row + std::size_t(b) / kSubBlocks * gguf::block_bytes(TY);
}

// Scales and offset of sub-block b (no weights): d[0] for elements 0-15, d[1] for 16-31.
template <TT TY>
inline void sub_scales(const std::byte* row, std::int64_t b, float* d, float* m) noexcept {
  if constexpr (TY == TT::Q8_0 || TY == TT::Q4_0 || TY == TT::Q4_1 || TY == TT::Q5_0 || TY == TT::Q5_1 ||
                TY == TT::IQ4_NL) {
    const std::byte* blk = block_of<TY>(row, b);
    d[0] = d[1] = half_at(blk);
    *m = TY == TT::Q4_0 ? -8.0f * d[0] : TY == TT::Q5_0 ? -16.0f * d[0] : kSigned<TY> ? 0.0f : half_at(blk + 2);
  } else if constexpr (TY == TT::Q4_K || TY == TT::Q5_K) {
    const std::byte* blk = block_of<TY>(row, b);
    unsigned sc = 0, mn = 0;
    detail::k_scale_min(reinterpret_cast<const std::uint8_t*>(blk + 4), int(b & 7), &sc, &mn);
    d[0] = d[1] = half_at(blk) * float(sc);
    *m = -(half_at(blk + 2) * float(mn));
  } else if constexpr (TY == TT::IQ4_XS) {  // sub-block s: d * (its 6-bit scale - 32)
    const std::byte* blk = block_of<TY>(row, b);
    std::uint16_t scales_h;
    std::memcpy(&scales_h, blk + 2, 2);
    d[0] = d[1] = half_at(blk) * float(detail::iq4xs_scale(scales_h, reinterpret_cast<const std::uint8_t*>(blk + 4),
                                                           int(b & 7)));
    *m = 0.0f;
  } else if constexpr (TY == TT::Q3_K) {  // two 16-element groups, 2 s and 2 s + 1
    const std::byte* blk = block_of<TY>(row, b);
    const int s = int(b & 7);
    const auto* scales = reinterpret_cast<const std::uint8_t*>(blk + 96);
    const float dd = half_at(blk + 108);
    d[0] = dd * float(detail::q3k_scale(scales, 2 * s));
    d[1] = dd * float(detail::q3k_scale(scales, 2 * s + 1));
    *m = 0.0f;
  } else {  // Q6_K
    const std::byte* blk = block_of<TY>(row, b);
    const int s = int(b & 7);
    const auto* scales = reinterpret_cast<const std::int8_t*>(blk + 192);
    const float dd = half_at(blk + 208);
    d[0] = dd * float(scales[2 * s]);
    d[1] = dd * float(scales[2 * s + 1]);
    *m = 0.0f;
  }
}

#if defined(__AVX2__) && defined(__FMA__)
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
  const std::byte* blk = block_of<TY>(row, b);
  if constexpr (TY == TT::Q8_0) return load32(blk + 2);
  if constexpr (TY == TT::Q4_0) return nibbles(blk + 2);
  if constexpr (TY == TT::IQ4_NL || TY == TT::IQ4_XS) {  // each nibble indexes the 16 codebook levels (per 128-bit lane)
    const __m128i levels = _mm_loadu_si128(reinterpret_cast<const __m128i*>(detail::kIQ4NLValues));
    return _mm256_shuffle_epi8(_mm256_set_m128i(levels, levels),
                               nibbles(TY == TT::IQ4_NL ? blk + 2 : blk + 8 + 16 * (b & 7)));
  }
  if constexpr (TY == TT::Q4_1) return nibbles(blk + 4);
  if constexpr (TY == TT::Q5_0) return _mm256_or_si256(nibbles(blk + 6), fifth_bits(blk + 2));
  if constexpr (TY == TT::Q5_1) return _mm256_or_si256(nibbles(blk + 8), fifth_bits(blk + 4));
  if constexpr (TY == TT::Q4_K || TY == TT::Q5_K) {
    const int s = int(b & 7);
    const __m256i q = byte_field(load32(blk + (TY == TT::Q4_K ? 16 : 48) + 32 * (s >> 1)), 4 * (s & 1), 0x0F);
    if constexpr (TY == TT::Q4_K) return q;
    return _mm256_or_si256(q, _mm256_slli_epi16(byte_field(load32(blk + 16), s, 0x01), 4));
  }
  if constexpr (TY == TT::Q3_K) {
    // Sub-block s = 4 h + j: 2 bits at 2 j of qs[32 h + l], minus 4 unless bit s of hmask[l] is set.
    const int s = int(b & 7), h = s >> 2, j = s & 3;
    const __m256i lo = byte_field(load32(blk + 32 + 32 * h), 2 * j, 0x03);
    const __m256i hi = _mm256_slli_epi16(byte_field(load32(blk), s, 0x01), 2);
    return _mm256_sub_epi8(_mm256_or_si256(lo, hi), _mm256_set1_epi8(4));
  }
  // Q6_K: sub-block s = 4 h + g of the super-block; q - 32 in [-32, 31].
  const int s = int(b & 7), h = s >> 2, g = s & 3;
  const __m256i lo = byte_field(load32(blk + 64 * h + 32 * (g & 1)), 4 * (g >> 1), 0x0F);
  const __m256i hi = _mm256_slli_epi16(byte_field(load32(blk + 128 + 32 * h), 2 * g, 0x03), 4);
  return _mm256_sub_epi8(_mm256_or_si256(lo, hi), _mm256_set1_epi8(32));
}

#endif

// The integer weights of sub-block b (portable path; the same values as sub_weights).
template <TT TY>
inline void sub_weights_scalar(const std::byte* row, std::int64_t b, int* q) noexcept {
  auto u8 = [](const std::byte* p, int i) { return unsigned(std::uint8_t(p[i])); };
  if constexpr (TY == TT::Q8_0) {
    for (int j = 0; j < QK; ++j) q[j] = int(std::int8_t(block_of<TY>(row, b)[2 + j]));
  } else if constexpr (TY == TT::IQ4_NL || TY == TT::IQ4_XS) {
    const std::byte* qs = TY == TT::IQ4_NL ? block_of<TY>(row, b) + 2 : block_of<TY>(row, b) + 8 + 16 * (b & 7);
    for (int j = 0; j < QK / 2; ++j) {
      q[j] = detail::kIQ4NLValues[u8(qs, j) & 15u];
      q[j + QK / 2] = detail::kIQ4NLValues[u8(qs, j) >> 4];
    }
  } else if constexpr (TY == TT::Q4_0 || TY == TT::Q4_1 || TY == TT::Q5_0 || TY == TT::Q5_1) {
    constexpr std::size_t QS = TY == TT::Q4_0 ? 2 : TY == TT::Q4_1 ? 4 : TY == TT::Q5_0 ? 6 : 8;
    const std::byte* blk = block_of<TY>(row, b);
    std::uint32_t qh = 0;
    if constexpr (TY == TT::Q5_0 || TY == TT::Q5_1) std::memcpy(&qh, blk + QS - 4, 4);
    for (int j = 0; j < QK / 2; ++j) {
      q[j] = int((u8(blk + QS, j) & 15u) | ((qh >> j) & 1u) << 4);
      q[j + QK / 2] = int((u8(blk + QS, j) >> 4) | ((qh >> (j + QK / 2)) & 1u) << 4);
    }
  } else if constexpr (TY == TT::Q4_K || TY == TT::Q5_K) {
    const std::byte* blk = block_of<TY>(row, b);
    const int s = int(b & 7);
    const std::byte* qs = blk + (TY == TT::Q4_K ? 16 : 48) + 32 * (s >> 1);
    for (int l = 0; l < QK; ++l) {
      q[l] = int((u8(qs, l) >> (4 * (s & 1))) & 15u);
      if constexpr (TY == TT::Q5_K) q[l] |= int((u8(blk + 16, l) >> s) & 1u) << 4;
    }
  } else if constexpr (TY == TT::Q3_K) {
    const std::byte* blk = block_of<TY>(row, b);
    const int s = int(b & 7), h = s >> 2, j = s & 3;
    for (int l = 0; l < QK; ++l)
      q[l] = int((u8(blk + 32 + 32 * h, l) >> (2 * j)) & 3u) - ((u8(blk, l) >> s) & 1u ? 0 : 4);
  } else {  // Q6_K
    const std::byte* blk = block_of<TY>(row, b);
    const int s = int(b & 7), h = s >> 2, g = s & 3;
    for (int l = 0; l < QK; ++l)
      q[l] = int(((u8(blk + 64 * h + 32 * (g & 1), l) >> (4 * (g >> 1))) & 15u) |
                 ((u8(blk + 128 + 32 * h, l) >> (2 * g)) & 3u) << 4) - 32;
  }
}

/// f(std::integral_constant<TT, t>{}) for the eleven quantized types with fused kernels (Q8_0 for any other).
template <class F>
decltype(auto) dispatch(TT t, F&& f) {
  switch (t) {
    case TT::Q4_0: return f(std::integral_constant<TT, TT::Q4_0>{});
    case TT::IQ4_NL: return f(std::integral_constant<TT, TT::IQ4_NL>{});
    case TT::IQ4_XS: return f(std::integral_constant<TT, TT::IQ4_XS>{});
    case TT::Q4_1: return f(std::integral_constant<TT, TT::Q4_1>{});
    case TT::Q5_0: return f(std::integral_constant<TT, TT::Q5_0>{});
    case TT::Q5_1: return f(std::integral_constant<TT, TT::Q5_1>{});
    case TT::Q3_K: return f(std::integral_constant<TT, TT::Q3_K>{});
    case TT::Q4_K: return f(std::integral_constant<TT, TT::Q4_K>{});
    case TT::Q5_K: return f(std::integral_constant<TT, TT::Q5_K>{});
    case TT::Q6_K: return f(std::integral_constant<TT, TT::Q6_K>{});
    default: return f(std::integral_constant<TT, TT::Q8_0>{});
  }
}

}  // namespace vireo::cpu::qblock
