// The packed 6-bit scales and mins of a Q4_K / Q5_K super-block (12 bytes for its 8
// sub-blocks), shared by the reference dequantization (gguf/quant.cpp) and the CPU kernels
// (cpu/quant_blocks.hpp).
#pragma once
#include <cstdint>

namespace vireo::detail {

/// The scale (-32..31) of 16-element group g (0..15) of a Q3_K super-block, from its 12
/// scale bytes: a 6-bit value minus 32, whose low four bits sit in byte g (groups 0-7) or in
/// the high nibble of byte g - 8 (groups 8-15), the high two in byte 8 + g % 4 at bit 2 (g / 4).
inline int q3k_scale(const std::uint8_t* s, int g) noexcept {
  const unsigned lo = (g < 8 ? s[g] : s[g - 8] >> 4) & 15u, hi = (s[8 + g % 4] >> (2 * (g / 4))) & 3u;
  return int(lo | hi << 4) - 32;
}

/// IQ4_NL's codebook (ggml's kvalues_iq4nl): a weight is d times the level its 4-bit index
/// picks. Shared by the reference dequantization and the CPU kernels.
inline constexpr std::int8_t kIQ4NLValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                 1,    13,   25,  38,  53,  69,  89,  113};

/// The scale (-32..31) of sub-block j (0..7) of an IQ4_XS super-block: a 6-bit value minus
/// 32 whose low four bits are nibble j % 2 of scales_l[j / 2] and whose high two are bits
/// 2 j, 2 j + 1 of the little-endian u16 scales_h.
inline int iq4xs_scale(std::uint16_t scales_h, const std::uint8_t* scales_l, int j) noexcept {
  const unsigned lo = (scales_l[j / 2] >> (4 * (j % 2))) & 15u, hi = (unsigned(scales_h) >> (2 * j)) & 3u;
  return int(lo | hi << 4) - 32;
}

/// The scale and min of sub-block j (0..7): bytes 0-3 hold sub-blocks 0-3's 6-bit scales,
/// 4-7 their mins, each with two spare high bits; bytes 8-11 hold sub-blocks 4-7's low four
/// bits of scale and min, whose high two bits are the spare bits of bytes 0-3 / 4-7.
inline void k_scale_min(const std::uint8_t* s, int j, unsigned* sc, unsigned* m) noexcept {
  if (j < 4) {
    *sc = s[j] & 63u;
    *m = s[j + 4] & 63u;
  } else {
    *sc = (s[j + 4] & 0x0Fu) | (unsigned(s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | (unsigned(s[j] >> 6) << 4);
  }
}

}  // namespace vireo::detail
