// Paged attention for decode tokens (one new query token per sequence), split-KV
// (flash-decoding). The prefill kernel is in prefill_attention.cu.
//
// Grid (splits, n_kv_heads, tokens), 4 warps. The CTA of (token, kv head, split) reads its
// slice [k0, k1) of that head's keys and values exactly once for the whole GQA group of
// G = nh/nkv query heads. With splits > 1 each split writes its (max, sum, acc) to the
// workspace and decode_combine_kernel merges them: O = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M).
// The chunk per split is ceil(kv_len / splits), computed on the device, so a CUDA graph
// captured with a fixed split count stays valid for any context length.
//
// bf16 / fp16 (decode_attention_tc_kernel): decode is a stream over the KV cache, so the
// kernel is built to keep bytes in flight. K/V tiles of 64 keys are gathered through the
// block table with cp.async into swizzled shared memory, double-buffered (a 32 KiB tile per
// stage for head_dim 128 loads while the previous one computes). The group's G query heads
// are the rows of a 16-row mma.sync tile (rows >= G are zero), so S = Q K^T and O += P V run
// on tensor cores exactly as in the prefill kernel: warp w takes keys 16w .. 16w+15 of each
// tile with its own online softmax, and the 4 warps are merged through shared memory at the
// end. Scores use exp2 with log2(e) folded into the scale; partial maxima are written to
// the workspace in the natural-log domain the combine kernel uses.
//
// int8 K/V (KVPrecision::Int8, AttentionParams::k_scale set): the tiles arrive as int8 rows
// plus row scales (half the bytes) in double-buffered staging buffers, and each is
// dequantized into a single K and V tile right before its MMAs (mma.cuh: load_kv_tile_i8,
// dequant_kv_tile).
//
// fp32 (the test mode, decode_attention_kernel): warp w takes keys w, w+4, ...; the lanes
// split head_dim (HD/32 elements each), a shuffle reduction gives the score, and each warp
// keeps an online softmax (running max m, sum l, acc[HD]) per query head; the warps are
// merged in shared memory. The CUDA backend also runs prefill through it in fp32 mode.
#include <cooperative_groups.h>

#include <algorithm>
#include <cfloat>
#include <cstdlib>

#include "common.cuh"
#include "cuda_api.hpp"
#include "launch.cuh"
#include "mma.cuh"

