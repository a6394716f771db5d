// Launch helpers of the tensor-core decode GEMV (gemv_mma.cuh), shared by gemv.cu and
// gemv_quant.cu: the first wave's size, the prefetch and depth choices, the shared-memory
// opt-in of the NORM variants, the launch of every fused variant, and the dtype / epilogue
// dispatch (nvcc only; an anonymous namespace, like gemv_mma.cuh).
#pragma once
#include <algorithm>
#include <type_traits>

#include "gemv_mma.cuh"
#include "launch.cuh"

namespace vireo::cuda {
namespace {

/// Streaming multiprocessors of the current device; 0 when it cannot be queried.
int sm_count() noexcept {
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) == cudaSuccess && cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess)
    return sms;
  return 0;
}

/// CTAs of gemv_mma_kernel's first wave on the current device (3 per SM, its occupancy);
/// 1 << 30 when the device cannot be queried.
int first_wave_ctas() noexcept {
  const int sms = sm_count();
  return sms > 0 ? 3 * sms : 1 << 30;
}

/// Chunks in flight per warp for a 16-bit Add GEMV of `tiles` 16-row tiles: 2 when asked for
/// (GemvExtras::depth) and the grid has at most 2 CTAs per SM, the deeper kernel's occupancy.
int gemv_depth(const GemvExtras& ex, int tiles) {
  const int sms = sm_count();
  return ex.depth == 2 && sms > 0 && tiles <= 2 * sms ? 2 : 1;
}

/// GemvExtras with the prefetch depth (one chunk per warp unless the caller set one) and the
/// first wave's size filled in.
GemvExtras with_prefetch(GemvExtras ex) {
  if (ex.prefetch_chunks < 0) ex.prefetch_chunks = 1;
  ex.prefetch_ctas = first_wave_ctas();
  return ex;
}

template <typename T>
constexpr bool kTensorCore = sizeof(T) == 2;

template <typename T>
bool mma_ok(const T* w, const T* x, int cols) {
  return kTensorCore<T> && cols % 8 == 0 && aligned16(w) && aligned16(x);
}

template <typename T, int WF>
using GemvW = std::conditional_t<WF == 0, const T*, QuantView>;

/// The normalized input of a NORM kernel may exceed the 48 KiB a launch gets without opting in.
/// The opt-in is per device and function; it is not a stream operation, but it is made outside
/// stream capture only (a bucket's first, eager step always precedes its capture).
template <typename Kernel>
cudaError_t opt_in_norm_smem(Kernel kernel, cudaStream_t s) {
  cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
  if (const cudaError_t e = cudaStreamIsCapturing(s, &cs); e != cudaSuccess) return e;
  if (cs != cudaStreamCaptureStatusNone) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kGemvNormSmemBytes));
}

/// gemv_mma_kernel with epilogue EPI (y: T, or the fp32 residual for kAdd; OT overrides it for
/// a plain kStore into fp32) and NORM, over 16-bit (WF = 0) or quantized (WF = 1 + QFormat) weights.
template <typename T, int EPI, bool NORM, int WF = 0, typename OT = std::conditional_t<EPI == kAdd, float, T>>
cudaError_t launch_fused_t(GemvW<T, WF> w, const T* x, void* y, int n, int rows, int cols, const GemvExtras& ex,
                           cudaStream_t s) {
  const std::size_t smem = NORM ? std::size_t(n) * cols * sizeof(T) : 0;
  const int tiles = EPI == kSwiglu ? (rows + 7) / 8 : (rows + 15) / 16;
  const dim3 grid(tiles), block(MMA_WARPS * 32);
  const GemvExtras exp = with_prefetch(ex);
  if constexpr (NORM) {
    if (const cudaError_t e = opt_in_norm_smem(gemv_mma_kernel<T, OT, EPI, true, WF>, s); e != cudaSuccess)
      return e;
  } else if constexpr (WF == 0 && EPI == kAdd) {
    if (gemv_depth(ex, tiles) == 2)
      return cuda::launch(gemv_mma_kernel<T, OT, EPI, false, 0, 2>, grid, block, smem, s, w, x, static_cast<OT*>(y), n,
                          rows, cols, exp);
  }
  return cuda::launch(gemv_mma_kernel<T, OT, EPI, NORM, WF>, grid, block, smem, s, w, x, static_cast<OT*>(y), n,
                      rows, cols, exp);
}

template <typename T, int EPI, int WF = 0>
cudaError_t launch_fused_e(bool norm, GemvW<T, WF> w, const T* x, void* y, int n, int rows, int cols,
                           const GemvExtras& ex, cudaStream_t s) {
  return norm ? launch_fused_t<T, EPI, true, WF>(w, x, y, n, rows, cols, ex, s)
              : launch_fused_t<T, EPI, false, WF>(w, x, y, n, rows, cols, ex, s);
}

/// Checks shared by both gemv_fused overloads: cudaSuccess when the launch may go ahead.
cudaError_t fused_args_ok(DType dt, GemvEpilogue epi, bool norm, const void* x, int n, int rows, int cols,
                          const GemvExtras& ex) {
  // Add with norm would read the residual rows that other CTAs of the same launch add into.
  if (!gemv_fused_supported(dt, n, cols, norm) || (norm && epi == GemvEpilogue::Add) || (!norm && !aligned16(x)) ||
      (norm && (!aligned16(ex.resid) || !aligned16(ex.norm_w))) ||
      (epi == GemvEpilogue::RopeKV &&
       (ex.rope.head_dim % 16 || rows != (ex.rope.n_heads + 2 * ex.rope.n_kv_heads) * ex.rope.head_dim)))
    return cudaErrorNotSupported;
  return cudaSuccess;
}

/// Arguments gemv_q / gemv_swiglu_q accept: 16-bit compute, 1..GEMV_MAX_TOKENS tokens, whole
/// 32-weight blocks per row, a usable view, 16-byte aligned x.
bool quant_gemv_args_ok(DType dt, const QuantView& w, const void* x, int n, int rows, int cols) {
  return dt != DType::F32 && n > 0 && n <= GEMV_MAX_TOKENS && rows >= 0 && cols > 0 && cols % 32 == 0 &&
         quant_view_ok(w) && aligned16(x);
}

/// Run go(T{}, epilogue constant) for the 16-bit type of dt and the epilogue epi.
template <typename Go>
cudaError_t dispatch_fused(DType dt, GemvEpilogue epi, Go&& go) {
  auto by_epi = [&](auto tag) -> cudaError_t {
    switch (epi) {
      case GemvEpilogue::Store: return go(tag, std::integral_constant<int, kStore>{});
      case GemvEpilogue::Add: return go(tag, std::integral_constant<int, kAdd>{});
      case GemvEpilogue::SwiGLU: return go(tag, std::integral_constant<int, kSwiglu>{});
      case GemvEpilogue::RopeKV: return go(tag, std::integral_constant<int, kRope>{});
    }
    return cudaErrorInvalidValue;
  };
  return dt == DType::BF16 ? by_epi(__nv_bfloat16{}) : by_epi(__half{});
}

}  // namespace
}  // namespace vireo::cuda
