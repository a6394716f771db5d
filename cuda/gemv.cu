// Decode-time GEMV over 16-bit (and fp32) weights: y[n, rows] = x[n, cols] . W[rows, cols]^T
// for n <= GEMV_MAX_TOKENS tokens, the fused gate/up GEMV + SwiGLU of the Llama FFN, and the
// fused decode variants (gemv_fused). bf16 / fp16 run the tensor-core kernel of gemv_mma.cuh
// (its design notes are there); fp32 keeps the warp-per-row kernels below (16-byte loads, x
// reread per row; fp32 is a test mode), and rows that are not a multiple of the vector width
// or unaligned pointers take the scalar kernels. The quantized-weight launchers are in
// gemv_quant.cu.
#include <algorithm>
#include <type_traits>

#include "common.cuh"
#include "cuda_api.hpp"
#include "gemv_launch.cuh"
#include "gemv_mma.cuh"
#include "launch.cuh"

namespace vireo::cuda {
namespace {

// ---- warp-per-row kernels (fp32, and the scalar fallbacks) ---------------------------------------

constexpr int WARPS_PER_BLOCK = 4;

template <typename T, typename OT, int NB>
__global__ void __launch_bounds__(WARPS_PER_BLOCK * 32)
    gemv_vec_kernel(const T* __restrict__ w, const T* __restrict__ x, OT* __restrict__ y, int rows, int cols) {
  pdl_wait();
  pdl_trigger();
  constexpr int V = VEC<T>;
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * WARPS_PER_BLOCK + (threadIdx.x >> 5);
  if (row >= rows) return;
  const T* wr = w + std::size_t(row) * cols;
  float acc[NB];
#pragma unroll
  for (int b = 0; b < NB; ++b) acc[b] = 0.0f;
#pragma unroll 4
  for (int c = lane * V; c < cols; c += 32 * V) {
    float wv[V];
    load_vec_stream(wr + c, wv);
#pragma unroll
    for (int b = 0; b < NB; ++b) {
      float xv[V];
      load_vec(x + std::size_t(b) * cols + c, xv);
#pragma unroll
      for (int i = 0; i < V; ++i) acc[b] = fmaf(wv[i], xv[i], acc[b]);
    }
  }
#pragma unroll
  for (int b = 0; b < NB; ++b) {
    const float s = warp_sum(acc[b]);
    if (lane == 0) y[std::size_t(b) * rows + row] = from_f32<OT>(s);
  }
}

template <typename T, typename OT>
__global__ void __launch_bounds__(WARPS_PER_BLOCK * 32)
    gemv_scalar_kernel(const T* __restrict__ w, const T* __restrict__ x, OT* __restrict__ y, int n, int rows, int cols) {
  pdl_wait();
  pdl_trigger();
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * WARPS_PER_BLOCK + (threadIdx.x >> 5);
  if (row >= rows) return;
  const T* wr = w + std::size_t(row) * cols;
  for (int b = 0; b < n; ++b) {
    float acc = 0.0f;
    for (int c = lane; c < cols; c += 32) acc = fmaf(to_f32(wr[c]), to_f32(x[std::size_t(b) * cols + c]), acc);
    acc = warp_sum(acc);
    if (lane == 0) y[std::size_t(b) * rows + row] = from_f32<OT>(acc);
  }
}

/// Fused gate/up + SwiGLU without tensor cores (fp32, odd widths, unaligned pointers): one warp
/// per output i, gate row i and up row ff + i of the stacked [2 ff, cols] matrix.
template <typename T>
__global__ void __launch_bounds__(WARPS_PER_BLOCK * 32)
    gemv_swiglu_scalar_kernel(const T* __restrict__ w, const T* __restrict__ x, T* __restrict__ h, int n, int ff,
                              int cols) {
  pdl_wait();
  pdl_trigger();
  const int lane = threadIdx.x & 31;
  const int i = blockIdx.x * WARPS_PER_BLOCK + (threadIdx.x >> 5);
  if (i >= ff) return;
  const T* wg = w + std::size_t(i) * cols;
  const T* wu = w + (std::size_t(ff) + i) * cols;
  for (int b = 0; b < n; ++b) {
    const T* xb = x + std::size_t(b) * cols;
    float gs = 0.0f, us = 0.0f;
    for (int c = lane; c < cols; c += 32) {
      const float xv = to_f32(xb[c]);
      gs = fmaf(to_f32(wg[c]), xv, gs);
      us = fmaf(to_f32(wu[c]), xv, us);
    }
    gs = warp_sum(gs);
    us = warp_sum(us);
    if (lane == 0) {
      const float gv = to_f32(from_f32<T>(gs)), uv = to_f32(from_f32<T>(us));
      h[std::size_t(b) * ff + i] = from_f32<T>(gv / (1.0f + expf(-gv)) * uv);
    }
  }
}

template <typename T, typename OT>
cudaError_t launch(const T* w, const T* x, OT* y, int n, int rows, int cols, cudaStream_t s) {
  if constexpr (kTensorCore<T>) {
    if (mma_ok(w, x, cols)) {
      return cuda::launch(gemv_mma_kernel<T, OT, kStore, false>, dim3((rows + 15) / 16), dim3(MMA_WARPS * 32), 0,
                          s, w, x, y, n, rows, cols, with_prefetch(GemvExtras{}));
    }
  }
  const dim3 grid((rows + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK), block(WARPS_PER_BLOCK * 32);
  const bool vec = cols % VEC<T> == 0 && aligned16(w) && aligned16(x);
  if (!vec) {
    return cuda::launch(gemv_scalar_kernel<T, OT>, grid, block, 0, s, w, x, y, n, rows, cols);
  }
  switch (n) {
#define VIREO_GEMV_CASE(NB) \
  case NB: return cuda::launch(gemv_vec_kernel<T, OT, NB>, grid, block, 0, s, w, x, y, rows, cols);
    VIREO_GEMV_CASE(1)
    VIREO_GEMV_CASE(2)
    VIREO_GEMV_CASE(3)
    VIREO_GEMV_CASE(4)
    VIREO_GEMV_CASE(5)
    VIREO_GEMV_CASE(6)
    VIREO_GEMV_CASE(7)
    VIREO_GEMV_CASE(8)
#undef VIREO_GEMV_CASE
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_swiglu(const T* w, const T* x, T* h, int n, int ff, int cols, cudaStream_t s) {
  if constexpr (kTensorCore<T>) {
    if (mma_ok(w, x, cols)) {
      return cuda::launch(gemv_mma_kernel<T, T, kSwiglu, false>, dim3((ff + 7) / 8), dim3(MMA_WARPS * 32), 0, s,
                          w, x, h, n, ff, cols, with_prefetch(GemvExtras{}));
    }
  }
  return cuda::launch(gemv_swiglu_scalar_kernel<T>, dim3((ff + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK),
                      dim3(WARPS_PER_BLOCK * 32), 0, s, w, x, h, n, ff, cols);
}


}  // namespace

// ---- kernel launchers ----------------------------------------------------------------------

Status gemv(DType dt, const void* w, const void* x, void* y, bool y_f32, int n, int rows, int cols, void* stream) {
  if (n == 0 || rows == 0) return cudaSuccess;
  if (n < 0 || n > GEMV_MAX_TOKENS || rows < 0 || cols <= 0) return cudaErrorInvalidValue;
  auto s = static_cast<cudaStream_t>(stream);
  return VIREO_DISPATCH_DTYPE(dt, [&] {
    if (y_f32) return launch<T, float>(static_cast<const T*>(w), static_cast<const T*>(x), static_cast<float*>(y), n, rows, cols, s);
    return launch<T, T>(static_cast<const T*>(w), static_cast<const T*>(x), static_cast<T*>(y), n, rows, cols, s);
  });
}

Status gemv_swiglu(DType dt, const void* w_gu, const void* x, void* h, int n, int ff, int cols, void* stream) {
  if (n == 0 || ff == 0) return cudaSuccess;
  if (n < 0 || n > GEMV_MAX_TOKENS || ff < 0 || cols <= 0) return cudaErrorInvalidValue;
  auto s = static_cast<cudaStream_t>(stream);
  return VIREO_DISPATCH_DTYPE(dt, [&] {
    return launch_swiglu<T>(static_cast<const T*>(w_gu), static_cast<const T*>(x), static_cast<T*>(h), n, ff, cols, s);
  });
}

int gemv_slice_prefetch_chunks(int rows, int cols, std::size_t l2_bytes) noexcept {
  // 16-row tiles; a warp's chunk is 16 rows x CHUNK_COLS 16-bit weights.
  constexpr std::size_t kChunkBytes = 16 * CHUNK_COLS * 2;
  const int ctas = std::max(1, std::min((rows + 15) / 16, first_wave_ctas()));
  const int per_warp = (cols + CHUNK_COLS * MMA_WARPS - 1) / (CHUNK_COLS * MMA_WARPS);
  const int budget = int(l2_bytes / (std::size_t(ctas) * MMA_WARPS * kChunkBytes));
  return std::max(1, std::min(per_warp, budget));
}

bool gemv_fused_supported(DType dt, int n, int cols, bool norm) noexcept {
  if (dt == DType::F32 || n < 1 || n > GEMV_MAX_TOKENS || cols <= 0 || cols % 8) return false;
  return !norm || std::size_t(n) * cols * dtype_size(dt) <= kGemvNormSmemBytes;
}

Status gemv_fused(DType dt, GemvEpilogue epi, bool norm, const void* w, const void* x, void* y, int n, int rows,
                  int cols, const GemvExtras& ex, void* stream) {
  if (rows <= 0) return cudaSuccess;
  if (const cudaError_t e = fused_args_ok(dt, epi, norm, x, n, rows, cols, ex); e != cudaSuccess) return e;
  if (!aligned16(w)) return cudaErrorNotSupported;
  auto s = static_cast<cudaStream_t>(stream);
  return dispatch_fused(dt, epi, [&](auto tag, auto ec) -> cudaError_t {
    using T = decltype(tag);
    return launch_fused_e<T, decltype(ec)::value>(norm, static_cast<const T*>(w), static_cast<const T*>(x), y, n, rows,
                                                  cols, ex, s);
  });
}

}  // namespace vireo::cuda
