// Tensor element formats: block sizes, dequantization to fp32 and reference quantization.
//
// Layouts are ggml's, byte for byte (all little-endian, blocks of 32 elements):
//   Q8_0 (34 B): fp16 d, int8 qs[32];            x[j] = qs[j] * d
//   Q4_0 (18 B): fp16 d, uint8 qs[16];           x[j] = ((qs[j] & 15) - 8) * d,
//                                                x[j+16] = ((qs[j] >> 4) - 8) * d   (j < 16)
//   Q4_1 (20 B): fp16 d, fp16 m, uint8 qs[16];   x[j] = (qs[j] & 15) * d + m, x[j+16] likewise
//   Q5_0 (22 B): fp16 d, u32 qh, uint8 qs[16];   q[j] = Q4's nibble | bit j of qh << 4,
//                                                x[j] = (q[j] - 16) * d
//   Q5_1 (24 B): fp16 d, fp16 m, u32 qh, qs[16]; x[j] = q[j] * d + m
//   IQ4_NL (18 B): fp16 d, uint8 qs[16];         x[j] = d * kIQ4NL[qs[j] & 15],
//                                                x[j+16] = d * kIQ4NL[qs[j] >> 4] (a fixed
//                                                non-linear codebook of 16 int8 values)
//   IQ4_XS (136 B, 256 elements): fp16 d, u16 scales_h, uint8 scales_l[4], qs[128]; sub-block
//                 j of 32: IQ4_NL's nibble layout in qs[16 j .. 16 j + 15] with d * (6-bit
//                 scale - 32) for its d (kquant.hpp: iq4xs_scale)
// K-quants, super-blocks of 256 in 8 sub-blocks of 32 (Q2_K, Q3_K, Q6_K: 16 of 16):
//   Q2_K (84 B):  scales[16] (low nibble: scale, high nibble: min of each 16-element group),
//                 qs[64], fp16 d, fp16 dmin; element e = 128 h + 32 j + l (h < 2, j < 4,
//                 l < 32): q = (qs[32 h + l] >> 2 j) & 3, group g = e / 16,
//                 x = (d * (scales[g] & 15)) * q - dmin * (scales[g] >> 4)
//   Q3_K (110 B): hmask[32], qs[64], scales[12] (sixteen 6-bit scales: low nibbles in bytes
//                 0-7, groups 0-7 then 8-15; high 2 bits of group g in byte 8 + g % 4 at bit
//                 2 (g / 4)), fp16 d; q = (qs[32 h + l] >> 2 j) & 3, minus 4 unless bit e / 32
//                 of hmask[e % 32] is set; x = (d * (scale[g] - 32)) * q
//   Q4_K (144 B): fp16 d, fp16 dmin, scales[12] (eight 6-bit scales and mins), qs[128];
//                 sub-block s: x = (d * sc[s]) * q - dmin * m[s], q the low (even s) or high
//                 (odd s) nibbles of qs[32 (s / 2) .. + 31]
//   Q5_K (176 B): as Q4_K with qh[32] before qs; bit s of qh[l] is q's fifth bit
//   Q6_K (210 B): ql[128], qh[64], int8 scales[16], fp16 d; element e of a 128-half h:
//                 q = ql nibble | 2 bits of qh, minus 32, x = (d * scales[e / 16]) * q
// (the layouts and arithmetic of ggml's dequantize_row_*, in gguf-py's order of operations).
// F16/BF16 widen exactly (see fp16.hpp). Dequantization is on the CPU matmul's hot path, so
// each block is a fixed-trip loop the compiler vectorizes; floating-point contraction is
// turned off here so q*d+m rounds twice, exactly as ggml's C reference and gguf-py compute it
// (an FMA would differ in the last bit). quantize() reproduces ggml's quantize_row_*_ref:
// Q8_0 d = amax/127, q = round(x/d); Q4_0 d = (signed value of largest magnitude)/-8,
// q = min(15, trunc(x/d + 8.5)); Q4_1 d = (max-min)/15, m = min, q = min(15, trunc((x-m)/d + 0.5)).
// The float->int casts are clamped first so NaN/Inf inputs cannot invoke undefined behaviour.
// Q5_0, Q5_1, IQ4_NL and the K-quants but Q2_K quantize through gguf/quantize_ref.cpp.
#include <fmt/format.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "gguf/fp16.hpp"
#include "gguf/kquant.hpp"
#include "gguf/quantize_ref.hpp"
#include "vireo/gguf.hpp"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#if defined(__clang__)
#pragma clang fp contract(off)
#endif

