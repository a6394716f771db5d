// Prefill attention over the paged KV cache, FlashAttention-2 style on tensor cores, with
// every intermediate (S = Q K^T, P, the output accumulator O) kept in registers.
//
// Grid (query tiles, n_heads), 4 warps. A CTA takes one tile of up to 64 query tokens of one
// sequence (PREFILL_TILE) and one query head; warp w owns query rows 16w .. 16w+15. Keys and
// values stream through shared memory in tiles of BK = 64 rows gathered from the paged cache
// through the block table with cp.async, double-buffered (tile i+1 loads while tile i
// computes). Per key tile, each warp runs
//   S[16 x 64]  = Q[16 x HD] K^T         mma.sync m16n8k16 (bf16/fp16 in, fp32 accumulate);
//                                        Q fragments loaded once (ldmatrix), K by ldmatrix
//   online softmax on the S fragments    a thread holds rows g and g+8 (g = lane / 4) and 2
//                                        columns of each 8-key n-tile; row max / sum over
//                                        the 4 threads of a quad with two shuffles
//   O[16 x HD] += P[16 x 64] V           the S accumulator layout of two adjacent n-tiles is
//                                        exactly the A-fragment layout of one k-step, so P
//                                        goes from registers to the MMA with one rounding to
//                                        T; V fragments by ldmatrix.trans
// and at the end O / l is written. Causality and variable lengths come from kv_len per query
// token (key j is visible iff j < kv_len); only key tiles past the shortest row of the tile
// are masked. Exponentials are exp2 with log2(e) folded into the scale.
//
// Shared memory rows are HD * 2 bytes (8 or 16 chunks of 16 bytes); the chunk index is XOR-ed
// with (row & 7), so the 8 row addresses of every ldmatrix phase hit 8 different 16-byte bank
// groups (no conflicts) and cp.async writes stay 16-byte aligned.
//
// Cost (Llama-3.1-8B layer, 2048-token causal prefill): 4 * 2048^2 / 2 * 128 * 32 heads
// = 34 GFLOP; at a practical ~250 TFLOP/s of mma.sync on an H100 that is ~0.14 ms.
// K/V tiles are re-read once per query head of a GQA group, from L2 (1 MiB per KV head at
// 2048 tokens).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "common.cuh"
#include "cuda_api.hpp"
#include "launch.cuh"
#include "mma.cuh"

namespace vireo::cuda {
namespace {

constexpr int BQ = PREFILL_TILE;  // 64 query rows per CTA
constexpr int BK = 64;            // keys per tile
constexpr int WARPS = BQ / 16;    // 4
constexpr int THREADS = WARPS * 32;

template <typename T, int HD>
constexpr std::size_t smem_bytes() {
  return sizeof(T) * std::size_t(BQ * HD + 4 * BK * HD);  // Q, K[2], V[2]
}

// ---- the kernel ---------------------------------------------------------------------------

template <typename T, int HD>
__global__ void __launch_bounds__(THREADS)
    prefill_attention_kernel(AttentionParams p, const std::int32_t* __restrict__ tok_list,
                             const std::int32_t* __restrict__ tiles, float scale_log2) {
  pdl_wait();
  pdl_trigger();
  constexpr int CH = HD / 8;  // 16-byte chunks per row
  extern __shared__ __align__(128) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem);
  T* sK0 = sQ + BQ * HD;  // K buffers [2][BK][HD], then V buffers [2][BK][HD]
  T* sV0 = sK0 + 2 * BK * HD;
  __shared__ int s_tok[BQ], s_len[BQ];
  __shared__ int s_kv_total, s_min_len;

  // Heaviest tiles (latest in a sequence) first: fewer CTAs left running alone at the end.
  const int tile = gridDim.x - 1 - blockIdx.x, h = blockIdx.y;
  const int nh = p.n_heads, nkv = p.n_kv_heads, kvh = h / (nh / nkv);
  const int off = tiles[3 * tile], cnt = tiles[3 * tile + 1];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  if (tid < BQ) {
    const int t = tid < cnt ? tok_list[off + tid] : -1;
    s_tok[tid] = t;
    s_len[tid] = t >= 0 ? p.kv_len[t] : 0;
  }
  if (tid == 0) s_kv_total = 0, s_min_len = 1 << 30;
  __syncthreads();
  if (tid < BQ) {
    atomicMax(&s_kv_total, s_len[tid]);
    if (s_tok[tid] >= 0) atomicMin(&s_min_len, s_len[tid]);
  }
  __syncthreads();
  const int kv_total = s_kv_total, min_len = s_min_len;
  const std::int32_t* table = p.block_ids + p.bt_off[s_tok[0]];
  const std::size_t kv_stride = std::size_t(nkv) * HD;
  const T* kbase = static_cast<const T*>(p.k_cache) + std::size_t(kvh) * HD;
  const T* vbase = static_cast<const T*>(p.v_cache) + std::size_t(kvh) * HD;

