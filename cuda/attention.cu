// Paged causal attention over the KV cache: a split-KV decode kernel (flash-decoding) and a
// FlashAttention-2 style prefill kernel on tensor cores.
//
// Decode (one query token, any context length): grid (splits, n_kv_heads, tokens), 4 warps.
// The CTA of (token, kv head, split) reads its slice of that head's keys and values exactly
// once for the whole GQA group of G = nh/nkv query heads: warp w takes keys w, w+4, ...; the
// lanes split head_dim (HD/32 elements each), a shuffle reduction gives the score, and each
// warp keeps an online softmax (running max m, sum l, acc[HD]) per query head. The 4 warps
// are merged in shared memory. With splits > 1 each split writes its (m, l, acc) to the
// workspace and decode_combine_kernel merges them: O = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M).
// The chunk per split is ceil(kv_len / splits), computed on the device, so a CUDA graph
// captured with a fixed split count stays valid for any context length.
//
// Prefill: grid (query tiles, n_heads), 4 warps x 16 query rows = 64 queries of one sequence.
// Per key tile of 64 (gathered from the paged cache through the block table into shared
// memory): S = Q K^T with wmma 16x16x16 (bf16/fp16 in, fp32 out) into shared memory; each
// pair of lanes owns one query row for the online softmax (causal mask: key j visible to a
// query iff j < its kv_len = position + 1), writes P in T, rescales its row of the fp32 output
// accumulator O (kept in shared memory because wmma fragments have no row mapping), then
// O += P V with wmma. At the end O / l is written. K/V tiles are re-read per query head of a
// GQA group (from L2); prefill is compute-bound.
#include <mma.h>

#include <cfloat>

#include "common.cuh"
#include "cuda_api.hpp"

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

