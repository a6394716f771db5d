// The tensor-core decode GEMV kernel, gemv_mma_kernel, shared by gemv.cu (16-bit weights)
// and gemv_quant.cu (GGUF-quantized weights), with the design notes of both (nvcc only):
// y[n, rows] = x[n, cols] . W[rows, cols]^T for n <= GEMV_MAX_TOKENS tokens, and the fused
// gate/up GEMV + SwiGLU of the Llama FFN.
//
// Decode is memory-bound: the whole cost is streaming W once, so the kernel is built around
// keeping enough bytes in flight and touching x as little as possible.
//
// bf16 / fp16 (the decode path): tensor-core GEMV. A CTA of 8 warps owns a tile of 16 rows of
// W; the columns are cut into chunks of 128 and warp w takes chunks w, w+8, ... (split-K inside
// the CTA, partial sums reduced through 4 KB of shared memory at the end). For one chunk a lane
// (g = lane / 4, q = lane % 4) issues, before any arithmetic, 8 16-byte weight loads (rows g
// and g+8 of the tile, columns c0 + 32 j + 8 q, j = 0..3) and 4 16-byte x loads (token g,
// same columns; zeros for g >= n), so every warp has 16 rows x 256 B = 4 KB of W in flight;
// then 8 mma.sync.m16n8k16 (A = the 16x32 slice of W, B = x^T with the 8 tokens as the 8
// columns) accumulate in fp32. The dot product does not care in which order k is summed, so
// each lane's 16-byte vector is mapped onto the mma fragment directly: for mma 2s+h (h = 0, 1)
// logical k = 2q + {0,1} is vector element 4h + {0,1} and k = 2q + 8 + {0,1} is element
// 4h + {2,3}, for A and B alike (no shuffles, no shared-memory staging of W). Each x vector
// loaded is reused by the 16 rows of the tile in the tensor core, so x traffic through L1 is
// <= 1/2 of the W traffic even at n = 8 (a warp-per-row kernel reads x n times per row, 8x
// the W bytes through L1 at n = 8, which capped it far below the HBM rate there).
//
// Arithmetic for the Llama-3.1-8B shapes on an H100 (132 SMs, ~3 TB/s of HBM):
//   Wqkv 6144x4096: 384 CTAs, 32 chunks per row tile -> 4 per warp, floor 50.3 MB -> 16.5 us
//   Wo   4096x4096: 256 CTAs (~2 per SM, all resident),           floor 33.6 MB -> 11.0 us
//   gate/up 28672x4096 (fused, 8 outputs x 2 rows per CTA): 1792 CTAs, floor 235 MB -> 76.8 us
//   down 4096x14336: 256 CTAs, 112 chunks -> 14 per warp,          floor 117 MB -> 38.4 us
//   LM head 128256x4096: 8016 CTAs,                                floor 1.05 GB -> 344 us
// In flight: 2-3 CTAs x 8 warps x 4 KB = 64-96 KB per SM (~10 MB in all) against the ~3 MB
// that Little's law asks for (3 TB/s x ~1 us loaded latency), so one buffer per warp suffices
// and no software pipelining is needed (a two-stage register pipeline, 128 registers and 2
// CTAs per SM, measured slower at batch 1 on the H100 and was removed; bench/results/README.md).
// Registers: 80 (ptxas), so 3 CTAs per SM. The exception is DEPTH = 2 below, two chunks in
// flight for the Add GEMVs whose grids have <= 2 CTAs per SM anyway (Wo, down at batch 1),
// which measured faster there. BM_gemv* in bench/bench_cuda_kernels.cpp time every variant.
//
// Fused gate/up + SwiGLU: the stacked matrix is [2 ff, cols] (gate rows 0..ff-1, up rows
// ff..2ff-1). The same kernel maps tile row g to gate row i0 + g and tile row g + 8 to up row
// ff + i0 + g, so after the reduction the gate and up sums of output i0 + g sit side by side,
// and h[t, i] = silu(g) * u is written directly: g and u are first rounded to T exactly as the
// unfused path stores them (gemv -> T buffer -> swiglu_kernel), then the same fp32 expression
// g / (1 + expf(-g)) * u is rounded to T.
//
// Fused decode variants (gemv_fused; the backend's batch-1 default, see fused_step() in
// backend/step.cpp): NORM builds the CTA's input RMSNorm(resid) * w in shared
// memory from the fp32 residual (no separate RMSNorm kernel; each CTA re-reads n x cols fp32
// from L2, e.g. 16 KiB at n = 1, d = 4096); the Add epilogue adds the result into the fp32
// residual (each element has one owner, so no atomics); the RopeKV epilogue applies bias and
// RoPE to the (2i, 2i+1) row pairs of the 16-row tile and writes q and the paged K/V directly.
// The backend uses them for 6 kernels per Llama layer instead of 8 (folding the FFN RMSNorm
// into the gate/up GEMV as well, or into the last Wo CTA, measured slower).
//
// Everything here is in an anonymous namespace on purpose: each .cu that includes it gets
// its own instantiations of the kernel (internal linkage, as when this was one file).
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "common.cuh"
#include "cuda_api.hpp"
#include "gemv_tile.cuh"
#include "launch.cuh"
#include "mma.cuh"
#include "quant_block.cuh"
#include "quant_weights.hpp"

