// Prefill attention over the paged KV cache, FlashAttention-2 style on tensor cores, with
// every intermediate (S = Q K^T, P, the output accumulator O) kept in registers.
//
// Grid (query tiles, n_heads), 4 warps. A CTA takes one tile of up to PREFILL_TILE = 128 query
// tokens of one sequence and one query head; warp w owns query rows 32w .. 32w+31 as two
// m-tiles of 16 rows (MT = 2). Keys and
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
// = 34 GFLOP. With 16 rows per warp each K/V fragment feeds only two MMAs, so ldmatrix -> mma
// latency is poorly hidden; each warp therefore takes two m-tiles (128-token tiles, 255
// registers, no spills), FlashAttention-2's arrangement, which measured faster than one
// m-tile per warp on the H100 (bench/results/README.md).
// K/V tiles are re-read once per query head of a GQA group, from L2 (1 MiB per KV head at
// 2048 tokens). int8 K/V (AttentionParams::k_scale) are staged as int8 rows + row scales
// (double-buffered) and dequantized into a single K and V tile before the MMAs (mma.cuh),
// as in decode.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "common.cuh"
#include "cuda_api.hpp"
#include "launch.cuh"
#include "mma.cuh"

namespace vireo::cuda {
namespace {

constexpr int BK = 64;       // keys per tile
constexpr int WARPS = 4;
constexpr int THREADS = WARPS * 32;
constexpr int MT = 2;        // m-tiles of 16 query rows per warp
constexpr int kBQ = 16 * WARPS * MT;  // query rows per CTA
static_assert(kBQ == PREFILL_TILE, "a prefill tile is one CTA's query rows");

/// Q, K[2], V[2] in T; with int8 K/V (KV8) one K and one V tile and two int8 stages.
template <typename T, int HD, bool KV8>
constexpr std::size_t smem_bytes() {
  return sizeof(T) * std::size_t(kBQ * HD + (KV8 ? 2 : 4) * BK * HD) + (KV8 ? 2 * kKV8StageBytes<HD, BK> : 0);
}

// ---- the kernel ---------------------------------------------------------------------------

/// Warp w owns rows 32w .. 32w+31 as two m-tiles; every K / V fragment loaded feeds two MMAs
/// (twice the independent MMA chains per warp), Q fragments are re-read from shared memory per
/// key tile (register budget: O is 128 fp32).
template <typename T, int HD, bool KV8>
__global__ void __launch_bounds__(THREADS)
    prefill_attention_kernel(AttentionParams p, const std::int32_t* __restrict__ tok_list,
                             const std::int32_t* __restrict__ tiles, float scale_log2) {
  pdl_wait();
  pdl_trigger();
  constexpr int BQ = kBQ;
  constexpr int CH = HD / 8;  // 16-byte chunks per row
  extern __shared__ __align__(128) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem);
  // 16-bit K/V: K buffers [2][BK][HD], then V buffers [2][BK][HD]. int8: one K and one V
  // tile; the int8 stages double-buffer the loads, each tile is dequantized before its MMAs.
  constexpr int NBUF = KV8 ? 1 : 2;
  T* sK0 = sQ + BQ * HD;
  T* sV0 = sK0 + NBUF * BK * HD;
  unsigned char* stage0 = reinterpret_cast<unsigned char*>(sV0 + NBUF * BK * HD);  // KV8 only
  __shared__ int s_tok[kBQ], s_len[kBQ];
  __shared__ int s_kv_total, s_min_len;

  // Heaviest tiles (latest in a sequence) first: fewer CTAs left running alone at the end.
  const int tile = gridDim.x - 1 - blockIdx.x, h = blockIdx.y;
  const int nh = p.n_heads, nkv = p.n_kv_heads, kvh = h / (nh / nkv);
  const int off = tiles[3 * tile], cnt = tiles[3 * tile + 1];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  for (int r = tid; r < BQ; r += THREADS) {
    const int t = r < cnt ? tok_list[off + r] : -1;
    s_tok[r] = t;
    s_len[r] = t >= 0 ? p.kv_len[t] : 0;
  }
  if (tid == 0) s_kv_total = 0, s_min_len = 1 << 30;
  __syncthreads();
  for (int r = tid; r < BQ; r += THREADS) {
    atomicMax(&s_kv_total, s_len[r]);
    if (s_tok[r] >= 0) atomicMin(&s_min_len, s_len[r]);
  }
  __syncthreads();
  const int kv_total = s_kv_total, min_len = s_min_len;
  const std::int32_t* table = p.block_ids + p.bt_off[s_tok[0]];
  const std::size_t kv_stride = std::size_t(nkv) * HD;