#if defined(__GNUC__) && !defined(__clang__)
#define VIREO_NO_UNROLL _Pragma("GCC unroll 1")
#else
#define VIREO_NO_UNROLL
#endif

namespace vireo::gguf {

using detail::fp16_to_fp32;
using detail::fp32_to_fp16;
using detail::load_u16;

std::uint64_t row_bytes(TensorType t, std::uint64_t n) {
  const std::uint64_t be = block_elements(t);
  if (be == 0)
    throw Error(ErrorCode::Unsupported, fmt::format("unknown tensor type {}", std::uint32_t(t)));
  if (n % be != 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{} elements of type {} are not a multiple of its block size {}", n,
                            to_string(t), be));
  std::uint64_t bytes = 0;
  if (__builtin_mul_overflow(n / be, std::uint64_t(block_bytes(t)), &bytes))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{} elements of type {}: byte size overflows 64 bits", n, to_string(t)));
  return bytes;
}

namespace {

constexpr std::size_t QK = 32;

void check_n(const char* what, TensorType t, std::size_t n) {
  const std::size_t be = block_elements(t);
  if (be == 0)
    throw Error(ErrorCode::Unsupported,
                fmt::format("{}: unknown tensor type {}", what, std::uint32_t(t)));
  if (n % be != 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: {} elements of type {} are not a multiple of its block size {}",
                            what, n, to_string(t), be));
}

void dequant_f16(const std::uint8_t* src, float* dst, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(load_u16(src + 2 * i));
}

void dequant_bf16(const std::uint8_t* src, float* dst, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) dst[i] = detail::bf16_to_fp32(load_u16(src + 2 * i));
}

void dequant_q8_0(const std::uint8_t* src, float* dst, std::size_t nb) {
  for (std::size_t b = 0; b < nb; ++b) {
    const std::uint8_t* blk = src + b * 34;
    const float d = fp16_to_fp32(load_u16(blk));
    const auto* qs = reinterpret_cast<const std::int8_t*>(blk + 2);
    float* y = dst + b * QK;
    for (std::size_t j = 0; j < QK; ++j) y[j] = float(qs[j]) * d;
  }
}

void dequant_q4_0(const std::uint8_t* __restrict src, float* __restrict dst, std::size_t nb) {
  for (std::size_t b = 0; b < nb; ++b) {
    const std::uint8_t* blk = src + b * 18;
    const float d = fp16_to_fp32(load_u16(blk));
    const std::uint8_t* qs = blk + 2;
    float* y = dst + b * QK;
    // Two contiguous passes (low nibbles, then high) vectorize; one interleaved pass does
    // not. Unroll 1 keeps GCC vectorizing each 16-trip loop instead of fully unrolling it
    // and vectorizing across blocks (measured slower).
    VIREO_NO_UNROLL
    for (std::size_t j = 0; j < QK / 2; ++j) y[j] = float(int(qs[j] & 0x0F) - 8) * d;
    VIREO_NO_UNROLL
    for (std::size_t j = 0; j < QK / 2; ++j) y[j + QK / 2] = float(int(qs[j] >> 4) - 8) * d;
  }
}

void dequant_q4_1(const std::uint8_t* __restrict src, float* __restrict dst, std::size_t nb) {
  for (std::size_t b = 0; b < nb; ++b) {
    const std::uint8_t* blk = src + b * 20;
    const float d = fp16_to_fp32(load_u16(blk));
    const float m = fp16_to_fp32(load_u16(blk + 2));
    const std::uint8_t* qs = blk + 4;
    float* y = dst + b * QK;
    VIREO_NO_UNROLL
    for (std::size_t j = 0; j < QK / 2; ++j) y[j] = float(qs[j] & 0x0F) * d + m;
    VIREO_NO_UNROLL
    for (std::size_t j = 0; j < QK / 2; ++j) y[j + QK / 2] = float(qs[j] >> 4) * d + m;
  }
}

