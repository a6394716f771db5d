// Element-wise and per-row kernels of the Llama block: token embedding gather, fused residual
// add + RMSNorm, SwiGLU, and bias + RoPE + paged K/V write.
//
// The residual stream stays fp32 on the device ([T, d]); matmul outputs (deltas) and norm
// outputs are in T. RMSNorm uses one CTA per row. When cols % 4 == 0, cols <= 16384 and the
// pointers are 16-byte aligned (every model shape), the row is held in registers: each thread
// issues all its loads at once (<= 4 float4 of the residual, the matching 4-element vectors of
// delta and float4 of the norm weight), adds the delta, writes the residual back, reduces
// sum(h^2) over the CTA (fp32) and scales from registers: one DRAM round trip and one block
// reduction, 256 threads for d = 4096 (a two-pass kernel of 1024 scalar threads rereading h
// was slower; it stays as the fallback for other shapes). RoPE rotates adjacent pairs (x[2i], x[2i+1]) by pos * inv_freq[i] with the angle,
// cos and sin in double like the CPU reference, so fp32 mode matches it to rounding.
#include <algorithm>

#include "common.cuh"
#include "cuda_api.hpp"
#include "launch.cuh"

namespace vireo::cuda {
namespace {

// ---- CUDA kernels -------------------------------------------------------------------------

template <typename T>
__global__ void embed_kernel(const T* __restrict__ table, const std::int32_t* __restrict__ tokens,
                             float* __restrict__ resid, int d) {
  pdl_wait();
  pdl_trigger();
  const int t = blockIdx.x;
  const T* row = table + std::size_t(tokens[t]) * d;
  float* out = resid + std::size_t(t) * d;
  // The first kernel of a step, so its latency is the step's: 16-bit rows move as 16-byte
  // vectors (2 per thread at d = 4096, all loads issued at once) instead of one 2-byte load
  // per iteration.
  if constexpr (sizeof(T) == 2) {
    if (d % 8 == 0 && aligned16(row) && aligned16(out)) {
#pragma unroll 4
      for (int i = threadIdx.x; i < d / 8; i += blockDim.x) {
        const uint4 v = __ldg(reinterpret_cast<const uint4*>(row) + i);
        const T* e = reinterpret_cast<const T*>(&v);
        reinterpret_cast<float4*>(out)[2 * i] = make_float4(to_f32(e[0]), to_f32(e[1]), to_f32(e[2]), to_f32(e[3]));
        reinterpret_cast<float4*>(out)[2 * i + 1] = make_float4(to_f32(e[4]), to_f32(e[5]), to_f32(e[6]), to_f32(e[7]));
      }
      return;
    }
  }
#pragma unroll 4
  for (int i = threadIdx.x; i < d; i += blockDim.x) out[i] = to_f32(row[i]);
}

template <typename T>
__global__ void rmsnorm_kernel(const T* __restrict__ delta, float* __restrict__ resid, const float* __restrict__ w,
                               T* __restrict__ y, const std::int32_t* __restrict__ row_idx, int cols, float eps) {
  pdl_wait();
  pdl_trigger();
  const int r = blockIdx.x;
  const std::size_t src = std::size_t(row_idx ? row_idx[r] : r) * cols;
  float* h = resid + src;
  const bool write_back = delta && !row_idx;  // gathered rows may repeat: never write them
  float ss = 0.0f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    float v = h[i];
    if (delta) v += to_f32(delta[src + i]);
    if (write_back) h[i] = v;
    ss += v * v;
  }
  ss = block_sum(ss);
  const float scale = rsqrtf(ss / float(cols) + eps);
  T* out = y + std::size_t(r) * cols;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    float v = h[i];
    if (delta && !write_back) v += to_f32(delta[src + i]);
    out[i] = from_f32<T>(v * scale * w[i]);
  }
}

/// Four consecutive elements of T, loaded / stored as one 8-byte (16-bit T) or 16-byte access.
template <typename T>
struct alignas(4 * sizeof(T)) Vec4 {
  T v[4];
};

constexpr int NORM_VPT = 4;  // float4 vectors of the row per thread, held in registers