namespace vireo::cuda {
namespace {

constexpr int MAXG = 8;          // largest supported GQA group
constexpr int DEC_WARPS = 4;

template <typename T, int E>
__device__ __forceinline__ void load_small(const T* p, float (&out)[E]) {
#pragma unroll
  for (int i = 0; i < E; ++i) out[i] = to_f32(p[i]);
}

// ---- CUDA kernels: decode -----------------------------------------------------------------

/// Element (g, d) of the DEC_WARPS warps' online-softmax states merged (disjoint keys per
/// warp): the group max M (log2 domain with LOG2), the sum Lsum and the accumulator A, both
/// relative to M.
template <int HD, bool LOG2>
__device__ __forceinline__ void merge_warps_elem(const float (&sm_m)[DEC_WARPS][MAXG], const float (&sm_l)[DEC_WARPS][MAXG],
                                                 const float* sm_acc, int g, int d, float& M, float& Lsum, float& A) {
  M = -INFINITY;
  for (int w = 0; w < DEC_WARPS; ++w) M = fmaxf(M, sm_m[w][g]);
  Lsum = 0.0f;
  A = 0.0f;
  if (M == -INFINITY) return;
  for (int w = 0; w < DEC_WARPS; ++w) {
    if (sm_m[w][g] == -INFINITY) continue;
    const float f = LOG2 ? exp2f(sm_m[w][g] - M) : expf(sm_m[w][g] - M);
    Lsum += sm_l[w][g] * f;
    A += sm_acc[(w * MAXG + g) * HD + d] * f;
  }
}

/// End of a decode CTA: merge the DEC_WARPS warps' online-softmax states of the G query heads
/// of KV head kvh (sm_m / sm_l [DEC_WARPS][MAXG], sm_acc [DEC_WARPS][MAXG][HD], disjoint keys
/// per warp), then write the normalized output (splits == 1) or this split's partial
/// accumulator and (max, sum) to the workspace. LOG2: the maxima are in the log2 domain (the
/// tensor-core kernel's exp2 scores); the workspace always gets natural-log maxima, as
/// decode_combine_kernel and the in-kernel merge read them.
template <typename T, int HD, bool LOG2>
__device__ __forceinline__ void merge_warps_store(const AttentionParams& p, const float (&sm_m)[DEC_WARPS][MAXG],
                                                  const float (&sm_l)[DEC_WARPS][MAXG], const float* sm_acc, int t,
                                                  int i, int kvh, int G, int split, int splits, float* ws) {
  constexpr float LN2 = 0.6931471805599453f;
  const int nh = p.n_heads;
  for (int idx = threadIdx.x; idx < G * HD; idx += blockDim.x) {
    const int g = idx / HD, d = idx % HD, h = kvh * G + g;
    float M, Lsum, A;
    merge_warps_elem<HD, LOG2>(sm_m, sm_l, sm_acc, g, d, M, Lsum, A);
    if (splits == 1) {
      static_cast<T*>(p.out)[(std::size_t(t) * nh + h) * HD + d] = from_f32<T>(Lsum > 0.0f ? A / Lsum : 0.0f);
    } else {
      const std::size_t row = (std::size_t(i) * nh + h) * splits + split;
      ws[row * HD + d] = A;
      if (d == 0) {
        float* ml = ws + std::size_t(gridDim.z) * nh * splits * HD;
        ml[2 * row] = LOG2 ? M * LN2 : M;
        ml[2 * row + 1] = Lsum;
      }
    }
  }
}

/// E elements of an int8 K/V row at p (one row of scale sc), widened to fp32.
template <int E>
__device__ __forceinline__ void load_small_i8(const std::int8_t* p, float sc, float (&out)[E]) {
#pragma unroll
  for (int i = 0; i < E; ++i) out[i] = float(p[i]) * sc;
}

template <typename T, int HD, bool KV8>
__global__ void __launch_bounds__(DEC_WARPS * 32)
    decode_attention_kernel(AttentionParams p, const std::int32_t* __restrict__ tok_list, int splits,
                            float* __restrict__ ws) {
  pdl_wait();
  pdl_trigger();
  constexpr int E = HD / 32;
  __shared__ float sm_m[DEC_WARPS][MAXG], sm_l[DEC_WARPS][MAXG];
  __shared__ float sm_acc[DEC_WARPS][MAXG][HD];

  const int split = blockIdx.x, kvh = blockIdx.y, i = blockIdx.z;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int t = tok_list[i];
  const int nh = p.n_heads, G = nh / p.n_kv_heads;
  const int L = p.kv_len[t];
  const int chunk = (L + splits - 1) / splits;
  const int k0 = split * chunk, k1 = min(L, k0 + chunk);

  float q[MAXG][E], acc[MAXG][E], m[MAXG], l[MAXG];
#pragma unroll
  for (int g = 0; g < MAXG; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int e = 0; e < E; ++e) acc[g][e] = 0.0f, q[g][e] = 0.0f;
    if (g < G) {
      load_small<T, E>(static_cast<const T*>(p.q) + (std::size_t(t) * nh + kvh * G + g) * HD + lane * E, q[g]);
#pragma unroll
      for (int e = 0; e < E; ++e) q[g][e] *= p.scale;
    }
  }