// Q5_0 / Q5_1: the fifth bit of element j is bit j of the little-endian u32 qh. Two
// branch-free 16-element loops per block (low nibbles, then high) so they vectorize.
template <bool kHasMin>
void dequant_q5(const std::uint8_t* __restrict src, float* __restrict dst, std::size_t nb) {
  constexpr std::size_t bytes = kHasMin ? 24 : 22;
  for (std::size_t b = 0; b < nb; ++b) {
    const std::uint8_t* blk = src + b * bytes;
    const float d = fp16_to_fp32(load_u16(blk));
    const float m = kHasMin ? fp16_to_fp32(load_u16(blk + 2)) : 0.0f;
    const std::uint8_t* h = blk + (kHasMin ? 4 : 2);
    const std::uint32_t qh = std::uint32_t(h[0]) | std::uint32_t(h[1]) << 8 | std::uint32_t(h[2]) << 16 |
                             std::uint32_t(h[3]) << 24;
    const std::uint8_t* qs = h + 4;
    float* y = dst + b * QK;
    VIREO_NO_UNROLL
    for (std::size_t j = 0; j < QK / 2; ++j) {
      const int q = int((qs[j] & 0x0Fu) | ((qh >> j) & 1u) << 4);
      y[j] = kHasMin ? float(q) * d + m : float(q - 16) * d;
    }
    VIREO_NO_UNROLL
    for (std::size_t j = 0; j < QK / 2; ++j) {
      const int q = int((qs[j] >> 4) | ((qh >> (j + QK / 2)) & 1u) << 4);
      y[j + QK / 2] = kHasMin ? float(q) * d + m : float(q - 16) * d;
    }
  }
}

void dequant_iq4_nl(const std::uint8_t* __restrict src, float* __restrict dst, std::size_t nb) {
  for (std::size_t b = 0; b < nb; ++b) {
    const std::uint8_t* blk = src + b * 18;
    const float d = fp16_to_fp32(load_u16(blk));
    float* y = dst + b * QK;
    for (std::size_t j = 0; j < QK / 2; ++j) {
      y[j] = d * float(detail::kIQ4NLValues[blk[2 + j] & 15]);
      y[j + QK / 2] = d * float(detail::kIQ4NLValues[blk[2 + j] >> 4]);
    }
  }
}

void dequant_iq4_xs(const std::uint8_t* __restrict src, float* __restrict dst, std::size_t nb) {
  for (std::size_t b = 0; b < nb; ++b) {
    const std::uint8_t* blk = src + b * 136;
    const float d = fp16_to_fp32(load_u16(blk));
    const std::uint16_t scales_h = load_u16(blk + 2);
    for (int j = 0; j < 8; ++j) {
      const float dl = d * float(detail::iq4xs_scale(scales_h, blk + 4, j));
      const std::uint8_t* qs = blk + 8 + 16 * j;
      float* y = dst + b * 256 + std::size_t(j) * QK;
      for (std::size_t l = 0; l < QK / 2; ++l) {
        y[l] = dl * float(detail::kIQ4NLValues[qs[l] & 15]);
        y[l + QK / 2] = dl * float(detail::kIQ4NLValues[qs[l] >> 4]);
      }
    }
  }
}

// Q2_K and Q3_K: 16 groups of 16 elements; group g holds elements 128 h + 32 j + l for
// h = g / 8, j = (g % 8) / 2, l in [16 (g % 2), 16 (g % 2) + 16): 2-bit quants at bit 2 j of
// qs[32 h + l].
void dequant_q2_k(const std::uint8_t* __restrict src, float* __restrict dst, std::size_t nb) {
  for (std::size_t b = 0; b < nb; ++b) {
    const std::uint8_t* blk = src + b * 84;
    const std::uint8_t* scales = blk;
    const std::uint8_t* qs = blk + 16;
    const float d = fp16_to_fp32(load_u16(blk + 80));
    const float dmin = fp16_to_fp32(load_u16(blk + 82));
    float* y = dst + b * 256;
    for (int g = 0; g < 16; ++g) {
      const float ds = d * float(scales[g] & 15u), dm = dmin * float(scales[g] >> 4);
      const int h = g / 8, j = (g % 8) / 2, l0 = 16 * (g % 2);
      for (int l = l0; l < l0 + 16; ++l) y[128 * h + 32 * j + l] = ds * float((qs[32 * h + l] >> (2 * j)) & 3u) - dm;
    }
  }
}

void dequant_q3_k(const std::uint8_t* __restrict src, float* __restrict dst, std::size_t nb) {
  for (std::size_t b = 0; b < nb; ++b) {
    const std::uint8_t* blk = src + b * 110;
    const std::uint8_t* hmask = blk;
    const std::uint8_t* qs = blk + 32;
    const std::uint8_t* sc = blk + 96;
    const float d = fp16_to_fp32(load_u16(blk + 108));
    float* y = dst + b * 256;
    for (int g = 0; g < 16; ++g) {
      const float ds = d * float(detail::q3k_scale(sc, g));
      const int h = g / 8, j = (g % 8) / 2, l0 = 16 * (g % 2);
      for (int l = l0; l < l0 + 16; ++l) {
        const int high = (hmask[l] >> (4 * h + j)) & 1;  // element e = 128 h + 32 j + l: bit e / 32 of hmask[e % 32]
        const int q = int((qs[32 * h + l] >> (2 * j)) & 3u) - (high ? 0 : 4);
        y[128 * h + 32 * j + l] = ds * float(q);
      }
    }
  }
}

