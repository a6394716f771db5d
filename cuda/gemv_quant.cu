// Kernels over quantized weights (quant_weights.hpp): the decode GEMV (plain and fused gate/up
// + SwiGLU), whole-matrix dequantization for cuBLAS steps, and embedding rows.
//
// The GEMV is gemv.cu's tensor-core GEMV with a different weight load. A CTA of 8 warps owns
// 16 rows; columns go in chunks of 128 = 4 GGUF blocks, warp w taking chunks w, w + 8, ...
// Lane (g = lane / 4, q = lane % 4) takes block q of the chunk for rows g and g + 8: one
// 16-byte load of quants per row for Q4 (two for Q8_0) plus the fp16 scale (and minimum),
// dequantized in registers to 4 vectors of 8 weights (block elements 8j .. 8j + 7), and the 4
// matching 16-byte x vectors (columns 32 b + 8 j). Vector j then feeds the same two
// m16n8k16 MMAs as in gemv.cu: the mapping of a lane's vector elements onto fragment k
// slots depends only on q, identically for W and x, and the dot product does not care which
// physical column a k slot stands for. Q4 chunks carry 4x fewer bytes than bf16 ones, so Q4
// warps load two chunks before multiplying (UNROLL) to keep ~2 KB per warp in flight.
//
// Dequantization is exact integer-to-float work: a quant byte q (0..255 after the Q8_0 sign
// flip, 0..15 for Q4) permuted into the mantissa of 2^23 (one PRMT) gives the float 2^23 + q,
// and one subtraction yields q (- 8 for Q4_0, - 128 for Q8_0) with no conversion
// instruction. Then w = q * d (or q * d + m for Q4_1) in fp32, where q * d is exact, and one
// rounding to T: bit for bit the weights gguf::dequantize + the converting upload produce.
//
// Not yet run on a GPU (written 2026-11-26 without one): the [cuda] tests in
// tests/test_cuda_quant.cpp check every kernel here against the host reference.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "common.cuh"
#include "cuda_api.hpp"
#include "gemv_tile.cuh"
#include "launch.cuh"
#include "mma.cuh"
#include "quant_weights.hpp"

namespace vireo::cuda {
namespace {

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

/// SWIGLU = false: CTA b computes y[t, 16 b + r], r < 16. SWIGLU = true: w is the stacked
/// [2 rows, cols] gate/up matrix (rows = ff) and CTA b computes h[t, 8 b + r] = silu(g) * u,
/// r < 8, with g and u rounded to T first (gemv.cu's SWIGLU epilogue).
template <typename T, typename OT, QFormat F, bool SWIGLU>
__global__ void __launch_bounds__(MMA_WARPS * 32, 2)
    gemv_q_kernel(QuantView w, const T* __restrict__ x, OT* __restrict__ y, int n, int rows, int cols) {
  constexpr int UNROLL = F == QFormat::Q8_0 ? 1 : 2;
  __shared__ TilePartials part;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, q = lane & 3;
  std::size_t ra, rb;
  gemv_tile_rows<SWIGLU>(rows, ra, rb);
  const int nb = cols / 32, n_chunks = (nb + 3) / 4;
  const T* xg = x + std::size_t(min(g, n - 1)) * cols;
  // Weights do not depend on the previous kernel: pull this warp's first chunk of both rows
  // into L2 first.
  if (warp * 4 + q < nb) {
    const std::size_t ba = ra * std::size_t(nb) + std::size_t(warp * 4 + q), bb = rb * std::size_t(nb) + std::size_t(warp * 4 + q);
    asm volatile("prefetch.global.L2 [%0];\n" ::"l"(w.qs + ba * quant_block_bytes(F)));
    asm volatile("prefetch.global.L2 [%0];\n" ::"l"(w.qs + bb * quant_block_bytes(F)));
  }
  pdl_wait();
  pdl_trigger();

  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f}, acc2[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int ch0 = warp; ch0 < n_chunks; ch0 += MMA_WARPS * UNROLL) {
    uint4 ra_raw[UNROLL][2], rb_raw[UNROLL][2], vx[UNROLL][4];
    float da[UNROLL], db[UNROLL], ma[UNROLL], mb[UNROLL];
    // Every load of the UNROLL chunks first, then the arithmetic.
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int b = (ch0 + u * MMA_WARPS) * 4 + q;  // this lane's block; >= nb past the end
      load_block<F>(w, ra, nb, b, ra_raw[u], da[u], ma[u]);
      load_block<F>(w, rb, nb, b, rb_raw[u], db[u], mb[u]);
#pragma unroll
      for (int j = 0; j < 4; ++j)
        vx[u][j] = b < nb ? load_x(xg + std::size_t(b) * 32 + 8 * j) : make_uint4(0u, 0u, 0u, 0u);
    }
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      uint4 va[4], vb[4];
      dequant_block<T, F>(ra_raw[u], da[u], ma[u], va);
      dequant_block<T, F>(rb_raw[u], db[u], mb[u], vb);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const std::uint32_t lo[4] = {va[j].x, vb[j].x, va[j].y, vb[j].y}, hi[4] = {va[j].z, vb[j].z, va[j].w, vb[j].w};
        mma16816<T>(acc, lo, vx[u][j].x, vx[u][j].y);
        mma16816<T>(acc2, hi, vx[u][j].z, vx[u][j].w);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) acc[i] += acc2[i];
  gemv_tile_partials(part, acc);
  if constexpr (SWIGLU) gemv_tile_swiglu<T>(part, y, n, rows);
  else gemv_tile_store<T, OT, false>(part, y, n, rows);
}