  // Q tile (padding rows zero).
  for (int idx = tid; idx < BQ * CH; idx += THREADS) {
    const int r = idx / CH, c = idx % CH, t = s_tok[r];
    const T* src = static_cast<const T*>(p.q) + (std::size_t(t < 0 ? 0 : t) * nh + h) * HD + c * 8;
    cp_async16(sQ + swz<HD>(r, c), src, t >= 0 ? 16 : 0);
  }
  auto load_kv = [&](int k0, int buf) {
    T* sK = sK0 + buf * BK * HD;
    T* sV = sV0 + buf * BK * HD;
    for (int idx = tid; idx < BK * CH; idx += THREADS) {
      const int kr = idx / CH, c = idx % CH, j = k0 + kr;
      std::size_t a = 0;
      const bool ok = j < kv_total;
      if (ok) {
        const std::int64_t slot = std::int64_t(table[j / p.block_size]) * p.block_size + j % p.block_size;
        a = std::size_t(slot) * kv_stride + std::size_t(c) * 8;
      }
      cp_async16(sK + swz<HD>(kr, c), kbase + a, ok ? 16 : 0);
      cp_async16(sV + swz<HD>(kr, c), vbase + a, ok ? 16 : 0);
    }
  };
  load_kv(0, 0);
  cp_async_commit();

  const int g = lane >> 2, tig = lane & 3;
  const int row_a = warp * 16 + g, row_b = row_a + 8;
  const int len_a = s_len[row_a], len_b = s_len[row_b];

  std::uint32_t qf[HD / 16][4];
  float o[HD / 8][4];
#pragma unroll
  for (int n = 0; n < HD / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;  // l: this thread's columns only

  const int n_kt = (kv_total + BK - 1) / BK;
  for (int it = 0; it < n_kt; ++it) {
    const int k0 = it * BK, buf = it & 1;
    if (it + 1 < n_kt) {
      load_kv(k0 + BK, buf ^ 1);  // buffer buf^1 was released by the barrier ending the last iteration
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (it == 0) {
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk)
        ldmatrix_x4(qf[kk], sQ + swz<HD>(warp * 16 + (lane & 15), kk * 2 + (lane >> 4)));
    }
    const T* sK = sK0 + buf * BK * HD;
    const T* sV = sV0 + buf * BK * HD;

    // S = Q K^T: 8 n-tiles of 8 keys.
    float s[BK / 8][4];
#pragma unroll
    for (int n = 0; n < BK / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < BK / 16; ++np) {
        std::uint32_t b[4];  // keys np*16 + 0..7 (dims kk*16 + 0..7, 8..15), keys + 8..15 (same)
        ldmatrix_x4(b, sK + swz<HD>(np * 16 + (lane & 7) + ((lane >> 4) << 3), kk * 2 + ((lane >> 3) & 1)));
        mma16816<T>(s[2 * np], qf[kk], b[0], b[1]);
        mma16816<T>(s[2 * np + 1], qf[kk], b[2], b[3]);
      }
    }

    // Scale (log2 domain), causal / length mask, online softmax.
    const bool need_mask = k0 + BK > min_len;
    float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
    for (int n = 0; n < BK / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int j = k0 + n * 8 + tig * 2 + e;
        float va = s[n][e] * scale_log2, vb = s[n][2 + e] * scale_log2;
        if (need_mask) {
          if (j >= len_a) va = -INFINITY;
          if (j >= len_b) vb = -INFINITY;
        }
        s[n][e] = va;
        s[n][2 + e] = vb;
        mx_a = fmaxf(mx_a, va);
        mx_b = fmaxf(mx_b, vb);
      }
    }
    mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 1));
    mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 2));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 1));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 2));
    const float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
    // A row with no visible key yet keeps m = -inf; subtract 0 instead so exp2 gives 0, not NaN.
    const float base_a = mn_a == -INFINITY ? 0.0f : mn_a, base_b = mn_b == -INFINITY ? 0.0f : mn_b;
    const float corr_a = exp2f(m_a - base_a), corr_b = exp2f(m_b - base_b);
    m_a = mn_a;
    m_b = mn_b;
    l_a *= corr_a;
    l_b *= corr_b;
#pragma unroll
    for (int n = 0; n < HD / 8; ++n) {
      o[n][0] *= corr_a;
      o[n][1] *= corr_a;
      o[n][2] *= corr_b;
      o[n][3] *= corr_b;
    }
    std::uint32_t pf[BK / 16][4];  // P as A fragments, one per 16-key step
