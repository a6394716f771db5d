// Decode-time GEMV over GGUF-quantized weights (quant_weights.hpp): gemv_q, gemv_swiglu_q
// and the quantized gemv_fused, all the tensor-core kernel of gemv_mma.cuh with its weight
// load dequantizing each 32-weight block in registers.
#include <type_traits>

#include "cuda_api.hpp"
#include "gemv_launch.cuh"
#include "quant_weights.hpp"

namespace vireo::cuda {

Status gemv_fused(DType dt, GemvEpilogue epi, bool norm, const QuantView& w, const void* x, void* y, int n, int rows,
                  int cols, const GemvExtras& ex, void* stream) {
  if (rows <= 0) return cudaSuccess;
  if (const cudaError_t e = fused_args_ok(dt, epi, norm, x, n, rows, cols, ex); e != cudaSuccess) return e;
  if (cols % 32 || !quant_view_ok(w)) return cudaErrorNotSupported;
  auto s = static_cast<cudaStream_t>(stream);
  return dispatch_fused(dt, epi, [&](auto tag, auto ec) -> cudaError_t {
    using T = decltype(tag);
    return dispatch_format(w.fmt, [&](auto fc) -> cudaError_t {
      constexpr int WF = 1 + int(decltype(fc)::value);
      return launch_fused_e<T, decltype(ec)::value, WF>(norm, w, static_cast<const T*>(x), y, n, rows, cols, ex, s);
    });
  });
}

Status gemv_q(DType dt, const QuantView& w, const void* x, void* y, bool y_f32, int n, int rows, int cols,
              void* stream, const GemvExtras& ex) {
  if (n == 0 || rows == 0) return cudaSuccess;
  if (!quant_gemv_args_ok(dt, w, x, n, rows, cols)) return cudaErrorInvalidValue;
  auto s = static_cast<cudaStream_t>(stream);
  return dispatch_fused(dt, GemvEpilogue::Store, [&](auto tag, auto) -> cudaError_t {
    using T = decltype(tag);
    return dispatch_format(w.fmt, [&](auto fc) -> cudaError_t {
      constexpr int WF = 1 + int(decltype(fc)::value);
      if (y_f32) return launch_fused_t<T, kStore, false, WF, float>(w, static_cast<const T*>(x), y, n, rows, cols, ex, s);
      return launch_fused_t<T, kStore, false, WF>(w, static_cast<const T*>(x), y, n, rows, cols, ex, s);
    });
  });
}

Status gemv_swiglu_q(DType dt, const QuantView& w, const void* x, void* h, int n, int ff, int cols, void* stream,
                     const GemvExtras& ex) {
  if (n == 0 || ff == 0) return cudaSuccess;
  if (!quant_gemv_args_ok(dt, w, x, n, ff, cols)) return cudaErrorInvalidValue;
  auto s = static_cast<cudaStream_t>(stream);
  return dispatch_fused(dt, GemvEpilogue::SwiGLU, [&](auto tag, auto) -> cudaError_t {
    using T = decltype(tag);
    return dispatch_format(w.fmt, [&](auto fc) -> cudaError_t {
      constexpr int WF = 1 + int(decltype(fc)::value);
      return launch_fused_t<T, kSwiglu, false, WF>(w, static_cast<const T*>(x), h, n, ff, cols, ex, s);
    });
  });
}


}  // namespace vireo::cuda
