// IEEE half (fp16) and bfloat16 <-> fp32 conversions, exact and branch-free.
//
// fp16 -> fp32 is Marat Dukhan's (FP16 library) trick, the one ggml uses: the 15 exponent+
// mantissa bits are shifted into an fp32 and rescaled by 2^-112 for normal numbers (exact,
// a power-of-two scale), while subnormals are rebuilt as (0.5 + m * 2^-24) - 0.5 (exact);
// Inf/NaN come out of the rescale with an all-ones exponent. The select between the two
// paths has no branch, so loops over it vectorize. fp32 -> fp16 rounds to nearest even
// (what F16C's vcvtps2ph and ggml's GGML_FP32_TO_FP16 do), NaN -> quiet NaN 0x7E00.
// bf16 is the top half of an fp32: widening is a shift; narrowing rounds to nearest even.
#pragma once
#include <bit>
#include <cstdint>
#include <cstring>

namespace vireo::detail {

inline float fp16_to_fp32(std::uint16_t h) noexcept {
  const std::uint32_t w = std::uint32_t(h) << 16;
  const std::uint32_t sign = w & 0x80000000u;
  const std::uint32_t two_w = w + w;  // exponent+mantissa at the top, sign dropped
  const float normalized = std::bit_cast<float>((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
  const float denormalized = std::bit_cast<float>((two_w >> 17) | (126u << 23)) - 0.5f;
  // Select with a mask rather than ?: so the loops that call this stay branch-free.
  const std::uint32_t is_denormal = 0u - std::uint32_t(two_w < (1u << 27));
  const std::uint32_t bits = (std::bit_cast<std::uint32_t>(denormalized) & is_denormal) |
                             (std::bit_cast<std::uint32_t>(normalized) & ~is_denormal);
  return std::bit_cast<float>(sign | bits);
}

inline std::uint16_t fp32_to_fp16(float f) noexcept {
  // Scaling up then down by powers of two pushes values that overflow fp16 to Inf and
  // leaves others exact; adding a power of two chosen from f's exponent makes the fp32
  // adder do the round-to-nearest-even at fp16's mantissa width.
  float base = (std::bit_cast<float>(std::bit_cast<std::uint32_t>(f) & 0x7FFFFFFFu) * 0x1.0p+112f) *
               0x1.0p-110f;
  const std::uint32_t w = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t shl1_w = w + w;
  const std::uint32_t sign = w & 0x80000000u;
  std::uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = std::bit_cast<float>((bias >> 1) + 0x07800000u) + base;
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(base);
  const std::uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
  const std::uint32_t mantissa_bits = bits & 0x00000FFFu;
  const std::uint32_t nonsign = exp_bits + mantissa_bits;
  return std::uint16_t((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

inline float bf16_to_fp32(std::uint16_t h) noexcept {
  return std::bit_cast<float>(std::uint32_t(h) << 16);
}

inline std::uint16_t fp32_to_bf16(float f) noexcept {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return std::uint16_t((u >> 16) | 0x40);  // quiet NaN
  return std::uint16_t((u + (0x7FFFu + ((u >> 16) & 1u))) >> 16);
}

/// Unaligned little-endian load of an fp16/bf16 scale stored inside a quantized block.
inline std::uint16_t load_u16(const std::uint8_t* p) noexcept {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

}  // namespace vireo::detail