#pragma unroll
    for (int n = 0; n < BK / 8; ++n) {
      const float p0 = exp2f(s[n][0] - base_a), p1 = exp2f(s[n][1] - base_a);
      const float p2 = exp2f(s[n][2] - base_b), p3 = exp2f(s[n][3] - base_b);
      l_a += p0 + p1;
      l_b += p2 + p3;
      pf[n / 2][(n & 1) * 2 + 0] = pack2<T>(p0, p1);  // row g,   keys 8n + 2 tig, +1
      pf[n / 2][(n & 1) * 2 + 1] = pack2<T>(p2, p3);  // row g+8
    }

    // O += P V: HD/8 n-tiles of 8 dims, 4 k-steps of 16 keys.
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
#pragma unroll
      for (int dp = 0; dp < HD / 16; ++dp) {
        std::uint32_t b[4];  // (keys kk*16 + 0..7, 8..15) x dims dp*16 + 0..7, then dims + 8..15
        ldmatrix_x4_trans(b, sV + swz<HD>(kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3), dp * 2 + (lane >> 4)));
        mma16816<T>(o[2 * dp], pf[kk], b[0], b[1]);
        mma16816<T>(o[2 * dp + 1], pf[kk], b[2], b[3]);
      }
    }
    __syncthreads();  // every warp is done with this buffer before it is refilled
  }

  // Row sums over the quad, normalize, write.
  l_a += __shfl_xor_sync(0xffffffffu, l_a, 1);
  l_a += __shfl_xor_sync(0xffffffffu, l_a, 2);
  l_b += __shfl_xor_sync(0xffffffffu, l_b, 1);
  l_b += __shfl_xor_sync(0xffffffffu, l_b, 2);
  const int t_a = s_tok[row_a], t_b = s_tok[row_b];
  const float inv_a = l_a > 0.0f ? 1.0f / l_a : 0.0f, inv_b = l_b > 0.0f ? 1.0f / l_b : 0.0f;
  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int n = 0; n < HD / 8; ++n) {
    const int c = n * 8 + tig * 2;
    if (t_a >= 0)
      *reinterpret_cast<std::uint32_t*>(out + (std::size_t(t_a) * nh + h) * HD + c) =
          pack2<T>(o[n][0] * inv_a, o[n][1] * inv_a);
    if (t_b >= 0)
      *reinterpret_cast<std::uint32_t*>(out + (std::size_t(t_b) * nh + h) * HD + c) =
          pack2<T>(o[n][2] * inv_b, o[n][3] * inv_b);
  }
}

template <typename T, int HD>
cudaError_t launch(const AttentionParams& p, const std::int32_t* tok_list, const std::int32_t* tiles, int n_tiles,
                   cudaStream_t s) {
  constexpr std::size_t smem = smem_bytes<T, HD>();
  cudaError_t e = cudaFuncSetAttribute(prefill_attention_kernel<T, HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(smem));
  if (e != cudaSuccess) return e;
  const float scale_log2 = p.scale * 1.4426950408889634f;
  return cuda::launch(prefill_attention_kernel<T, HD>, dim3(n_tiles, p.n_heads), dim3(THREADS), smem, s, p, tok_list,
                      tiles, scale_log2);
}

}  // namespace

// ---- kernel launcher ----------------------------------------------------------------------

Status prefill_attention(DType dt, const AttentionParams& p, const std::int32_t* tok_list, const std::int32_t* tiles,
                         int n_tiles, void* stream) {
  if (n_tiles <= 0) return cudaSuccess;
  const bool ok = (p.head_dim == 64 || p.head_dim == 128) && p.n_kv_heads > 0 && p.n_heads % p.n_kv_heads == 0 &&
                  p.block_size > 0;
  if (!ok || dt == DType::F32) return cudaErrorInvalidValue;  // tensor cores: 16-bit only
  // Q and the K/V rows are copied as 16-byte chunks (rows are HD * 2 bytes, a multiple of 16).
  if (!aligned16(p.q) || !aligned16(p.k_cache) || !aligned16(p.v_cache) || !aligned16(p.out))
    return cudaErrorMisalignedAddress;
  auto s = static_cast<cudaStream_t>(stream);
  if (dt == DType::BF16)
    return p.head_dim == 64 ? launch<__nv_bfloat16, 64>(p, tok_list, tiles, n_tiles, s)
                            : launch<__nv_bfloat16, 128>(p, tok_list, tiles, n_tiles, s);
  return p.head_dim == 64 ? launch<__half, 64>(p, tok_list, tiles, n_tiles, s)
                          : launch<__half, 128>(p, tok_list, tiles, n_tiles, s);
}

}  // namespace vireo::cuda
