// Pieces of the tensor-core decode GEMV (gemv.cu; its quantized weights also go through
// quant_block.cuh): the 16-byte loads, the tile's weight rows, and the end of a 16-row tile,
// where the 8 warps' split-K partial sums meet in shared memory and leave as a plain store
// (or a residual add) or as the fused SwiGLU of a gate/up tile (nvcc only).
#pragma once
#include <cstddef>
#include <cstdint>

#include "common.cuh"

namespace vireo::cuda {

constexpr int MMA_WARPS = 8;  // warps per GEMV CTA (split-K inside the CTA)

/// 16 bytes of weights at p, read once: no L1 allocation, and the L2 fetches the whole
/// 256-byte run around it (the CTA's other warps read the rest of the run).
__device__ __forceinline__ uint4 load_w(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

/// 16 bytes of activations at p, reused by every CTA: cached in L1.
__device__ __forceinline__ uint4 load_x(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}

/// The weight rows of this lane's tile rows g and g + 8 (g = lane / 4) in tile b (the CTA's
/// index): rows 16 b + g and 16 b + 8 + g; with
/// SWIGLU (rows = ff of a stacked [2 ff, cols] gate/up matrix) gate row 8 b + g and its up row
/// ff + 8 b + g. Rows past the end are clamped: read, never written.
template <bool SWIGLU>
__device__ __forceinline__ void gemv_tile_rows(int tile, int rows, std::size_t& ra, std::size_t& rb) {
  const int g = (threadIdx.x & 31) >> 2;
  if constexpr (SWIGLU) {
    const int i = min(tile * 8 + g, rows - 1);
    ra = std::size_t(i);
    rb = std::size_t(rows) + std::size_t(i);
  } else {
    ra = std::size_t(min(tile * 16 + g, rows - 1));
    rb = std::size_t(min(tile * 16 + 8 + g, rows - 1));
  }
}

using TilePartials = float[MMA_WARPS][16][8];  ///< per warp: [tile row][token]

/// This warp's m16n8 C fragment (lane g = lane / 4, q = lane % 4: acc[0..1] = row g, tokens
/// 2q and 2q + 1; acc[2..3] = row g + 8, same tokens) into part[warp], then a barrier.
__device__ __forceinline__ void gemv_tile_partials(TilePartials& part, const float (&acc)[4]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, q = lane & 3;
  part[warp][g][2 * q] = acc[0];
  part[warp][g][2 * q + 1] = acc[1];
  part[warp][g + 8][2 * q] = acc[2];
  part[warp][g + 8][2 * q + 1] = acc[3];
  __syncthreads();
}

/// Gate/up tile b (tile rows r < 8: gate row 8 b + r, rows r + 8: its up row): thread
/// (r, t) < 64 writes y[t, 8 b + r] = silu(g) * u with g and u first rounded to T, as the
/// unfused path stores them (gemv -> T buffer -> swiglu_kernel).
template <typename T, typename OT>
__device__ __forceinline__ void gemv_tile_swiglu(const TilePartials& part, int tile, OT* __restrict__ y, int n,
                                                 int rows) {
  const int tid = threadIdx.x;
  if (tid < 64) {
    const int r = tid & 7, t = tid >> 3, i = tile * 8 + r;
    float gs = 0.0f, us = 0.0f;
#pragma unroll
    for (int k = 0; k < MMA_WARPS; ++k) {
      gs += part[k][r][t];
      us += part[k][r + 8][t];
    }
    if (t < n && i < rows) {
      const float gv = to_f32(from_f32<T>(gs)), uv = to_f32(from_f32<T>(us));
      y[std::size_t(t) * rows + i] = from_f32<OT>(gv / (1.0f + expf(-gv)) * uv);
    }
  }
}

/// Plain tile b: thread (r, t) < 128 writes y[t, 16 b + r] = OT(sum), or with ADD
/// (y the fp32 residual stream) y[t, 16 b + r] += float(T(sum)): one owner per element, and
/// the sum rounded to T first, as the unfused path stores the Wo / down output in T before
/// the residual add, so both paths give the same residual.
template <typename T, typename OT, bool ADD>
__device__ __forceinline__ void gemv_tile_store(const TilePartials& part, int tile, OT* __restrict__ y, int n,
                                                int rows) {
  const int tid = threadIdx.x;
  if (tid < 128) {
    const int r = tid & 15, t = tid >> 4, row = tile * 16 + r;
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < MMA_WARPS; ++k) s += part[k][r][t];
    if (t < n && row < rows) {
      if constexpr (ADD) y[std::size_t(t) * rows + row] += to_f32(from_f32<T>(s));
      else y[std::size_t(t) * rows + row] = from_f32<OT>(s);
    }
  }
}

}  // namespace vireo::cuda
