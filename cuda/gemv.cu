// Decode-time GEMV: y[n, rows] = x[n, cols] . W[rows, cols]^T for n <= GEMV_MAX_TOKENS tokens.
//
// Decode is memory-bound: the whole cost is streaming W once. One warp owns one output row
// and walks it with 16-byte loads (8 bf16 / 8 fp16 / 4 fp32 per lane per step, a 512-byte
// coalesced segment per warp), unrolled so several loads are in flight; the NB token vectors
// are reused from L1/L2 for every row, so W is read exactly once for the whole batch. Each
// lane keeps NB fp32 partial sums, reduced with warp shuffles at the end. Rows that are not
// a multiple of the vector width (or unaligned pointers) take the scalar kernel.
#include "common.cuh"
#include "cuda_api.hpp"

namespace vireo::cuda {
namespace {

constexpr int WARPS_PER_BLOCK = 4;

template <typename T, typename OT, int NB>
__global__ void __launch_bounds__(WARPS_PER_BLOCK * 32)
    gemv_vec_kernel(const T* __restrict__ w, const T* __restrict__ x, OT* __restrict__ y, int rows, int cols) {
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

template <typename T, typename OT>
cudaError_t launch(const T* w, const T* x, OT* y, int n, int rows, int cols, cudaStream_t s) {
  const dim3 grid((rows + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK), block(WARPS_PER_BLOCK * 32);
  const bool vec = cols % VEC<T> == 0 && aligned16(w) && aligned16(x);
  if (!vec) {
    gemv_scalar_kernel<T, OT><<<grid, block, 0, s>>>(w, x, y, n, rows, cols);
    return cudaGetLastError();
  }
  switch (n) {
#define VIREO_GEMV_CASE(NB) \
  case NB: gemv_vec_kernel<T, OT, NB><<<grid, block, 0, s>>>(w, x, y, rows, cols); break;
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

}  // namespace

// ---- kernel launcher ----------------------------------------------------------------------

Status gemv(DType dt, const void* w, const void* x, void* y, bool y_f32, int n, int rows, int cols, void* stream) {
  if (n == 0 || rows == 0) return cudaSuccess;
  if (n < 0 || n > GEMV_MAX_TOKENS || rows < 0 || cols <= 0) return cudaErrorInvalidValue;
  auto s = static_cast<cudaStream_t>(stream);
  return VIREO_DISPATCH_DTYPE(dt, [&] {
    if (y_f32) return launch<T, float>(static_cast<const T*>(w), static_cast<const T*>(x), static_cast<float*>(y), n, rows, cols, s);
    return launch<T, T>(static_cast<const T*>(w), static_cast<const T*>(x), static_cast<T*>(y), n, rows, cols, s);
  });
}

}  // namespace vireo::cuda