template <typename T, int HD>
__global__ void __launch_bounds__(DEC_WARPS * 32)
    decode_attention_kernel(AttentionParams p, const std::int32_t* __restrict__ tok_list, int splits,
                            float* __restrict__ ws) {
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
  const T* kc = static_cast<const T*>(p.k_cache) + std::size_t(kvh) * HD + lane * E;
  const T* vc = static_cast<const T*>(p.v_cache) + std::size_t(kvh) * HD + lane * E;
  for (int j = k0 + warp; j < k1; j += DEC_WARPS) {
    const std::int64_t slot = std::int64_t(table[j / p.block_size]) * p.block_size + j % p.block_size;
    float kv[E], vv[E];
    load_small<T, E>(kc + std::size_t(slot) * kv_stride, kv);
    load_small<T, E>(vc + std::size_t(slot) * kv_stride, vv);
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
  for (int idx = threadIdx.x; idx < G * HD; idx += blockDim.x) {
    const int g = idx / HD, d = idx % HD, h = kvh * G + g;
    float M = -INFINITY;
    for (int w = 0; w < DEC_WARPS; ++w) M = fmaxf(M, sm_m[w][g]);
    float Lsum = 0.0f, A = 0.0f;
    if (M != -INFINITY) {
      for (int w = 0; w < DEC_WARPS; ++w) {
        if (sm_m[w][g] == -INFINITY) continue;
        const float f = expf(sm_m[w][g] - M);
        Lsum += sm_l[w][g] * f;
        A += sm_acc[w][g][d] * f;
      }
    }
    if (splits == 1) {
      static_cast<T*>(p.out)[(std::size_t(t) * nh + h) * HD + d] = from_f32<T>(Lsum > 0.0f ? A / Lsum : 0.0f);
    } else {
      const std::size_t row = (std::size_t(i) * nh + h) * splits + split;
      ws[row * HD + d] = A;
      if (d == 0) {
        float* ml = ws + std::size_t(gridDim.z) * nh * splits * HD;
        ml[2 * row] = M;
        ml[2 * row + 1] = Lsum;
      }
    }
  }
}

template <typename T, int HD>
__global__ void decode_combine_kernel(AttentionParams p, const std::int32_t* __restrict__ tok_list, int n, int splits,
                                      const float* __restrict__ ws) {
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

// ---- CUDA kernels: prefill (tensor cores) ---------------------------------------------------

constexpr int BQ = PREFILL_TILE, BK = 64, PF_WARPS = 4;

template <typename T, int HD>
constexpr std::size_t prefill_smem_bytes() {
  return sizeof(T) * (BQ * HD + 2 * BK * HD + BQ * BK) + sizeof(float) * (BQ * BK + BQ * HD);
}

template <typename T, int HD>
__global__ void __launch_bounds__(PF_WARPS * 32)
    prefill_attention_kernel(AttentionParams p, const std::int32_t* __restrict__ tok_list,
                             const std::int32_t* __restrict__ tiles) {
  using namespace nvcuda;
  constexpr int V = VEC<T>;
  extern __shared__ __align__(128) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem);  // [BQ][HD]
  T* sK = sQ + BQ * HD;                // [BK][HD]
  T* sV = sK + BK * HD;                // [BK][HD]
  T* sP = sV + BK * HD;                // [BQ][BK]
  float* sS = reinterpret_cast<float*>(sP + BQ * BK);  // [BQ][BK]
  float* sO = sS + BQ * BK;                             // [BQ][HD]
  __shared__ int s_tok[BQ], s_len[BQ];

  const int tile = blockIdx.x, h = blockIdx.y;
  const int nh = p.n_heads, nkv = p.n_kv_heads, kvh = h / (nh / nkv);
  const int off = tiles[3 * tile], cnt = tiles[3 * tile + 1];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  if (threadIdx.x < BQ) {
    const int t = threadIdx.x < cnt ? tok_list[off + threadIdx.x] : -1;
    s_tok[threadIdx.x] = t;
    s_len[threadIdx.x] = t >= 0 ? p.kv_len[t] : 0;
  }
  for (int idx = threadIdx.x; idx < BQ * HD; idx += blockDim.x) sO[idx] = 0.0f;
  __syncthreads();
  int kv_total = 0;
  for (int r = 0; r < BQ; ++r) kv_total = max(kv_total, s_len[r]);
  const std::int32_t* table = p.block_ids + p.bt_off[s_tok[0]];

  // Q tile, 16-byte vectors; padding rows are zero.
  for (int idx = threadIdx.x; idx < BQ * (HD / V); idx += blockDim.x) {
    const int r = idx / (HD / V), c = (idx % (HD / V)) * V;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (s_tok[r] >= 0)
      v = *reinterpret_cast<const uint4*>(static_cast<const T*>(p.q) + (std::size_t(s_tok[r]) * nh + h) * HD + c);
    *reinterpret_cast<uint4*>(sQ + r * HD + c) = v;
  }

  // Lane pair (2r', 2r'+1) of warp w owns query row r = 16 w + r'; each lane half the columns.
  const int r = warp * 16 + lane / 2, half = lane & 1;
  const int len = s_len[r];
  float m_row = -INFINITY, l_row = 0.0f;
  const std::size_t kv_stride = std::size_t(nkv) * HD;

  for (int k0 = 0; k0 < kv_total; k0 += BK) {
    __syncthreads();  // every warp is done with the previous sK / sV
    for (int idx = threadIdx.x; idx < BK * (HD / V); idx += blockDim.x) {
      const int kr = idx / (HD / V), c = (idx % (HD / V)) * V, j = k0 + kr;
      uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
      if (j < kv_total) {
        const std::int64_t slot = std::int64_t(table[j / p.block_size]) * p.block_size + j % p.block_size;
        const std::size_t a = std::size_t(slot) * kv_stride + std::size_t(kvh) * HD + c;
        kv = *reinterpret_cast<const uint4*>(static_cast<const T*>(p.k_cache) + a);
        vv = *reinterpret_cast<const uint4*>(static_cast<const T*>(p.v_cache) + a);
      }
      *reinterpret_cast<uint4*>(sK + kr * HD + c) = kv;
      *reinterpret_cast<uint4*>(sV + kr * HD + c) = vv;
    }
    __syncthreads();

    // S[16 rows of this warp][BK] = Q K^T
    for (int n = 0; n < BK / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
      wmma::fill_fragment(c, 0.0f);
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
        wmma::load_matrix_sync(a, sQ + warp * 16 * HD + kk * 16, HD);
        wmma::load_matrix_sync(b, sK + n * 16 * HD + kk * 16, HD);
        wmma::mma_sync(c, a, b, c);
      }
      wmma::store_matrix_sync(sS + warp * 16 * BK + n * 16, c, BK, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax of row r over this tile's 64 keys (32 per lane). Rows are BK = 64 floats
    // apart, so column c of every row sits in the same bank: each lane starts at its own
    // column (c = (cc + lane) mod 32) to keep the 32 lanes on 32 different banks.
    float* srow = sS + r * BK + half * 32;
    T* prow = sP + r * BK + half * 32;
    float mx = -INFINITY;
    for (int cc = 0; cc < 32; ++cc) {
      const int c = (cc + lane) & 31;
      const int j = k0 + half * 32 + c;
      const float v = j < len ? srow[c] * p.scale : -INFINITY;
      srow[c] = v;
      mx = fmaxf(mx, v);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    const float m_new = fmaxf(m_row, mx);
    float corr = 1.0f, sum = 0.0f;
    if (m_new != -INFINITY) {
      corr = expf(m_row - m_new);  // 0 when m_row = -inf
      for (int cc = 0; cc < 32; ++cc) {
        const int c = (cc + lane) & 31;
        const T pv = from_f32<T>(expf(srow[c] - m_new));  // exp(-inf) = 0 for masked keys
        prow[c] = pv;
        sum += to_f32(pv);
      }
    } else {
      for (int c = 0; c < 32; ++c) prow[c] = from_f32<T>(0.0f);
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    l_row = l_row * corr + sum;
    m_row = m_new;
    float* orow = sO + r * HD + half * (HD / 2);
    for (int cc = 0; cc < HD / 2; ++cc) orow[(cc + lane) & (HD / 2 - 1)] *= corr;  // same bank rotation
    __syncwarp();

    // O[16 rows][HD] += P V
    for (int n = 0; n < HD / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
      wmma::load_matrix_sync(c, sO + warp * 16 * HD + n * 16, HD, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < BK / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b;
        wmma::load_matrix_sync(a, sP + warp * 16 * BK + kk * 16, BK);
        wmma::load_matrix_sync(b, sV + kk * 16 * HD + n * 16, HD);
        wmma::mma_sync(c, a, b, c);
      }
      wmma::store_matrix_sync(sO + warp * 16 * HD + n * 16, c, HD, wmma::mem_row_major);
    }
    __syncwarp();
  }

  const int t = s_tok[r];
  if (t < 0) return;
  const float inv = l_row > 0.0f ? 1.0f / l_row : 0.0f;
  T* out = static_cast<T*>(p.out) + (std::size_t(t) * nh + h) * HD + half * (HD / 2);
  const float* orow = sO + r * HD + half * (HD / 2);
  for (int cc = 0; cc < HD / 2; ++cc) {
    const int c = (cc + lane) & (HD / 2 - 1);  // bank rotation as above
    out[c] = from_f32<T>(orow[c] * inv);
  }
}

template <typename T>
cudaError_t launch_decode(const AttentionParams& p, const std::int32_t* tok_list, int n, int splits, float* ws,
                          cudaStream_t s) {
  const dim3 grid(splits, p.n_kv_heads, n), block(DEC_WARPS * 32);
  if (p.head_dim == 64) {
    decode_attention_kernel<T, 64><<<grid, block, 0, s>>>(p, tok_list, splits, ws);
    if (splits > 1) decode_combine_kernel<T, 64><<<dim3(p.n_heads, n), 64, 0, s>>>(p, tok_list, n, splits, ws);
  } else {
    decode_attention_kernel<T, 128><<<grid, block, 0, s>>>(p, tok_list, splits, ws);
    if (splits > 1) decode_combine_kernel<T, 128><<<dim3(p.n_heads, n), 128, 0, s>>>(p, tok_list, n, splits, ws);
  }
  return cudaGetLastError();
}

template <typename T, int HD>
cudaError_t launch_prefill_hd(const AttentionParams& p, const std::int32_t* tok_list, const std::int32_t* tiles,
                              int n_tiles, cudaStream_t s) {
  constexpr std::size_t smem = prefill_smem_bytes<T, HD>();
  cudaError_t e = cudaFuncSetAttribute(prefill_attention_kernel<T, HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(smem));
  if (e != cudaSuccess) return e;
  prefill_attention_kernel<T, HD><<<dim3(n_tiles, p.n_heads), PF_WARPS * 32, smem, s>>>(p, tok_list, tiles);
  return cudaGetLastError();
}

bool valid(const AttentionParams& p) {
  return (p.head_dim == 64 || p.head_dim == 128) && p.n_kv_heads > 0 && p.n_heads % p.n_kv_heads == 0 &&
         p.n_heads / p.n_kv_heads <= MAXG && p.block_size > 0;
}

}  // namespace

// ---- kernel launchers ---------------------------------------------------------------------

std::size_t decode_attention_workspace_floats(int n, int n_heads, int head_dim, int splits) noexcept {
  if (splits <= 1) return 0;
  return std::size_t(n) * n_heads * splits * (head_dim + 2);
}

int decode_attention_splits(int n, int n_kv_heads, int n_sms) noexcept {
  const int work = n * n_kv_heads, target = 2 * n_sms;
  if (work <= 0 || work >= target) return 1;
  return std::min(16, (target + work - 1) / work);
}

Status decode_attention(DType dt, const AttentionParams& p, const std::int32_t* tok_list, int n, int splits,
                        float* workspace, void* stream) {
  if (n <= 0) return cudaSuccess;
  if (!valid(p) || splits < 1 || (splits > 1 && !workspace)) return cudaErrorInvalidValue;
  auto s = static_cast<cudaStream_t>(stream);
  return VIREO_DISPATCH_DTYPE(dt, [&] { return launch_decode<T>(p, tok_list, n, splits, workspace, s); });
}

Status prefill_attention(DType dt, const AttentionParams& p, const std::int32_t* tok_list, const std::int32_t* tiles,
                         int n_tiles, void* stream) {
  if (n_tiles <= 0) return cudaSuccess;
  if (!valid(p) || dt == DType::F32) return cudaErrorInvalidValue;  // tensor cores: 16-bit only
  // Q and the K/V tiles are read as 16-byte vectors (rows are HD * 2 bytes, a multiple of 16).
  if (!aligned16(p.q) || !aligned16(p.k_cache) || !aligned16(p.v_cache)) return cudaErrorMisalignedAddress;
  auto s = static_cast<cudaStream_t>(stream);
  if (dt == DType::BF16)
    return p.head_dim == 64 ? launch_prefill_hd<__nv_bfloat16, 64>(p, tok_list, tiles, n_tiles, s)
                            : launch_prefill_hd<__nv_bfloat16, 128>(p, tok_list, tiles, n_tiles, s);
  return p.head_dim == 64 ? launch_prefill_hd<__half, 64>(p, tok_list, tiles, n_tiles, s)
                          : launch_prefill_hd<__half, 128>(p, tok_list, tiles, n_tiles, s);
}

}  // namespace vireo::cuda
