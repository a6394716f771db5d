// Whole-matrix dequantization (the input of a cuBLAS GEMM for steps of more than
// GEMV_MAX_TOKENS tokens) and embedding rows of a quantized table (quant_weights.hpp).
// The [cuda][quant] tests check both against the host reference.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "common.cuh"
#include "cuda_api.hpp"
#include "launch.cuh"
#include "quant_block.cuh"
#include "quant_weights.hpp"

namespace vireo::cuda {
namespace {

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

}  // namespace

Status dequantize_q(DType dt, const QuantView& w, void* out, std::int64_t rows, int cols, void* stream) {
  if (rows == 0) return cudaSuccess;
  if (dt == DType::F32 || rows < 0 || cols <= 0 || cols % 32 || !quant_view_ok(w) || !aligned16(out))
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
  if (dt == DType::F32 || n < 0 || d <= 0 || d % 32 || !quant_view_ok(w)) return cudaErrorInvalidValue;
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