/// Register-resident RMSNorm, same semantics as rmsnorm_kernel; cols % 4 == 0 and
/// cols <= 4 * NORM_VPT * blockDim.x. Vector k of thread t is float4 index t + k * blockDim.x
/// of the row (coalesced).
template <typename T>
__global__ void __launch_bounds__(1024)
    rmsnorm_reg_kernel(const T* __restrict__ delta, float* __restrict__ resid, const float* __restrict__ w,
                       T* __restrict__ y, const std::int32_t* __restrict__ row_idx, int cols, float eps) {
  pdl_wait();
  pdl_trigger();
  const int r = blockIdx.x, nv = cols / 4;
  const std::size_t src = std::size_t(row_idx ? row_idx[r] : r) * cols;
  float4* h4 = reinterpret_cast<float4*>(resid + src);
  const float4* w4 = reinterpret_cast<const float4*>(w);
  const Vec4<T>* d4 = delta ? reinterpret_cast<const Vec4<T>*>(delta + src) : nullptr;
  const bool write_back = delta && !row_idx;  // gathered rows may repeat: never write them
  float4 h[NORM_VPT], wv[NORM_VPT];
  Vec4<T> dv[NORM_VPT];
  // Every load first, so the thread has all of them in flight at once.
#pragma unroll
  for (int k = 0; k < NORM_VPT; ++k) {
    const int i = threadIdx.x + k * blockDim.x;
    if (i < nv) {
      h[k] = h4[i];
      wv[k] = __ldg(w4 + i);
      if (d4) dv[k] = d4[i];
    }
  }
  float ss = 0.0f;
#pragma unroll
  for (int k = 0; k < NORM_VPT; ++k) {
    const int i = threadIdx.x + k * blockDim.x;
    if (i >= nv) continue;
    if (d4) {
      h[k].x += to_f32(dv[k].v[0]);
      h[k].y += to_f32(dv[k].v[1]);
      h[k].z += to_f32(dv[k].v[2]);
      h[k].w += to_f32(dv[k].v[3]);
      if (write_back) h4[i] = h[k];
    }
    ss += h[k].x * h[k].x + h[k].y * h[k].y + h[k].z * h[k].z + h[k].w * h[k].w;
  }
  ss = block_sum(ss);
  const float scale = rsqrtf(ss / float(cols) + eps);
  Vec4<T>* out = reinterpret_cast<Vec4<T>*>(y + std::size_t(r) * cols);
#pragma unroll
  for (int k = 0; k < NORM_VPT; ++k) {
    const int i = threadIdx.x + k * blockDim.x;
    if (i >= nv) continue;
    Vec4<T> o;
    o.v[0] = from_f32<T>(h[k].x * scale * wv[k].x);
    o.v[1] = from_f32<T>(h[k].y * scale * wv[k].y);
    o.v[2] = from_f32<T>(h[k].z * scale * wv[k].z);
    o.v[3] = from_f32<T>(h[k].w * scale * wv[k].w);
    out[i] = o;
  }
}

template <typename T>
__global__ void swiglu_kernel(const T* __restrict__ gu, T* __restrict__ out, int rows, int ff) {
  pdl_wait();
  pdl_trigger();
  const std::size_t n = std::size_t(rows) * ff;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t r = i / ff, c = i % ff;
    const float g = to_f32(gu[r * 2 * ff + c]);
    const float u = to_f32(gu[r * 2 * ff + ff + c]);
    out[i] = from_f32<T>(g / (1.0f + expf(-g)) * u);
  }
}

// One CTA per token. Work items: (nh + nkv) * hd/2 rotation pairs, then nkv * hd V copies.
constexpr int ROPE_HEADS = 8;  // heads per CTA