  const std::int32_t* table = p.block_ids + p.bt_off[t];
  const std::size_t kv_stride = std::size_t(p.n_kv_heads) * HD;
  const std::size_t head_off = std::size_t(kvh) * HD + lane * E;
  for (int j = k0 + warp; j < k1; j += DEC_WARPS) {
    const std::int64_t slot = std::int64_t(table[j / p.block_size]) * p.block_size + j % p.block_size;
    float kv[E], vv[E];
    if constexpr (KV8) {
      const std::size_t row = std::size_t(slot) * p.n_kv_heads + kvh;
      load_small_i8<E>(static_cast<const std::int8_t*>(p.k_cache) + std::size_t(slot) * kv_stride + head_off,
                       p.k_scale[row], kv);
      load_small_i8<E>(static_cast<const std::int8_t*>(p.v_cache) + std::size_t(slot) * kv_stride + head_off,
                       p.v_scale[row], vv);
    } else {
      load_small<T, E>(static_cast<const T*>(p.k_cache) + std::size_t(slot) * kv_stride + head_off, kv);
      load_small<T, E>(static_cast<const T*>(p.v_cache) + std::size_t(slot) * kv_stride + head_off, vv);
    }
#pragma unroll
    for (int g = 0; g < MAXG; ++g) {
      if (g >= G) break;
      float s = 0.0f;
#pragma unroll
      for (int e = 0; e < E; ++e) s = fmaf(q[g][e], kv[e], s);
      s = warp_sum(s);
      const float m_new = fmaxf(m[g], s);
      const float corr = expf(m[g] - m_new);  // m = -inf on the first key: corr = 0
      const float pr = expf(s - m_new);
      l[g] = l[g] * corr + pr;
#pragma unroll
      for (int e = 0; e < E; ++e) acc[g][e] = fmaf(pr, vv[e], acc[g][e] * corr);
      m[g] = m_new;
    }
  }

  // Merge the warps.
#pragma unroll
  for (int g = 0; g < MAXG; ++g) {
    if (g >= G) break;
    if (lane == 0) sm_m[warp][g] = m[g], sm_l[warp][g] = l[g];
#pragma unroll
    for (int e = 0; e < E; ++e) sm_acc[warp][g][lane * E + e] = acc[g][e];
  }
  __syncthreads();
  merge_warps_store<T, HD, false>(p, sm_m, sm_l, &sm_acc[0][0][0], t, i, kvh, G, split, splits, ws);
}

template <typename T, int HD>
__global__ void decode_combine_kernel(AttentionParams p, const std::int32_t* __restrict__ tok_list, int n, int splits,
                                      const float* __restrict__ ws) {
  pdl_wait();
  pdl_trigger();
  const int h = blockIdx.x, i = blockIdx.y, d = threadIdx.x;
  const int nh = p.n_heads, t = tok_list[i];
  const std::size_t base = (std::size_t(i) * nh + h) * splits;
  const float* ml = ws + std::size_t(n) * nh * splits * HD;
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, ml[2 * (base + s)]);
  float Lsum = 0.0f, A = 0.0f;
  if (M != -INFINITY) {
    for (int s = 0; s < splits; ++s) {
      const float ms = ml[2 * (base + s)];
      if (ms == -INFINITY) continue;
      const float f = expf(ms - M);
      Lsum += ml[2 * (base + s) + 1] * f;
      A += ws[(base + s) * HD + d] * f;
    }
  }
  static_cast<T*>(p.out)[(std::size_t(t) * nh + h) * HD + d] = from_f32<T>(Lsum > 0.0f ? A / Lsum : 0.0f);
}

// ---- CUDA kernels: decode on tensor cores (bf16 / fp16) ------------------------------------

constexpr int TC_BK = 64;  // keys per shared-memory tile; warp w takes keys 16w .. 16w+15 of it

/// Q (16 rows), K[2], V[2] in T; with int8 K/V (KV8) one K and one V tile and two int8 stages.
template <typename T, int HD, bool KV8>
constexpr std::size_t decode_tc_smem_bytes() {
  return sizeof(T) * std::size_t(16 * HD + (KV8 ? 2 : 4) * TC_BK * HD) + (KV8 ? 2 * kKV8StageBytes<HD, TC_BK> : 0);
}