namespace vireo::cuda {
namespace {

// ---- tensor-core GEMV (bf16 / fp16) ------------------------------------------------------------

constexpr int CHUNK_STEPS = 4;                 // k32 steps per chunk
constexpr int CHUNK_COLS = 32 * CHUNK_STEPS;   // 128 columns: 256 B of each of the 16 rows

/// Epilogues of gemv_mma_kernel.
enum Epi : int {
  kStore = 0,   ///< y[t, row] = OT(sum)
  kSwiglu = 1,  ///< see SWIGLU below
  kAdd = 2,     ///< y (fp32, the residual stream) [t, row] += float(T(sum))
  kRope = 3,    ///< qkv row: bias + RoPE, q to ex.rope.q_out, k / v into the paged cache
};

/// SWIGLU = false: CTA b computes y[t, 16 b + r] for r < 16 (rows = output rows), y in OT.
/// SWIGLU = true: w is the stacked [2 rows, cols] gate/up matrix (rows = ff); CTA b computes
/// y[t, 8 b + r] = silu(gate) * up for r < 8, y in T (OT == T).
/// w, x 16-byte aligned, cols % 8 == 0; x [n, cols], y [n, rows].
/// NORM: x is not read; the CTA builds its input T(h * rsqrt(mean(h^2) + eps) * norm_w) from
/// the fp32 residual rows h = ex.resid[t] in dynamic shared memory first (rmsnorm_reg_kernel's
/// arithmetic), so the decode step needs no separate RMSNorm kernel.
/// WF = 0: w is the 16-bit [rows, cols] matrix. WF = 1 + QFormat: w is a quantized matrix
/// (QuantView, cols % 32 == 0): lane (g, q) takes GGUF block q of each 128-column chunk for
/// tile rows g and g + 8 and dequantizes it in registers to 4 vectors of 8 weights (block
/// elements 8j .. 8j + 7, columns 32 b + 8 j), matched by the x vectors of the same columns;
/// vector j then feeds the same two MMAs as a 16-bit chunk step. The mapping of a lane's
/// vector elements onto fragment k slots depends only on q, identically for W and x, and the
/// dot product does not care which physical column a k slot stands for. Q4 chunks carry 4x
/// fewer bytes than 16-bit ones, so Q4 warps load two chunks before multiplying (UNROLL).
template <typename T, typename OT, int EPI, bool NORM, int WF = 0, int DEPTH = 1>
__global__ void __launch_bounds__(MMA_WARPS * 32, WF != 0 || DEPTH == 2 ? 2 : 3)
    gemv_mma_kernel(std::conditional_t<WF == 0, const T*, QuantView> w, const T* __restrict__ x,
                    OT* __restrict__ y, int n, int rows, int cols, GemvExtras ex) {
  constexpr bool SWIGLU = EPI == kSwiglu;
  constexpr bool QUANT = WF != 0;
  constexpr QFormat F = QFormat(QUANT ? WF - 1 : 0);
  __shared__ TilePartials part;
  extern __shared__ __align__(16) unsigned char gemv_dyn_smem[];  // NORM: the normalized x [n][cols] in T
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, q = lane & 3;
  const int tile = int(blockIdx.x);
  std::size_t ra, rb;
  gemv_tile_rows<SWIGLU>(tile, rows, ra, rb);
  // 16-bit weights: rows g and g + 8 of the tile, at this lane's 8 columns of each 32.
  const T* wa = nullptr;
  const T* wb = nullptr;
  if constexpr (!QUANT) {
    wa = w + ra * cols + q * 8;
    wb = w + rb * cols + q * 8;
  }
  // Lanes of tokens g >= n read token n - 1: B column g only feeds C column g, never stored.
  const T* xg = NORM ? nullptr : x + std::size_t(min(g, n - 1)) * cols + q * 8;

  // The weights do not depend on the previous kernel: under PDL this warp pulls its first
  // chunk into L2 while that kernel finishes, and only then waits for x. (Prefetching two
  // chunks ahead inside the loop as well made the large GEMVs slower on the H100.)
  // ex.prefetch_chunks = k (default 1) prefetches the warp's first k chunks: the fused Wo GEMV,
  // which follows decode attention (a kernel that hardly touches HBM), streams its whole
  // weight slice into L2 while attention runs.
  // Only CTAs of the first wave (blockIdx.x < ex.prefetch_ctas, ~3 per SM) prefetch: later
  // CTAs start when earlier ones leave, with no predecessor kernel left to overlap.
  const int n_prefetch = int(blockIdx.x) < ex.prefetch_ctas ? ex.prefetch_chunks : 0;
  // The warp's first `chunks` chunks of tile rows pa (tile row g) and pb (g + 8) into L2.
  auto prefetch_rows = [&](std::size_t pa, std::size_t pb, int chunks) {
    if constexpr (QUANT) {
      // Quantized: this lane's block of each of the warp's first chunks, both rows.
      const int nb = cols / 32;
      for (int c = 0; c < chunks; ++c) {
        const int b = (warp + c * MMA_WARPS) * 4 + q;
        if (b >= nb) break;
        asm volatile("prefetch.global.L2 [%0];\n" ::"l"(w.qs + (pa * nb + b) * quant_block_bytes(F)));
        asm volatile("prefetch.global.L2 [%0];\n" ::"l"(w.qs + (pb * nb + b) * quant_block_bytes(F)));
      }
    } else {
      const T* pwa = w + pa * cols + q * 8;
      const T* pwb = w + pb * cols + q * 8;
      for (int c = 0; c < chunks; ++c) {
        const int ch = warp + c * MMA_WARPS;
        if ((ch + 1) * CHUNK_COLS > cols) break;
#pragma unroll
        for (int j = 0; j < CHUNK_STEPS; ++j) {
          asm volatile("prefetch.global.L2 [%0];\n" ::"l"(pwa + ch * CHUNK_COLS + 32 * j));
          asm volatile("prefetch.global.L2 [%0];\n" ::"l"(pwb + ch * CHUNK_COLS + 32 * j));
        }
      }
    }
  };
  prefetch_rows(ra, rb, n_prefetch);
  pdl_wait();
  pdl_trigger();
  if constexpr (NORM) {
    // Normalize the n residual rows into shared memory; then every x load below reads it.
    // Rows of up to NORM_VPT float4 per thread (d <= 4096) are held in registers: every load
    // of the row and of the norm weight is issued at once, so the prologue costs one L2 round
    // trip and one block reduction (a strided loop issued its loads one iteration at a time,
    // 4 dependent round trips per pass at d = 4096, and read the row twice). Wider rows take
    // that loop.
    T* xs = reinterpret_cast<T*>(gemv_dyn_smem);
    const int nv = cols / 4;
    const float4* w4 = reinterpret_cast<const float4*>(ex.norm_w);
    constexpr int NORM_VPT = 4, NT = MMA_WARPS * 32;
    for (int t = 0; t < n; ++t) {
      const float4* h4 = reinterpret_cast<const float4*>(ex.resid + std::size_t(t) * cols);
      T* o = xs + std::size_t(t) * cols;
      if (nv <= NORM_VPT * NT) {
        float4 h[NORM_VPT], wv[NORM_VPT];
#pragma unroll
        for (int k = 0; k < NORM_VPT; ++k) {
          const int i = int(threadIdx.x) + k * NT;
          h[k] = i < nv ? h4[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
          wv[k] = i < nv ? __ldg(w4 + i) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
        float ss = 0.0f;
#pragma unroll
        for (int k = 0; k < NORM_VPT; ++k) ss += h[k].x * h[k].x + h[k].y * h[k].y + h[k].z * h[k].z + h[k].w * h[k].w;
        ss = block_sum(ss);
        const float scale = rsqrtf(ss / float(cols) + ex.eps);
#pragma unroll
        for (int k = 0; k < NORM_VPT; ++k) {
          const int i = int(threadIdx.x) + k * NT;
          if (i >= nv) continue;
          o[4 * i] = from_f32<T>(h[k].x * scale * wv[k].x);
          o[4 * i + 1] = from_f32<T>(h[k].y * scale * wv[k].y);
          o[4 * i + 2] = from_f32<T>(h[k].z * scale * wv[k].z);
          o[4 * i + 3] = from_f32<T>(h[k].w * scale * wv[k].w);
        }
        continue;
      }
      float ss = 0.0f;
#pragma unroll 4
      for (int i = threadIdx.x; i < nv; i += blockDim.x) {
        const float4 h = h4[i];
        ss += h.x * h.x + h.y * h.y + h.z * h.z + h.w * h.w;
      }
      ss = block_sum(ss);
      const float scale = rsqrtf(ss / float(cols) + ex.eps);
#pragma unroll 4
      for (int i = threadIdx.x; i < nv; i += blockDim.x) {
        const float4 h = h4[i], wv = __ldg(w4 + i);
        o[4 * i] = from_f32<T>(h.x * scale * wv.x);
        o[4 * i + 1] = from_f32<T>(h.y * scale * wv.y);
        o[4 * i + 2] = from_f32<T>(h.z * scale * wv.z);
        o[4 * i + 3] = from_f32<T>(h.w * scale * wv.w);
      }
    }
    __syncthreads();
    xg = xs + std::size_t(min(g, n - 1)) * cols + q * 8;
  }

  const int n_chunks = (cols + CHUNK_COLS - 1) / CHUNK_COLS;
  // Two accumulators: two independent HMMA chains per chunk instead of one of length 8.
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f}, acc2[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  // All loads of a chunk are issued before any of its arithmetic (fixed trip counts over
  // register arrays: fully unrolled). Full chunks carry no predicates: with predicated loads
  // ptxas interleaved each load with the mma that uses it, leaving 2-3 loads in flight
  // instead of 12.
  auto load_chunk = [&](int ch, uint4 (&va)[CHUNK_STEPS], uint4 (&vb)[CHUNK_STEPS], uint4 (&vx)[CHUNK_STEPS]) {
    const int c0 = ch * CHUNK_COLS;
    if (c0 + CHUNK_COLS <= cols) {
#pragma unroll
      for (int j = 0; j < CHUNK_STEPS; ++j) {
        va[j] = load_w(wa + c0 + 32 * j);
        vb[j] = load_w(wb + c0 + 32 * j);
      }
#pragma unroll
      for (int j = 0; j < CHUNK_STEPS; ++j) vx[j] = NORM ? *reinterpret_cast<const uint4*>(xg + c0 + 32 * j)
                                                         : load_x(xg + c0 + 32 * j);
    } else {  // the last, partial chunk: vectors past the row end are zeros in W and x
#pragma unroll
      for (int j = 0; j < CHUNK_STEPS; ++j) {
        const int c = c0 + 32 * j;
        const bool ok = c + q * 8 < cols;  // cols % 8 == 0: a vector is all in or all out
        const uint4 z = make_uint4(0u, 0u, 0u, 0u);
        va[j] = ok ? load_w(wa + c) : z;
        vb[j] = ok ? load_w(wb + c) : z;
        vx[j] = ok ? (NORM ? *reinterpret_cast<const uint4*>(xg + c) : load_x(xg + c)) : z;
      }
    }
  };
  auto mma_chunk = [&](const uint4 (&va)[CHUNK_STEPS], const uint4 (&vb)[CHUNK_STEPS], const uint4 (&vx)[CHUNK_STEPS]) {
#pragma unroll
    for (int j = 0; j < CHUNK_STEPS; ++j) {
      const std::uint32_t lo[4] = {va[j].x, vb[j].x, va[j].y, vb[j].y}, hi[4] = {va[j].z, vb[j].z, va[j].w, vb[j].w};
      mma16816<T>(acc, lo, vx[j].x, vx[j].y);
      mma16816<T>(acc2, hi, vx[j].z, vx[j].w);
    }
  };
  if constexpr (QUANT) {
    constexpr int UNROLL = F == QFormat::Q8_0 ? 1 : 2;
    const int nb = cols / 32, n_qchunks = (nb + 3) / 4;
    const T* xrow = xg - q * 8;  // this lane's token row (global memory, or shared under NORM)
    for (int ch0 = warp; ch0 < n_qchunks; ch0 += MMA_WARPS * UNROLL) {
      uint4 ra_raw[UNROLL][2], rb_raw[UNROLL][2], vx[UNROLL][4];
      float da[UNROLL], db[UNROLL], ma[UNROLL], mb[UNROLL];
      // Every load of the UNROLL chunks first, then the arithmetic.
#pragma unroll
      for (int u = 0; u < UNROLL; ++u) {
        const int b = (ch0 + u * MMA_WARPS) * 4 + q;  // this lane's block; >= nb past the end
        load_block<F>(w, ra, nb, b, ra_raw[u], da[u], ma[u]);
        load_block<F>(w, rb, nb, b, rb_raw[u], db[u], mb[u]);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const T* p = xrow + std::size_t(b) * 32 + 8 * j;
          vx[u][j] = b >= nb ? make_uint4(0u, 0u, 0u, 0u) : NORM ? *reinterpret_cast<const uint4*>(p) : load_x(p);
        }
      }
#pragma unroll
      for (int u = 0; u < UNROLL; ++u) {
        uint4 va[4], vb[4];
        dequant_block<T, F>(ra_raw[u], da[u], ma[u], va);
        dequant_block<T, F>(rb_raw[u], db[u], mb[u], vb);
        mma_chunk(va, vb, vx[u]);
      }
    }
  } else if constexpr (DEPTH == 2) {
    // Two chunks per warp in flight (8 KB) before their MMAs: for grids of <= 2 CTAs per SM
    // (Wo, down at batch 1), where the 128 registers this takes cost no occupancy. An odd
    // last chunk is loaded twice (an L2 hit) and multiplied once.
    uint4 va[2][CHUNK_STEPS], vb[2][CHUNK_STEPS], vx[2][CHUNK_STEPS];
    for (int ch = warp; ch < n_chunks; ch += 2 * MMA_WARPS) {
      const bool two = ch + MMA_WARPS < n_chunks;
      load_chunk(ch, va[0], vb[0], vx[0]);
      load_chunk(two ? ch + MMA_WARPS : ch, va[1], vb[1], vx[1]);
      mma_chunk(va[0], vb[0], vx[0]);
      if (two) mma_chunk(va[1], vb[1], vx[1]);
    }
  } else {
    uint4 va[CHUNK_STEPS], vb[CHUNK_STEPS], vx[CHUNK_STEPS];
    for (int ch = warp; ch < n_chunks; ch += MMA_WARPS) {
      load_chunk(ch, va, vb, vx);
      mma_chunk(va, vb, vx);
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) acc[i] += acc2[i];
  gemv_tile_partials(part, acc);
  const int tid = threadIdx.x;
  if constexpr (SWIGLU) {
    gemv_tile_swiglu<T>(part, tile, y, n, rows);
  } else if constexpr (EPI == kRope) {
    // Rows come in (2i, 2i+1) RoPE pairs inside the 16-row tile (head_dim is a multiple of
    // 16): thread (pair, token) rounds both sums to T as the unfused path stores qkv, then
    // applies rope_kv_kernel's arithmetic (bias, double-precision sincos of pos * inv_freq).
    __shared__ float red[16][8];
    if (tid < 128) {
      const int r = tid & 15, t = tid >> 4;
      float sum = 0.0f;
#pragma unroll
      for (int k = 0; k < MMA_WARPS; ++k) sum += part[k][r][t];
      red[r][t] = to_f32(from_f32<T>(sum));
    }
    __syncthreads();
    if (tid < 64) {
      const int pr = tid & 7, t = tid >> 3, col = tile * 16 + 2 * pr;
      const RopeKVParams& rp = ex.rope;
      const int hd = rp.head_dim, nh = rp.n_heads, nkv = rp.n_kv_heads;
      if (t < n && col < rows) {
        float x0 = red[2 * pr][t], x1 = red[2 * pr + 1][t];
        if (rp.bias) {
          x0 += rp.bias[col];
          x1 += rp.bias[col + 1];
        }
        const std::int64_t slot = rp.slots[t];
        T* out = nullptr;
        if (col >= (nh + nkv) * hd) {  // v
          if (slot >= 0) out = static_cast<T*>(rp.v_cache) + std::size_t(slot) * nkv * hd + (col - (nh + nkv) * hd);
        } else {
          double sn, cs;
          sincos(double(rp.positions[t]) * double(rp.inv_freq[(col % hd) / 2]), &sn, &cs);
          const float cf = float(cs), sf = float(sn);
          const float y0 = x0 * cf - x1 * sf, y1 = x0 * sf + x1 * cf;
          x0 = y0;
          x1 = y1;
          if (col < nh * hd) out = static_cast<T*>(rp.q_out) + std::size_t(t) * nh * hd + col;
          else if (slot >= 0) out = static_cast<T*>(rp.k_cache) + std::size_t(slot) * nkv * hd + (col - nh * hd);
        }
        if (out) {
          out[0] = from_f32<T>(x0);
          out[1] = from_f32<T>(x1);
        }
      }
    }
  } else {
    gemv_tile_store<T, OT, EPI == kAdd>(part, tile, y, n, rows);
  }
}

}  // namespace
}  // namespace vireo::cuda