/// Grid (tokens, ceil((nh + 2 nkv) / ROPE_HEADS)), 128 threads. The CTA first computes the
/// rotation of every pair index i < hd/2 for its token once (double-precision sincos of
/// pos * inv_freq, exactly as the CPU reference, which shares it across heads), then rotates
/// pair i of each of its q/k heads and copies its v heads (with their bias) into the cache.
/// (One CTA per token redoing the sincos for every head, or one CTA per (token, head) with
/// its redundant sincos, measured slower at batch 1 and in long prefills respectively.)
template <typename T>
__global__ void __launch_bounds__(128) rope_kv_kernel(RopeKVParams p) {
  __shared__ float s_cos[1024], s_sin[1024];
  pdl_wait();
  pdl_trigger();
  const int t = blockIdx.x;
  const int hd = p.head_dim, half = hd / 2, nh = p.n_heads, nkv = p.n_kv_heads;
  const int width = (nh + 2 * nkv) * hd;
  const T* row = static_cast<const T*>(p.qkv) + std::size_t(t) * width;
  const std::int64_t slot = p.slots[t];
  const double pos = double(p.positions[t]);
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    double sn, cs;
    sincos(pos * double(p.inv_freq[i]), &sn, &cs);
    s_cos[i] = float(cs);
    s_sin[i] = float(sn);
  }
  __syncthreads();
  const int h0 = blockIdx.y * ROPE_HEADS, h1 = min(nh + 2 * nkv, h0 + ROPE_HEADS);
  const bool kv8 = p.k_scale != nullptr;
  // int8 K/V: the pair loop does the q heads only; the K / V rows are quantized below.
  const int h1_pairs = kv8 ? min(h1, nh) : h1;
  for (int j = threadIdx.x; j < (h1_pairs - h0) * half; j += blockDim.x) {
    const int head = h0 + j / half, i = j % half;
    const int col = head * hd + 2 * i;  // q heads, then k heads, then v heads: contiguous in qkv
    float x0 = to_f32(row[col]), x1 = to_f32(row[col + 1]);
    if (p.bias) {
      x0 += p.bias[col];
      x1 += p.bias[col + 1];
    }
    T* out;
    if (head >= nh + nkv) {  // v: copied into the cache
      if (slot < 0) continue;
      out = static_cast<T*>(p.v_cache) + std::size_t(slot) * nkv * hd + (col - (nh + nkv) * hd);
    } else {
      const float cf = s_cos[i], sf = s_sin[i];
      const float y0 = x0 * cf - x1 * sf, y1 = x0 * sf + x1 * cf;
      x0 = y0;
      x1 = y1;
      if (head < nh) {
        out = static_cast<T*>(p.q_out) + std::size_t(t) * nh * hd + col;
      } else {
        if (slot < 0) continue;
        out = static_cast<T*>(p.k_cache) + std::size_t(slot) * nkv * hd + (col - nh * hd);
      }
    }
    out[0] = from_f32<T>(x0);
    out[1] = from_f32<T>(x1);
  }
  if (!kv8 || slot < 0) return;
  // One warp per K / V head row of this CTA: lane l holds elements E l .. E l + E - 1 (E = hd
  // / 32, whole rotation pairs), the row's max |x| is a warp reduction.
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, E = hd / 32;
  for (int head = max(h0, nh) + warp; head < h1; head += int(blockDim.x >> 5)) {
    const bool is_v = head >= nh + nkv;
    const int kvh = head - (is_v ? nh + nkv : nh), c0 = lane * E;
    float x[4];
    bool finite = true;
    float amax = 0.0f;
#pragma unroll
    for (int e = 0; e < 4; e += 2) {
      if (e >= E) break;
      const int col = head * hd + c0 + e;
      float x0 = to_f32(row[col]), x1 = to_f32(row[col + 1]);
      if (p.bias) {
        x0 += p.bias[col];
        x1 += p.bias[col + 1];
      }
      if (!is_v) {
        const int i = (c0 + e) / 2;
        const float cf = s_cos[i], sf = s_sin[i];
        const float y0 = x0 * cf - x1 * sf, y1 = x0 * sf + x1 * cf;
        x0 = y0;
        x1 = y1;
      }
      x[e] = x0;
      x[e + 1] = x1;
      finite = finite && isfinite(x0) && isfinite(x1);
      amax = fmaxf(amax, fmaxf(fabsf(x0), fabsf(x1)));
    }
    finite = __all_sync(0xffffffffu, finite);
    amax = warp_max(amax);
    const std::size_t r = std::size_t(slot) * nkv + kvh;
    std::int8_t* q = static_cast<std::int8_t*>(is_v ? p.v_cache : p.k_cache) + r * hd + c0;
    float scale = 0.0f, inv = 0.0f;
    if (!finite) {
      scale = __int_as_float(0x7fc00000);  // NaN: keep the damage visible
    } else if (amax >= 1e-30f) {
      scale = amax / 127.0f;
      inv = 127.0f / amax;
    }
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      if (e >= E) break;
      q[e] = std::int8_t(inv == 0.0f ? 0 : __float2int_rn(fminf(fmaxf(x[e] * inv, -127.0f), 127.0f)));
    }
    if (lane == 0) (is_v ? p.v_scale : p.k_scale)[r] = scale;
  }
}

}  // namespace