/// One thread per block: out[r, 32 b .. 32 b + 31] = T(weights).
template <typename T, QFormat F>
__global__ void __launch_bounds__(256) dequantize_q_kernel(QuantView w, T* __restrict__ out, std::int64_t rows, int cols) {
  pdl_wait();
  pdl_trigger();
  const int nb = cols / 32;
  const std::int64_t total = rows * nb;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const std::size_t r = std::size_t(i / nb);
    const int b = int(i % nb);
    uint4 raw[2], v[4];
    float d, m;
    load_block<F>(w, r, nb, b, raw, d, m);
    dequant_block<T, F>(raw, d, m, v);
    uint4* dst = reinterpret_cast<uint4*>(out + r * std::size_t(cols) + std::size_t(b) * 32);
#pragma unroll
    for (int j = 0; j < 4; ++j) dst[j] = v[j];
  }
}

/// CTA t: resid[t, :] = float(T(W[tokens[t], :])).
template <typename T, QFormat F>
__global__ void __launch_bounds__(128) embed_q_kernel(QuantView w, const std::int32_t* __restrict__ tokens,
                                                      float* __restrict__ resid, int d) {
  pdl_wait();
  pdl_trigger();
  const std::size_t row = std::size_t(tokens[blockIdx.x]);
  const int nb = d / 32;
  for (int b = threadIdx.x; b < nb; b += blockDim.x) {
    uint4 raw[2], v[4];
    float sd, sm;
    load_block<F>(w, row, nb, b, raw, sd, sm);
    dequant_block<T, F>(raw, sd, sm, v);
    float* o = resid + std::size_t(blockIdx.x) * d + std::size_t(b) * 32;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const T* e = reinterpret_cast<const T*>(&v[j]);
#pragma unroll
      for (int k = 0; k < 8; ++k) o[8 * j + k] = to_f32(e[k]);
    }
  }
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

bool view_ok(const QuantView& w) {
  return w.qs && w.d && aligned16(w.qs) && (!quant_has_min(w.fmt) || w.m);
}

}  // namespace

