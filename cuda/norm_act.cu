// Element-wise and per-row kernels of the Llama block: token embedding gather, fused residual
// add + RMSNorm, SwiGLU, and bias + RoPE + paged K/V write.
//
// The residual stream stays fp32 on the device ([T, d]); matmul outputs (deltas) and norm
// outputs are in T. RMSNorm uses one CTA per row: pass 1 adds the delta, writes the residual
// back and reduces sum(h^2) (fp32, block reduction); pass 2 rereads h (L1/L2-resident) and
// scales. RoPE rotates adjacent pairs (x[2i], x[2i+1]) by pos * inv_freq[i] with the angle,
// cos and sin in double like the CPU reference, so fp32 mode matches it to rounding.
#include <algorithm>

#include "common.cuh"
#include "cuda_api.hpp"

namespace vireo::cuda {
namespace {

// ---- CUDA kernels -------------------------------------------------------------------------

template <typename T>
__global__ void embed_kernel(const T* __restrict__ table, const std::int32_t* __restrict__ tokens,
                             float* __restrict__ resid, int d) {
  const int t = blockIdx.x;
  const T* row = table + std::size_t(tokens[t]) * d;
  float* out = resid + std::size_t(t) * d;
  for (int i = threadIdx.x; i < d; i += blockDim.x) out[i] = to_f32(row[i]);
}

template <typename T>
__global__ void rmsnorm_kernel(const T* __restrict__ delta, float* __restrict__ resid, const float* __restrict__ w,
                               T* __restrict__ y, const std::int32_t* __restrict__ row_idx, int cols, float eps) {
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

template <typename T>
__global__ void swiglu_kernel(const T* __restrict__ gu, T* __restrict__ out, int rows, int ff) {
  const std::size_t n = std::size_t(rows) * ff;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t r = i / ff, c = i % ff;
    const float g = to_f32(gu[r * 2 * ff + c]);
    const float u = to_f32(gu[r * 2 * ff + ff + c]);
    out[i] = from_f32<T>(g / (1.0f + expf(-g)) * u);
  }
}

// One CTA per token. Work items: (nh + nkv) * hd/2 rotation pairs, then nkv * hd V copies.
template <typename T>
__global__ void rope_kv_kernel(RopeKVParams p) {
  const int t = blockIdx.x;
  const int hd = p.head_dim, half = hd / 2, nh = p.n_heads, nkv = p.n_kv_heads;
  const int width = (nh + 2 * nkv) * hd;
  const T* row = static_cast<const T*>(p.qkv) + std::size_t(t) * width;
  const std::int64_t slot = p.slots[t];
  const double pos = double(p.positions[t]);
  T* q_out = static_cast<T*>(p.q_out) + std::size_t(t) * nh * hd;
  T* k_out = slot >= 0 ? static_cast<T*>(p.k_cache) + std::size_t(slot) * nkv * hd : nullptr;
  T* v_out = slot >= 0 ? static_cast<T*>(p.v_cache) + std::size_t(slot) * nkv * hd : nullptr;
  const int n_pairs = (nh + nkv) * half;
  for (int j = threadIdx.x; j < n_pairs; j += blockDim.x) {
    const int head = j / half, i = j % half;
    const int col = head * hd + 2 * i;  // q heads first, then k heads: contiguous in qkv
    float x0 = to_f32(row[col]), x1 = to_f32(row[col + 1]);
    if (p.bias) {
      x0 += p.bias[col];
      x1 += p.bias[col + 1];
    }
    double s, c;
    sincos(pos * double(p.inv_freq[i]), &s, &c);
    const float cf = float(c), sf = float(s);
    const float y0 = x0 * cf - x1 * sf, y1 = x0 * sf + x1 * cf;
    if (head < nh) {
      q_out[col] = from_f32<T>(y0);
      q_out[col + 1] = from_f32<T>(y1);
    } else if (k_out) {
      const int kc = col - nh * hd;
      k_out[kc] = from_f32<T>(y0);
      k_out[kc + 1] = from_f32<T>(y1);
    }
  }
  if (!v_out) return;
  const int v0 = (nh + nkv) * hd;
  for (int j = threadIdx.x; j < nkv * hd; j += blockDim.x) {
    float v = to_f32(row[v0 + j]);
    if (p.bias) v += p.bias[v0 + j];
    v_out[j] = from_f32<T>(v);
  }
}

}  // namespace

// ---- kernel launchers ---------------------------------------------------------------------

Status embed(DType dt, const void* table, const std::int32_t* tokens, float* resid, int n, int d, void* stream) {
  if (n <= 0) return cudaSuccess;
  if (d <= 0) return cudaErrorInvalidValue;
  return VIREO_DISPATCH_DTYPE(dt, [&] {
    embed_kernel<T><<<n, 256, 0, static_cast<cudaStream_t>(stream)>>>(static_cast<const T*>(table), tokens, resid, d);
    return cudaGetLastError();
  });
}

Status rmsnorm(DType dt, const void* delta, float* resid, const float* w, void* y, const std::int32_t* row_idx,
               int rows, int cols, float eps, void* stream) {
  if (rows <= 0) return cudaSuccess;
  if (cols <= 0) return cudaErrorInvalidValue;
  const int threads = cols >= 1024 ? 1024 : ((cols + 31) / 32) * 32;
  return VIREO_DISPATCH_DTYPE(dt, [&] {
    rmsnorm_kernel<T><<<rows, threads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const T*>(delta), resid, w, static_cast<T*>(y), row_idx, cols, eps);
    return cudaGetLastError();
  });
}

Status swiglu(DType dt, const void* gu, void* out, int rows, int ff, void* stream) {
  if (rows <= 0) return cudaSuccess;
  if (ff <= 0) return cudaErrorInvalidValue;
  const std::size_t n = std::size_t(rows) * ff;
  const int blocks = int(std::min<std::size_t>((n + 255) / 256, 65535));
  return VIREO_DISPATCH_DTYPE(dt, [&] {
    swiglu_kernel<T><<<blocks, 256, 0, static_cast<cudaStream_t>(stream)>>>(static_cast<const T*>(gu),
                                                                            static_cast<T*>(out), rows, ff);
    return cudaGetLastError();
  });
}

Status rope_kv(DType dt, const RopeKVParams& p, void* stream) {
  if (p.n <= 0) return cudaSuccess;
  if (p.head_dim <= 0 || p.head_dim % 2 || p.n_heads <= 0 || p.n_kv_heads <= 0) return cudaErrorInvalidValue;
  return VIREO_DISPATCH_DTYPE(dt, [&] {
    rope_kv_kernel<T><<<p.n, 256, 0, static_cast<cudaStream_t>(stream)>>>(p);
    return cudaGetLastError();
  });
}

}  // namespace vireo::cuda