// ---- kernel launchers ---------------------------------------------------------------------

Status embed(DType dt, const void* table, const std::int32_t* tokens, float* resid, int n, int d, void* stream) {
  if (n <= 0) return cudaSuccess;
  if (d <= 0) return cudaErrorInvalidValue;
  return VIREO_DISPATCH_DTYPE(dt, [&] {
    return cuda::launch(embed_kernel<T>, dim3(n), dim3(256), 0, static_cast<cudaStream_t>(stream),
                        static_cast<const T*>(table), tokens, resid, d);
  });
}

Status rmsnorm(DType dt, const void* delta, float* resid, const float* w, void* y, const std::int32_t* row_idx,
               int rows, int cols, float eps, void* stream) {
  if (rows <= 0) return cudaSuccess;
  if (cols <= 0) return cudaErrorInvalidValue;
  // Register path: ceil(cols / 4 / NORM_VPT) threads rounded up to whole warps (256 for 4096).
  const int nv = cols / 4, reg_threads = std::max(32, ((nv + NORM_VPT - 1) / NORM_VPT + 31) / 32 * 32);
  const bool reg = cols % 4 == 0 && reg_threads <= 1024 && aligned16(resid) && aligned16(w) && aligned16(y) &&
                   (!delta || aligned16(delta));
  const int threads = cols >= 1024 ? 1024 : ((cols + 31) / 32) * 32;
  return VIREO_DISPATCH_DTYPE(dt, [&] {
    if (reg) {
      return cuda::launch(rmsnorm_reg_kernel<T>, dim3(rows), dim3(reg_threads), 0, static_cast<cudaStream_t>(stream),
                          static_cast<const T*>(delta), resid, w, static_cast<T*>(y), row_idx, cols, eps);
    }
    return cuda::launch(rmsnorm_kernel<T>, dim3(rows), dim3(threads), 0, static_cast<cudaStream_t>(stream),
                        static_cast<const T*>(delta), resid, w, static_cast<T*>(y), row_idx, cols, eps);
  });
}

Status swiglu(DType dt, const void* gu, void* out, int rows, int ff, void* stream) {
  if (rows <= 0) return cudaSuccess;
  if (ff <= 0) return cudaErrorInvalidValue;
  const std::size_t n = std::size_t(rows) * ff;
  const int blocks = int(std::min<std::size_t>((n + 255) / 256, 65535));
  return VIREO_DISPATCH_DTYPE(dt, [&] {
    return cuda::launch(swiglu_kernel<T>, dim3(blocks), dim3(256), 0, static_cast<cudaStream_t>(stream),
                        static_cast<const T*>(gu), static_cast<T*>(out), rows, ff);
  });
}

Status rope_kv(DType dt, const RopeKVParams& p, void* stream) {
  if (p.n <= 0) return cudaSuccess;
  if (p.head_dim <= 0 || p.head_dim % 2 || p.head_dim > 2048 || p.n_heads <= 0 || p.n_kv_heads <= 0)
    return cudaErrorInvalidValue;
  if ((p.k_scale || p.v_scale) && (!p.k_scale || !p.v_scale || (p.head_dim != 64 && p.head_dim != 128)))
    return cudaErrorInvalidValue;  // int8 K/V: whole rotation pairs per lane, <= 4 elements
  return VIREO_DISPATCH_DTYPE(dt, [&] {
    const int groups = (p.n_heads + 2 * p.n_kv_heads + ROPE_HEADS - 1) / ROPE_HEADS;
    return cuda::launch(rope_kv_kernel<T>, dim3(p.n, groups), dim3(128), 0, static_cast<cudaStream_t>(stream), p);
  });
}

}  // namespace vireo::cuda