Status gemv_q(DType dt, const QuantView& w, const void* x, void* y, bool y_f32, int n, int rows, int cols,
              void* stream) {
  if (n == 0 || rows == 0) return cudaSuccess;
  if (dt == DType::F32 || n < 0 || n > GEMV_MAX_TOKENS || rows < 0 || cols <= 0 || cols % 32 || !view_ok(w) ||
      !aligned16(x))
    return cudaErrorInvalidValue;
  auto s = static_cast<cudaStream_t>(stream);
  const dim3 grid((rows + 15) / 16), block(MMA_WARPS * 32);
  auto go = [&](auto tag) -> cudaError_t {
    using T = decltype(tag);
    return dispatch_format(w.fmt, [&](auto fc) -> cudaError_t {
      constexpr QFormat F = decltype(fc)::value;
      if (y_f32)
        return cuda::launch(gemv_q_kernel<T, float, F, false>, grid, block, 0, s, w, static_cast<const T*>(x),
                            static_cast<float*>(y), n, rows, cols);
      return cuda::launch(gemv_q_kernel<T, T, F, false>, grid, block, 0, s, w, static_cast<const T*>(x),
                          static_cast<T*>(y), n, rows, cols);
    });
  };
  return dt == DType::BF16 ? go(__nv_bfloat16{}) : go(__half{});
}

Status gemv_swiglu_q(DType dt, const QuantView& w, const void* x, void* h, int n, int ff, int cols, void* stream) {
  if (n == 0 || ff == 0) return cudaSuccess;
  if (dt == DType::F32 || n < 0 || n > GEMV_MAX_TOKENS || ff < 0 || cols <= 0 || cols % 32 || !view_ok(w) ||
      !aligned16(x))
    return cudaErrorInvalidValue;
  auto s = static_cast<cudaStream_t>(stream);
  const dim3 grid((ff + 7) / 8), block(MMA_WARPS * 32);
  auto go = [&](auto tag) -> cudaError_t {
    using T = decltype(tag);
    return dispatch_format(w.fmt, [&](auto fc) -> cudaError_t {
      constexpr QFormat F = decltype(fc)::value;
      return cuda::launch(gemv_q_kernel<T, T, F, true>, grid, block, 0, s, w, static_cast<const T*>(x),
                          static_cast<T*>(h), n, ff, cols);
    });
  };
  return dt == DType::BF16 ? go(__nv_bfloat16{}) : go(__half{});
}

Status dequantize_q(DType dt, const QuantView& w, void* out, std::int64_t rows, int cols, void* stream) {
  if (rows == 0) return cudaSuccess;
  if (dt == DType::F32 || rows < 0 || cols <= 0 || cols % 32 || !view_ok(w) || !aligned16(out))
    return cudaErrorInvalidValue;
  auto s = static_cast<cudaStream_t>(stream);
  const std::int64_t blocks = rows * (cols / 32);
  const dim3 grid(unsigned(std::min<std::int64_t>((blocks + 255) / 256, 65535))), block(256);
  auto go = [&](auto tag) -> cudaError_t {
    using T = decltype(tag);
    return dispatch_format(w.fmt, [&](auto fc) -> cudaError_t {
      constexpr QFormat F = decltype(fc)::value;
      return cuda::launch(dequantize_q_kernel<T, F>, grid, block, 0, s, w, static_cast<T*>(out), rows, cols);
    });
  };
  return dt == DType::BF16 ? go(__nv_bfloat16{}) : go(__half{});
}

Status embed_q(DType dt, const QuantView& w, const std::int32_t* tokens, float* resid, int n, int d, void* stream) {
  if (n == 0) return cudaSuccess;
  if (dt == DType::F32 || n < 0 || d <= 0 || d % 32 || !view_ok(w)) return cudaErrorInvalidValue;
  auto s = static_cast<cudaStream_t>(stream);
  auto go = [&](auto tag) -> cudaError_t {
    using T = decltype(tag);
    return dispatch_format(w.fmt, [&](auto fc) -> cudaError_t {
      constexpr QFormat F = decltype(fc)::value;
      return cuda::launch(embed_q_kernel<T, F>, dim3(n), dim3(128), 0, s, w, tokens, resid, d);
    });
  };
  return dt == DType::BF16 ? go(__nv_bfloat16{}) : go(__half{});
}

}  // namespace vireo::cuda
