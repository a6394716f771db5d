// Shared device helpers for the CUDA kernels (nvcc only): element types and their fp32
// conversions, 16-byte vector loads, warp/block reductions, and the dtype dispatch that
// turns vireo::DType into a compile-time element type.
//
// Every kernel stores activations and weights in T (float, __half or __nv_bfloat16) and
// accumulates in fp32. A 16-byte load (uint4) carries VEC<T> = 16 / sizeof(T) elements.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "vireo/types.hpp"

namespace vireo::cuda {

template <typename T>
__device__ __forceinline__ float to_f32(T v);
template <>
__device__ __forceinline__ float to_f32<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_f32<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

/// Elements per 16-byte vector.
template <typename T>
inline constexpr int VEC = 16 / int(sizeof(T));

/// Load 16 bytes at p (16-byte aligned) and widen the VEC<T> elements to fp32.
template <typename T>
__device__ __forceinline__ void load_vec(const T* p, float (&out)[VEC<T>]) {
  uint4 raw = __ldg(reinterpret_cast<const uint4*>(p));
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < VEC<T>; ++i) out[i] = to_f32(e[i]);
}

/// Streaming variant for data read once (weights): bypass L1 allocation.
template <typename T>
__device__ __forceinline__ void load_vec_stream(const T* p, float (&out)[VEC<T>]) {
  uint4 raw = __ldcs(reinterpret_cast<const uint4*>(p));
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < VEC<T>; ++i) out[i] = to_f32(e[i]);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // partial[] may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < n_warps ? partial[lane] : 0.0f;
  return warp_sum(v);
}

__host__ __device__ inline bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

/// The GPU's global nanosecond timer (%globaltimer), for diagnostic kernels that spin or
/// time themselves (pdl_probe.cu).
__device__ __forceinline__ std::uint64_t global_ns() {
  std::uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

}  // namespace vireo::cuda

/// Run `body` with `T` bound to the element type of `dtype` (a vireo::DType).
#define VIREO_DISPATCH_DTYPE(dtype, ...)                  \
  [&]() -> cudaError_t {                                  \
    switch (dtype) {                                      \
      case ::vireo::DType::F32: {                         \
        using T = float;                                  \
        return __VA_ARGS__();                             \
      }                                                   \
      case ::vireo::DType::F16: {                         \
        using T = __half;                                 \
        return __VA_ARGS__();                             \
      }                                                   \
      case ::vireo::DType::BF16: {                        \
        using T = __nv_bfloat16;                          \
        return __VA_ARGS__();                             \
      }                                                   \
    }                                                     \
    return cudaErrorInvalidValue;                         \
  }()