// Q4_K (qh == false) and Q5_K (qh == true).
void dequant_q45_k(const std::uint8_t* __restrict src, float* __restrict dst, std::size_t nb, bool has_qh) {
  const std::size_t bytes = has_qh ? 176 : 144;
  for (std::size_t b = 0; b < nb; ++b) {
    const std::uint8_t* blk = src + b * bytes;
    const float d = fp16_to_fp32(load_u16(blk));
    const float dmin = fp16_to_fp32(load_u16(blk + 2));
    const std::uint8_t* scales = blk + 4;
    const std::uint8_t* qh = blk + 16;
    const std::uint8_t* qs = blk + (has_qh ? 48 : 16);
    float* y = dst + b * 256;
    for (int s = 0; s < 8; ++s) {
      unsigned sc = 0, mn = 0;
      detail::k_scale_min(scales, s, &sc, &mn);
      const float ds = d * float(sc), dm = dmin * float(mn);
      const std::uint8_t* q = qs + 32 * (s / 2);
      const int shift = (s & 1) * 4;
      for (int l = 0; l < 32; ++l) {
        unsigned v = (q[l] >> shift) & 0x0Fu;
        if (has_qh) v |= ((qh[l] >> s) & 1u) << 4;
        y[32 * s + l] = ds * float(v) - dm;
      }
    }
  }
}

void dequant_q6_k(const std::uint8_t* __restrict src, float* __restrict dst, std::size_t nb) {
  for (std::size_t b = 0; b < nb; ++b) {
    const std::uint8_t* blk = src + b * 210;
    const auto* scales = reinterpret_cast<const std::int8_t*>(blk + 192);
    const float d = fp16_to_fp32(load_u16(blk + 208));
    float* y = dst + b * 256;
    for (int h = 0; h < 2; ++h)      // 128-element halves
      for (int g = 0; g < 4; ++g) {  // 32-element groups: low nibbles of ql[0..31], ql[32..63], then high
        const std::uint8_t* ql = blk + 64 * h + 32 * (g & 1);
        const std::uint8_t* qh = blk + 128 + 32 * h;
        const int lo_shift = 4 * (g >> 1), hi_shift = 2 * g;
        float* out = y + 128 * h + 32 * g;
        for (int half = 0; half < 2; ++half) {  // 16 elements share a scale
          const float ds = d * float(scales[8 * h + 2 * g + half]);
          VIREO_NO_UNROLL
          for (int l = 16 * half; l < 16 * half + 16; ++l) {
            const int q = int(((ql[l] >> lo_shift) & 0x0F) | ((qh[l] >> hi_shift) & 3) << 4) - 32;
            out[l] = ds * float(q);
          }
        }
      }
  }
}

// Clamp before converting so that NaN (fmaxf/fminf drop it) and Inf stay defined.
inline int clamp_to_int(float v, float lo, float hi) { return int(std::fmin(std::fmax(v, lo), hi)); }