/// CL: the grid's splits of each (token, KV head) form one thread-block cluster (cluster
/// dims (splits, 1, 1)); each CTA leaves its merged partial (max, sum, accumulator of its G
/// heads) in its own shared memory and, after a cluster barrier, the cluster's CTAs together
/// combine the splits through distributed shared memory and write the output: no workspace,
/// fence or counter. A second barrier keeps every CTA resident until the others have read it.
template <typename T, int HD, bool KV8, bool CL = false>
__global__ void __launch_bounds__(DEC_WARPS * 32)
    decode_attention_tc_kernel(AttentionParams p, const std::int32_t* __restrict__ tok_list, int splits,
                               float* __restrict__ ws, float scale_log2) {
  if constexpr (!KV8) {
    // Warm-up (measured at least as fast as without it on the H100): under PDL this CTA may start
    // while the kernel before it (the QKV GEMV that writes q and this step's K/V row) still
    // runs. The plan (token list, lengths, block tables: uploaded by the host before the step)
    // and the keys of earlier steps do not depend on it, so the CTA reads its plan and pulls
    // the rows of its first two key tiles into L2 now; the cp.async loads after the wait then
    // hit L2. (A prefetch only moves lines into L2, the point of coherence: the row the
    // previous kernel writes is read fresh after the wait all the same.)
    const int t = tok_list[blockIdx.z];
    const int L = p.kv_len[t];
    const int chunk = (L + splits - 1) / splits;
    const int k0 = min(L, int(blockIdx.x) * chunk), k1 = min(min(L, k0 + chunk), k0 + 2 * TC_BK);
    const std::int32_t* table = p.block_ids + p.bt_off[t];
    constexpr int LINES = HD * int(sizeof(T)) / 128;  // 128-byte lines per K (or V) row
    const std::size_t kv_stride = std::size_t(p.n_kv_heads) * HD;
    const T* kb = static_cast<const T*>(p.k_cache) + std::size_t(blockIdx.y) * HD;
    const T* vb = static_cast<const T*>(p.v_cache) + std::size_t(blockIdx.y) * HD;
    for (int idx = threadIdx.x; idx < (k1 - k0) * LINES; idx += blockDim.x) {
      const int j = k0 + idx / LINES;
      const std::int64_t slot = std::int64_t(table[j / p.block_size]) * p.block_size + j % p.block_size;
      const std::size_t a = std::size_t(slot) * kv_stride + std::size_t(idx % LINES) * (128 / sizeof(T));
      asm volatile("prefetch.global.L2 [%0];\n" ::"l"(kb + a));
      asm volatile("prefetch.global.L2 [%0];\n" ::"l"(vb + a));
    }
  }
  pdl_wait();
  pdl_trigger();
  constexpr int CH = HD / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem);
  // 16-bit K/V: K[2], V[2] tiles (cp.async double buffer). int8: one K and one V tile, the
  // int8 stages double-buffer the loads and each tile is dequantized right before its MMAs.
  constexpr int NBUF = KV8 ? 1 : 2;
  T* sK0 = sQ + 16 * HD;
  T* sV0 = sK0 + NBUF * TC_BK * HD;
  unsigned char* stage0 = reinterpret_cast<unsigned char*>(sV0 + NBUF * TC_BK * HD);  // KV8 only
  __shared__ float sm_m[DEC_WARPS][MAXG], sm_l[DEC_WARPS][MAXG];

  const int split = blockIdx.x, kvh = blockIdx.y, i = blockIdx.z;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int t = tok_list[i];
  const int nh = p.n_heads, G = nh / p.n_kv_heads;
  const int L = p.kv_len[t];
  const int chunk = (L + splits - 1) / splits;
  const int k0 = min(L, split * chunk), k1 = min(L, k0 + chunk);
  const std::int32_t* table = p.block_ids + p.bt_off[t];
  const std::size_t kv_stride = std::size_t(p.n_kv_heads) * HD;

  // Q rows 0..G-1 are the group's query heads, the rest zero.
  for (int idx = tid; idx < 16 * CH; idx += DEC_WARPS * 32) {
    const int r = idx / CH, c = idx % CH;
    const T* src = static_cast<const T*>(p.q) + (std::size_t(t) * nh + kvh * G + (r < G ? r : 0)) * HD + c * 8;
    cp_async16(sQ + swz<HD>(r, c), src, r < G ? 16 : 0);
  }
  auto load_kv = [&](int j0, int buf) {
    if constexpr (KV8) {
      load_kv_tile_i8<HD, TC_BK, DEC_WARPS * 32>(
          stage0 + buf * kKV8StageBytes<HD, TC_BK>, static_cast<const std::int8_t*>(p.k_cache) + std::size_t(kvh) * HD,
          static_cast<const std::int8_t*>(p.v_cache) + std::size_t(kvh) * HD, p.k_scale + kvh, p.v_scale + kvh, table,
          p.block_size, kv_stride, p.n_kv_heads, j0, k1, tid);
    } else {
      load_kv_tile<T, HD, TC_BK, DEC_WARPS * 32>(sK0 + buf * TC_BK * HD, sV0 + buf * TC_BK * HD,
                                                 static_cast<const T*>(p.k_cache) + std::size_t(kvh) * HD,
                                                 static_cast<const T*>(p.v_cache) + std::size_t(kvh) * HD, table,
                                                 p.block_size, kv_stride, j0, k1, tid);
    }
  };
  const int n_kt = (k1 - k0 + TC_BK - 1) / TC_BK;
  if (n_kt > 0) load_kv(k0, 0);
  cp_async_commit();

  const int g = lane >> 2, tig = lane & 3;  // this thread's row g = query head kvh * G + g
  std::uint32_t qf[HD / 16][4];
  float o[HD / 8][4];