  // Q tile (padding rows zero).
  for (int idx = tid; idx < BQ * CH; idx += THREADS) {
    const int r = idx / CH, c = idx % CH, t = s_tok[r];
    const T* src = static_cast<const T*>(p.q) + (std::size_t(t < 0 ? 0 : t) * nh + h) * HD + c * 8;
    cp_async16(sQ + swz<HD>(r, c), src, t >= 0 ? 16 : 0);
  }
  auto load_kv = [&](int k0, int buf) {
    if constexpr (KV8) {
      load_kv_tile_i8<HD, BK, THREADS>(
          stage0 + buf * kKV8StageBytes<HD, BK>, static_cast<const std::int8_t*>(p.k_cache) + std::size_t(kvh) * HD,
          static_cast<const std::int8_t*>(p.v_cache) + std::size_t(kvh) * HD, p.k_scale + kvh, p.v_scale + kvh, table,
          p.block_size, kv_stride, nkv, k0, kv_total, tid);
    } else {
      load_kv_tile<T, HD, BK, THREADS>(sK0 + buf * BK * HD, sV0 + buf * BK * HD,
                                       static_cast<const T*>(p.k_cache) + std::size_t(kvh) * HD,
                                       static_cast<const T*>(p.v_cache) + std::size_t(kvh) * HD, table, p.block_size,
                                       kv_stride, k0, kv_total, tid);
    }
  };
  load_kv(0, 0);
  cp_async_commit();

  // Thread rows: m-tile mt, half hf (0: row g, 1: row g + 8) of this warp.
  const int g = lane >> 2, tig = lane & 3, row0 = warp * 16 * MT;
  int len[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) len[mt][0] = s_len[row0 + mt * 16 + g], len[mt][1] = s_len[row0 + mt * 16 + g + 8];

  float o[MT][HD / 8][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int n = 0; n < HD / 8; ++n) o[mt][n][0] = o[mt][n][1] = o[mt][n][2] = o[mt][n][3] = 0.0f;
  float m_[MT][2], l_[MT][2];  // running max (log2 domain) and this thread's columns' sum
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) m_[mt][0] = m_[mt][1] = -INFINITY, l_[mt][0] = l_[mt][1] = 0.0f;

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
    if constexpr (KV8) {
      dequant_kv_tile<T, HD, BK, THREADS>(stage0 + buf * kKV8StageBytes<HD, BK>, sK0, sV0, tid);
      __syncthreads();
    }
    const T* sK = sK0 + (KV8 ? 0 : buf) * BK * HD;
    const T* sV = sV0 + (KV8 ? 0 : buf) * BK * HD;

    // S = Q K^T: per m-tile 8 n-tiles of 8 keys.
    float s[MT][BK / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int n = 0; n < BK / 8; ++n) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      std::uint32_t qm[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
        ldmatrix_x4(qm[mt], sQ + swz<HD>(row0 + mt * 16 + (lane & 15), kk * 2 + (lane >> 4)));
#pragma unroll
      for (int np = 0; np < BK / 16; ++np) {
        std::uint32_t b[4];  // keys np*16 + 0..7 (dims kk*16 + 0..7, 8..15), keys + 8..15 (same)
        ldmatrix_x4(b, sK + swz<HD>(np * 16 + (lane & 7) + ((lane >> 4) << 3), kk * 2 + ((lane >> 3) & 1)));
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma16816<T>(s[mt][2 * np], qm[mt], b[0], b[1]);
          mma16816<T>(s[mt][2 * np + 1], qm[mt], b[2], b[3]);
        }
      }
    }

    // Scale (log2 domain), causal / length mask, online softmax; P as A fragments.
    const bool need_mask = k0 + BK > min_len;
    std::uint32_t pf[MT][BK / 16][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int n = 0; n < BK / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int hf = e >> 1, j = k0 + n * 8 + tig * 2 + (e & 1);
          float v = s[mt][n][e] * scale_log2;
          if (need_mask && j >= len[mt][hf]) v = -INFINITY;
          s[mt][n][e] = v;
          mx[hf] = fmaxf(mx[hf], v);
        }
      }
      float base[2];
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        mx[hf] = fmaxf(mx[hf], __shfl_xor_sync(0xffffffffu, mx[hf], 1));
        mx[hf] = fmaxf(mx[hf], __shfl_xor_sync(0xffffffffu, mx[hf], 2));
        const float mn = fmaxf(m_[mt][hf], mx[hf]);
        // A row with no visible key yet keeps m = -inf; subtract 0 instead so exp2 gives 0, not NaN.
        base[hf] = mn == -INFINITY ? 0.0f : mn;
        const float corr = exp2f(m_[mt][hf] - base[hf]);
        m_[mt][hf] = mn;
        l_[mt][hf] *= corr;
#pragma unroll
        for (int n = 0; n < HD / 8; ++n) {
          o[mt][n][2 * hf] *= corr;
          o[mt][n][2 * hf + 1] *= corr;
        }
      }
