// Device side of one GGUF-quantized weight block (quant_weights.hpp's layout): its load and
// its exact dequantization to the compute type, shared by the decode GEMV (gemv.cu) and the
// dequantize / embedding kernels (dequant.cu) (nvcc only).
//
// Dequantization is exact integer-to-float work: a quant byte q (0..255 after the Q8_0 sign
// flip, 0..15 for Q4) permuted into the mantissa of 2^23 (one PRMT) gives the float 2^23 + q,
// and one subtraction yields q (- 8 for Q4_0, - 128 for Q8_0) with no conversion
// instruction. Then w = q * d (or q * d + m for Q4_1) in fp32, where q * d is exact, and one
// rounding to T: bit for bit the weights gguf::dequantize + the converting upload produce.
#pragma once
#include <cuda_fp16.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "common.cuh"
#include "gemv_tile.cuh"
#include "mma.cuh"
#include "quant_weights.hpp"

namespace vireo::cuda {

__device__ __forceinline__ float ld_half(const std::uint16_t* p) { return __half2float(__ushort_as_half(__ldg(p))); }

/// The 32 weights of one block as 4 vectors of 8 T (vector j = elements 8j .. 8j + 7).
/// raw: the block's quants (Q8_0: raw[0..1], 32 bytes; Q4: raw[0], 16 bytes).
template <typename T, QFormat F>
__device__ __forceinline__ void dequant_block(const uint4 (&raw)[2], float d, float m, uint4 (&v)[4]) {
  // One byte per element, element el in byte el % 4 of src[el / 4]: Q8_0's int8 quants with
  // the sign bit flipped (q + 128); Q4's low nibbles (elements 0..15, from bytes 0..15) then
  // high nibbles (elements 16..31, from the same bytes).
  std::uint32_t src[8];
  if constexpr (F == QFormat::Q8_0) {
    const std::uint32_t w[8] = {raw[0].x, raw[0].y, raw[0].z, raw[0].w, raw[1].x, raw[1].y, raw[1].z, raw[1].w};
#pragma unroll
    for (int i = 0; i < 8; ++i) src[i] = w[i] ^ 0x80808080u;
  } else {
    const std::uint32_t w[4] = {raw[0].x, raw[0].y, raw[0].z, raw[0].w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      src[i] = w[i] & 0x0F0F0F0Fu;
      src[4 + i] = (w[i] >> 4) & 0x0F0F0F0Fu;
    }
  }
  // 2^23 minus the quant's offset: 128 (Q8_0's sign flip), 8 (Q4_0), 0 (Q4_1).
  constexpr float kBias = F == QFormat::Q8_0 ? 8388736.0f : F == QFormat::Q4_0 ? 8388616.0f : 8388608.0f;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    float f[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int el = 8 * j + e;
      // One byte permute builds the float 2^23 + byte (0x4B0000xx); one subtraction leaves
      // the signed quant exactly; q * d is exact in fp32 (<= 8 + 11 significant bits).
      const float qv = __uint_as_float(__byte_perm(src[el >> 2], 0x4B000000u, 0x7440u + unsigned(el & 3))) - kBias;
      if constexpr (F == QFormat::Q4_1) f[e] = qv * d + m;
      else f[e] = qv * d;
    }
    v[j] = make_uint4(pack2<T>(f[0], f[1]), pack2<T>(f[2], f[3]), pack2<T>(f[4], f[5]), pack2<T>(f[6], f[7]));
  }
}

/// Block b of row r: quants, scale, minimum; zeros (weights 0) past the row end.
template <QFormat F>
__device__ __forceinline__ void load_block(const QuantView& w, std::size_t r, int nb, int b, uint4 (&raw)[2],
                                           float& d, float& m) {
  constexpr int QB = quant_block_bytes(F);
  raw[0] = raw[1] = make_uint4(0u, 0u, 0u, 0u);
  d = m = 0.0f;
  if (b >= nb) return;
  const std::size_t blk = r * std::size_t(nb) + std::size_t(b);
  raw[0] = load_w(w.qs + blk * QB);
  if constexpr (QB == 32) raw[1] = load_w(w.qs + blk * QB + 16);
  d = ld_half(w.d + blk);
  if constexpr (quant_has_min(F)) m = ld_half(w.m + blk);
}


/// Run body with F bound to the compile-time format of f.
template <typename Body>
cudaError_t dispatch_format(QFormat f, Body&& body) {
  switch (f) {
    case QFormat::Q8_0: return body(std::integral_constant<QFormat, QFormat::Q8_0>{});
    case QFormat::Q4_0: return body(std::integral_constant<QFormat, QFormat::Q4_0>{});
    case QFormat::Q4_1: return body(std::integral_constant<QFormat, QFormat::Q4_1>{});
  }
  return cudaErrorInvalidValue;
}

inline bool quant_view_ok(const QuantView& w) {
  return w.qs && w.d && aligned16(w.qs) && (!quant_has_min(w.fmt) || w.m);
}

}  // namespace vireo::cuda