#pragma unroll
  for (int n = 0; n < HD / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m = -INFINITY, l = 0.0f;  // log2 domain; l over this thread's columns only

  for (int it = 0; it < n_kt; ++it) {
    const int buf = it & 1, j0 = k0 + it * TC_BK;
    if (it + 1 < n_kt) {
      load_kv(j0 + TC_BK, buf ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if constexpr (KV8) {
      dequant_kv_tile<T, HD, TC_BK, DEC_WARPS * 32>(stage0 + buf * kKV8StageBytes<HD, TC_BK>, sK0, sV0, tid);
      __syncthreads();
    }
    if (it == 0) {
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) ldmatrix_x4(qf[kk], sQ + swz<HD>(lane & 15, kk * 2 + (lane >> 4)));
    }
    const T* sK = sK0 + (KV8 ? 0 : buf) * TC_BK * HD;
    const T* sV = sV0 + (KV8 ? 0 : buf) * TC_BK * HD;

    float s[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      std::uint32_t b[4];
      ldmatrix_x4(b, sK + swz<HD>(warp * 16 + (lane & 7) + ((lane >> 4) << 3), kk * 2 + ((lane >> 3) & 1)));
      mma16816<T>(s[0], qf[kk], b[0], b[1]);
      mma16816<T>(s[1], qf[kk], b[2], b[3]);
    }
    // Row g only (rows 8..15 are padding for G <= 8): mask keys past k1, online softmax.
    float mx = -INFINITY;
#pragma unroll
    for (int n = 0; n < 2; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int j = j0 + warp * 16 + n * 8 + tig * 2 + e;
        const float v = j < k1 ? s[n][e] * scale_log2 : -INFINITY;
        s[n][e] = v;
        mx = fmaxf(mx, v);
      }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(m, mx);
    const float base = m_new == -INFINITY ? 0.0f : m_new;
    const float corr = exp2f(m - base);
    m = m_new;
    l *= corr;
#pragma unroll
    for (int n = 0; n < HD / 8; ++n) o[n][0] *= corr, o[n][1] *= corr;
    const float p0 = exp2f(s[0][0] - base), p1 = exp2f(s[0][1] - base);
    const float p2 = exp2f(s[1][0] - base), p3 = exp2f(s[1][1] - base);
    l += p0 + p1 + p2 + p3;
    const std::uint32_t pf[4] = {pack2<T>(p0, p1), 0u, pack2<T>(p2, p3), 0u};
#pragma unroll
    for (int dp = 0; dp < HD / 16; ++dp) {
      std::uint32_t b[4];
      ldmatrix_x4_trans(b, sV + swz<HD>(warp * 16 + (lane & 7) + (((lane >> 3) & 1) << 3), dp * 2 + (lane >> 4)));
      mma16816<T>(o[2 * dp], pf, b[0], b[1]);
      mma16816<T>(o[2 * dp + 1], pf, b[2], b[3]);
    }
    // 16-bit: every warp is done with this buffer before it is refilled. (int8: the barrier
    // after the next tile's dequantization already orders it; the stage refilled next was
    // read before this tile's second barrier.)
    if constexpr (!KV8) __syncthreads();
  }
  cp_async_wait<0>();  // nothing may still be landing in shared memory reused below
  __syncthreads();

  // Merge the warps (their keys are disjoint) through shared memory; the K/V tiles are free now
  // (int8: one K and one V tile, 256 HD bytes, still more than the 128 HD bytes needed).
  l += __shfl_xor_sync(0xffffffffu, l, 1);
  l += __shfl_xor_sync(0xffffffffu, l, 2);
  float* sm_acc = reinterpret_cast<float*>(sK0);  // [DEC_WARPS][MAXG][HD]
  if (g < G) {
    if (tig == 0) sm_m[warp][g] = m, sm_l[warp][g] = l;
#pragma unroll
    for (int n = 0; n < HD / 8; ++n) {
      sm_acc[(warp * MAXG + g) * HD + n * 8 + tig * 2] = o[n][0];
      sm_acc[(warp * MAXG + g) * HD + n * 8 + tig * 2 + 1] = o[n][1];
    }
  }
  __syncthreads();
  if constexpr (CL) {
    // This CTA's partial over its keys, per head g of the group: the warps merged into
    // s_part [MAXG][HD] (the accumulator) and s_ml [MAXG][2] (max in the log2 domain, sum),
    // in the K/V tile memory after sm_acc.
    float* s_part = sm_acc + DEC_WARPS * MAXG * HD;
    float* s_ml = s_part + MAXG * HD;
    for (int idx = tid; idx < G * HD; idx += DEC_WARPS * 32) {
      const int gg = idx / HD, d = idx % HD;
      float M, Lsum, A;
      merge_warps_elem<HD, true>(sm_m, sm_l, sm_acc, gg, d, M, Lsum, A);
      s_part[gg * HD + d] = A;
      if (d == 0) {
        s_ml[2 * gg] = M;
        s_ml[2 * gg + 1] = Lsum;
      }
    }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
    __trap();  // clusters need sm_90; the launcher never asks for them below it
#else
    namespace cg = cooperative_groups;
    cg::cluster_group cluster = cg::this_cluster();
    cluster.sync();  // every split's partial is in its CTA's shared memory
    const int S = int(cluster.num_blocks()), rank = int(cluster.block_rank());
    for (int idx = rank * DEC_WARPS * 32 + tid; idx < G * HD; idx += S * DEC_WARPS * 32) {
      const int gg = idx / HD, d = idx % HD;
      float M = -INFINITY;
      for (int sp = 0; sp < S; ++sp) M = fmaxf(M, cluster.map_shared_rank(s_ml, sp)[2 * gg]);
      float Lsum = 0.0f, A = 0.0f;
      if (M != -INFINITY) {
        for (int sp = 0; sp < S; ++sp) {
          const float* ml = cluster.map_shared_rank(s_ml, sp);
          const float ms = ml[2 * gg];
          if (ms == -INFINITY) continue;
          const float f = exp2f(ms - M);
          Lsum += ml[2 * gg + 1] * f;
          A += cluster.map_shared_rank(s_part, sp)[gg * HD + d] * f;
        }
      }
      static_cast<T*>(p.out)[(std::size_t(t) * nh + kvh * G + gg) * HD + d] = from_f32<T>(Lsum > 0.0f ? A / Lsum : 0.0f);
    }
    cluster.sync();  // no CTA exits while another still reads its shared memory
    return;
#endif
  }
  merge_warps_store<T, HD, true>(p, sm_m, sm_l, sm_acc, t, i, kvh, G, split, splits, ws);
  if (splits == 1) return;

  // The last split of (token, kv head) to finish merges all of them (no second kernel): each
  // split publishes its partials, fences, and counts itself in; the CTA that brings the count
  // to `splits` resets it to 0 (the workspace is left as found) and combines in split order,
  // so the result does not depend on which CTA came last.
  __shared__ int s_last;
  __threadfence();
  __syncthreads();
  if (tid == 0) {
    int* cnt = reinterpret_cast<int*>(ws + std::size_t(gridDim.z) * nh * splits * (HD + 2)) +
               std::size_t(i) * p.n_kv_heads + kvh;
    s_last = atomicAdd(cnt, 1) == splits - 1;
    if (s_last) *cnt = 0;
  }
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  // Merge: (1) the (max, sum) of every (head, split) into shared memory, one thread each;
  // (2) per head the global max and each split's weight e^(m_s - M) / sum_s l_s e^(m_s - M);
  // (3) every output element sums its splits' accumulators, all loads independent. (A serial
  // loop over splits per element was a chain of dependent L2 round trips, measured slower.)
  const float* ml = ws + std::size_t(gridDim.z) * nh * splits * HD;
  __shared__ float s_m[MAXG][16], s_w[MAXG][16];
  if (tid < G * splits) {
    const int gg = tid / splits, sp = tid % splits;
    s_m[gg][sp] = __ldcg(ml + 2 * ((std::size_t(i) * nh + kvh * G + gg) * splits + sp));
    s_w[gg][sp] = __ldcg(ml + 2 * ((std::size_t(i) * nh + kvh * G + gg) * splits + sp) + 1);
  }
  __syncthreads();
  if (tid < G) {
    float M = -INFINITY;
    for (int sp = 0; sp < splits; ++sp) M = fmaxf(M, s_m[tid][sp]);
    float Lsum = 0.0f;
    for (int sp = 0; sp < splits; ++sp) {
      const float f = s_m[tid][sp] == -INFINITY ? 0.0f : expf(s_m[tid][sp] - M);
      s_m[tid][sp] = f;  // reuse: the split's factor
      Lsum += s_w[tid][sp] * f;
    }
    const float inv = Lsum > 0.0f ? 1.0f / Lsum : 0.0f;
    for (int sp = 0; sp < splits; ++sp) s_w[tid][sp] = s_m[tid][sp] * inv;
  }
  __syncthreads();
  for (int idx = tid; idx < G * HD; idx += DEC_WARPS * 32) {
    const int gg = idx / HD, d = idx % HD, h = kvh * G + gg;
    const std::size_t base = (std::size_t(i) * nh + h) * splits;
    float A = 0.0f;
#pragma unroll 4
    for (int sp = 0; sp < splits; ++sp) A = fmaf(s_w[gg][sp], __ldcg(ws + (base + sp) * HD + d), A);
    static_cast<T*>(p.out)[(std::size_t(t) * nh + h) * HD + d] = from_f32<T>(A);
  }
}

template <typename T, int HD, bool KV8>
cudaError_t launch_decode_hd(const AttentionParams& p, const std::int32_t* tok_list, int n, int splits, float* ws,
                             cudaStream_t s) {
  const dim3 grid(splits, p.n_kv_heads, n), block(DEC_WARPS * 32);
  cudaError_t e;
  if constexpr (sizeof(T) == 2) {
    // > 48 KiB of dynamic shared memory needs an opt-in, per device: a host-side attribute,
    // also legal while a CUDA graph is being captured.
    constexpr std::size_t smem = decode_tc_smem_bytes<T, HD, KV8>();
    e = cudaFuncSetAttribute(decode_attention_tc_kernel<T, HD, KV8>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             int(smem));
    if (e != cudaSuccess) return e;
    if constexpr (!KV8) {
      if (p.cluster_merge && splits > 1 && hopper_or_later()) {
        e = cudaFuncSetAttribute(decode_attention_tc_kernel<T, HD, false, true>,
                                 cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
        if (e != cudaSuccess) return e;
        return cuda::launch_cluster(decode_attention_tc_kernel<T, HD, false, true>, grid, block, smem, s,
                                    unsigned(splits), p, tok_list, splits, ws, p.scale * 1.4426950408889634f);
      }
    }
    e = cuda::launch(decode_attention_tc_kernel<T, HD, KV8>, grid, block, smem, s, p, tok_list, splits, ws,
                     p.scale * 1.4426950408889634f);
  } else {
    e = cuda::launch(decode_attention_kernel<T, HD, KV8>, grid, block, 0, s, p, tok_list, splits, ws);
  }
  if (e != cudaSuccess || splits == 1 || sizeof(T) == 2) return e;  // 16-bit: merged in the kernel
  return cuda::launch(decode_combine_kernel<T, HD>, dim3(p.n_heads, n), dim3(HD), 0, s, p, tok_list, n, splits, ws);
}

template <typename T, bool KV8>
cudaError_t launch_decode_kv(const AttentionParams& p, const std::int32_t* tok_list, int n, int splits, float* ws,
                             cudaStream_t s) {
  return p.head_dim == 64 ? launch_decode_hd<T, 64, KV8>(p, tok_list, n, splits, ws, s)
                          : launch_decode_hd<T, 128, KV8>(p, tok_list, n, splits, ws, s);
}

template <typename T>
cudaError_t launch_decode(const AttentionParams& p, const std::int32_t* tok_list, int n, int splits, float* ws,
                          cudaStream_t s) {
  return p.k_scale ? launch_decode_kv<T, true>(p, tok_list, n, splits, ws, s)
                   : launch_decode_kv<T, false>(p, tok_list, n, splits, ws, s);
}

bool valid(const AttentionParams& p) {
  return (p.head_dim == 64 || p.head_dim == 128) && p.n_kv_heads > 0 && p.n_heads % p.n_kv_heads == 0 &&
         p.n_heads / p.n_kv_heads <= MAXG && p.block_size > 0 && !p.k_scale == !p.v_scale;
}

}  // namespace

// ---- kernel launchers ---------------------------------------------------------------------

std::size_t decode_attention_workspace_floats(int n, int n_heads, int head_dim, int splits) noexcept {
  if (splits <= 1) return 0;
  // partial accumulators, (max, sum) pairs, then one int counter per (token, head) (>= per KV head)
  return std::size_t(n) * n_heads * splits * (head_dim + 2) + std::size_t(n) * n_heads;
}

int decode_attention_splits(int n, int n_kv_heads, int n_sms, int max_kv_len, int min_keys_arg) noexcept {
  const int work = n * n_kv_heads, target = 2 * n_sms;
  if (work <= 0 || work >= target) return 1;
  // Enough CTAs to fill the GPU, but at least 128 keys (of the longest context's bucket) per
  // split: a split of a few keys costs a CTA's fixed latency for almost no bytes, and each
  // split adds to the merge. At batch 1 and a ~530-key context (bucket 1024) that is 8 splits
  // of ~66 keys. 128 measured faster than 64 on the H100 at 8B and SmolLM2 shapes, batch 1
  // (bench/results/README.md).
  const int min_keys = min_keys_arg >= 32 && min_keys_arg <= 1024 ? min_keys_arg : 128;
  const int by_len = std::max(1, (max_kv_len + min_keys - 1) / min_keys);
  return std::max(1, std::min({16, (target + work - 1) / work, by_len}));
}

Status decode_attention(DType dt, const AttentionParams& p, const std::int32_t* tok_list, int n, int splits,
                        float* workspace, void* stream) {
  if (n <= 0) return cudaSuccess;
  if (!valid(p) || splits < 1 || splits > 16 || (splits > 1 && !workspace)) return cudaErrorInvalidValue;
  auto s = static_cast<cudaStream_t>(stream);
  return VIREO_DISPATCH_DTYPE(dt, [&] { return launch_decode<T>(p, tok_list, n, splits, workspace, s); });
}

}  // namespace vireo::cuda