void quant_q8_0(const float* x, std::uint8_t* dst, std::size_t nb) {
  for (std::size_t b = 0; b < nb; ++b, x += QK) {
    float amax = 0.0f;
    for (std::size_t j = 0; j < QK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    std::uint8_t* blk = dst + b * 34;
    const std::uint16_t dh = fp32_to_fp16(d);
    std::memcpy(blk, &dh, 2);
    for (std::size_t j = 0; j < QK; ++j) {
      const auto q = std::int8_t(clamp_to_int(std::round(x[j] * id), -128.0f, 127.0f));
      std::memcpy(blk + 2 + j, &q, 1);
    }
  }
}

void quant_q4_0(const float* x, std::uint8_t* dst, std::size_t nb) {
  for (std::size_t b = 0; b < nb; ++b, x += QK) {
    float amax = 0.0f, max = 0.0f;  // max: the signed value with the largest magnitude
    for (std::size_t j = 0; j < QK; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    std::uint8_t* blk = dst + b * 18;
    const std::uint16_t dh = fp32_to_fp16(d);
    std::memcpy(blk, &dh, 2);
    for (std::size_t j = 0; j < QK / 2; ++j) {
      // ggml: MIN(15, (int8_t)(x*id + 8.5f)); the cast truncates toward zero.
      const int q0 = std::min(15, clamp_to_int(x[j] * id + 8.5f, 0.0f, 127.0f));
      const int q1 = std::min(15, clamp_to_int(x[j + QK / 2] * id + 8.5f, 0.0f, 127.0f));
      blk[2 + j] = std::uint8_t(q0 | (q1 << 4));
    }
  }
}

void quant_q4_1(const float* x, std::uint8_t* dst, std::size_t nb) {
  for (std::size_t b = 0; b < nb; ++b, x += QK) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (std::size_t j = 0; j < QK; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    std::uint8_t* blk = dst + b * 20;
    const std::uint16_t dh = fp32_to_fp16(d), mh = fp32_to_fp16(min);
    std::memcpy(blk, &dh, 2);
    std::memcpy(blk + 2, &mh, 2);
    for (std::size_t j = 0; j < QK / 2; ++j) {
      const int q0 = std::min(15, clamp_to_int((x[j] - min) * id + 0.5f, 0.0f, 127.0f));
      const int q1 = std::min(15, clamp_to_int((x[j + QK / 2] - min) * id + 0.5f, 0.0f, 127.0f));
      blk[4 + j] = std::uint8_t(q0 | (q1 << 4));
    }
  }
}

}  // namespace

void dequantize(TensorType t, const void* src, float* dst, std::size_t n) {
  check_n("dequantize", t, n);
  const auto* s = static_cast<const std::uint8_t*>(src);
  switch (t) {
    case TensorType::F32: std::memcpy(dst, s, n * sizeof(float)); return;
    case TensorType::F16: dequant_f16(s, dst, n); return;
    case TensorType::BF16: dequant_bf16(s, dst, n); return;
    case TensorType::Q8_0: dequant_q8_0(s, dst, n / QK); return;
    case TensorType::Q4_0: dequant_q4_0(s, dst, n / QK); return;
    case TensorType::Q4_1: dequant_q4_1(s, dst, n / QK); return;
    case TensorType::Q5_0: dequant_q5<false>(s, dst, n / QK); return;
    case TensorType::Q5_1: dequant_q5<true>(s, dst, n / QK); return;
    case TensorType::IQ4_NL: dequant_iq4_nl(s, dst, n / QK); return;
    case TensorType::IQ4_XS: dequant_iq4_xs(s, dst, n / 256); return;
    case TensorType::Q2_K: dequant_q2_k(s, dst, n / 256); return;
    case TensorType::Q3_K: dequant_q3_k(s, dst, n / 256); return;
    case TensorType::Q4_K: dequant_q45_k(s, dst, n / 256, false); return;
    case TensorType::Q5_K: dequant_q45_k(s, dst, n / 256, true); return;
    case TensorType::Q6_K: dequant_q6_k(s, dst, n / 256); return;
  }
}

void quantize(TensorType t, const float* src, void* dst, std::size_t n) {
  check_n("quantize", t, n);
  auto* d = static_cast<std::uint8_t*>(dst);
  switch (t) {
    case TensorType::F32: std::memcpy(d, src, n * sizeof(float)); return;
    case TensorType::F16:
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint16_t h = fp32_to_fp16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
      }
      return;
    case TensorType::BF16:
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint16_t h = detail::fp32_to_bf16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
      }
      return;
    case TensorType::Q8_0: quant_q8_0(src, d, n / QK); return;
    case TensorType::Q4_0: quant_q4_0(src, d, n / QK); return;
    case TensorType::Q4_1: quant_q4_1(src, d, n / QK); return;
    case TensorType::Q5_0: gguf::quant_ref::quant_q5_0(src, d, n / QK); return;
    case TensorType::Q5_1: gguf::quant_ref::quant_q5_1(src, d, n / QK); return;
    case TensorType::IQ4_NL: gguf::quant_ref::quant_iq4_nl(src, d, n / QK); return;
    case TensorType::Q3_K: gguf::quant_ref::quant_q3_k(src, d, n / 256); return;
    case TensorType::Q4_K: gguf::quant_ref::quant_q4_k(src, d, n / 256); return;
    case TensorType::Q5_K: gguf::quant_ref::quant_q5_k(src, d, n / 256); return;
    case TensorType::Q6_K: gguf::quant_ref::quant_q6_k(src, d, n / 256); return;
    case TensorType::IQ4_XS:
    case TensorType::Q2_K:
      throw Error(ErrorCode::Unsupported,
                  fmt::format("quantize: {} is read and dequantized only (quantize to Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, "
                              "IQ4_NL, Q3_K, Q4_K, Q5_K or Q6_K)", to_string(t)));
  }
}

}  // namespace vireo::gguf