#pragma unroll
      for (int n = 0; n < BK / 8; ++n) {
        const float p0 = exp2f(s[mt][n][0] - base[0]), p1 = exp2f(s[mt][n][1] - base[0]);
        const float p2 = exp2f(s[mt][n][2] - base[1]), p3 = exp2f(s[mt][n][3] - base[1]);
        l_[mt][0] += p0 + p1;
        l_[mt][1] += p2 + p3;
        pf[mt][n / 2][(n & 1) * 2 + 0] = pack2<T>(p0, p1);  // row g,   keys 8n + 2 tig, +1
        pf[mt][n / 2][(n & 1) * 2 + 1] = pack2<T>(p2, p3);  // row g+8
      }
    }

    // O += P V: HD/8 n-tiles of 8 dims, 4 k-steps of 16 keys.
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
#pragma unroll
      for (int dp = 0; dp < HD / 16; ++dp) {
        std::uint32_t b[4];  // (keys kk*16 + 0..7, 8..15) x dims dp*16 + 0..7, then dims + 8..15
        ldmatrix_x4_trans(b, sV + swz<HD>(kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3), dp * 2 + (lane >> 4)));
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma16816<T>(o[mt][2 * dp], pf[mt][kk], b[0], b[1]);
          mma16816<T>(o[mt][2 * dp + 1], pf[mt][kk], b[2], b[3]);
        }
      }
    }
    // 16-bit: every warp is done with this buffer before it is refilled. (int8: the barrier
    // after the next tile's dequantization already orders it; the stage refilled next was
    // read before this tile's second barrier.)
    if constexpr (!KV8) __syncthreads();
  }

  // Row sums over the quad, normalize, write.
  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      float l = l_[mt][hf];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const int t = s_tok[row0 + mt * 16 + g + 8 * hf];
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      if (t < 0) continue;
#pragma unroll
      for (int n = 0; n < HD / 8; ++n)
        *reinterpret_cast<std::uint32_t*>(out + (std::size_t(t) * nh + h) * HD + n * 8 + tig * 2) =
            pack2<T>(o[mt][n][2 * hf] * inv, o[mt][n][2 * hf + 1] * inv);
    }
}

template <typename T, int HD, bool KV8>
cudaError_t launch(const AttentionParams& p, const std::int32_t* tok_list, const std::int32_t* tiles, int n_tiles,
                   cudaStream_t s) {
  constexpr std::size_t smem = smem_bytes<T, HD, KV8>();
  cudaError_t e = cudaFuncSetAttribute(prefill_attention_kernel<T, HD, KV8>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
  if (e != cudaSuccess) return e;
  const float scale_log2 = p.scale * 1.4426950408889634f;
  return cuda::launch(prefill_attention_kernel<T, HD, KV8>, dim3(n_tiles, p.n_heads), dim3(THREADS), smem, s, p,
                      tok_list, tiles, scale_log2);
}

template <typename T, int HD>
cudaError_t launch_kv(const AttentionParams& p, const std::int32_t* tok_list, const std::int32_t* tiles, int n_tiles,
                      cudaStream_t s) {
  return p.k_scale ? launch<T, HD, true>(p, tok_list, tiles, n_tiles, s)
                   : launch<T, HD, false>(p, tok_list, tiles, n_tiles, s);
}

}  // namespace

// ---- kernel launcher ----------------------------------------------------------------------

Status prefill_attention(DType dt, const AttentionParams& p, const std::int32_t* tok_list, const std::int32_t* tiles,
                         int n_tiles, void* stream) {
  if (n_tiles <= 0) return cudaSuccess;
  const bool ok = (p.head_dim == 64 || p.head_dim == 128) && p.n_kv_heads > 0 && p.n_heads % p.n_kv_heads == 0 &&
                  p.block_size > 0;
  if (!ok || dt == DType::F32 || !p.k_scale != !p.v_scale) return cudaErrorInvalidValue;  // tensor cores: 16-bit only
  // Q and the K/V rows are copied as 16-byte chunks (rows are HD * 2 bytes, a multiple of 16).
  if (!aligned16(p.q) || !aligned16(p.k_cache) || !aligned16(p.v_cache) || !aligned16(p.out))
    return cudaErrorMisalignedAddress;
  auto s = static_cast<cudaStream_t>(stream);
  if (dt == DType::BF16)
    return p.head_dim == 64 ? launch_kv<__nv_bfloat16, 64>(p, tok_list, tiles, n_tiles, s)
                            : launch_kv<__nv_bfloat16, 128>(p, tok_list, tiles, n_tiles, s);
  return p.head_dim == 64 ? launch_kv<__half, 64>(p, tok_list, tiles, n_tiles, s)
                          : launch_kv<__half, 128>(p, tok_list, tiles, n_tiles, s);
}

}  // namespace vireo::cuda
