// Workspace planning: the activation buffers of one forward step, sized at load for
// kMaxTokens tokens (limits.hpp) so that a step never allocates.
#pragma once
#include "cuda_api.hpp"
#include "vireo/model.hpp"

namespace vireo::detail::cuda_backend {

struct Workspace {
  /// Sized for cfg's shapes in dt on a GPU of n_sms multiprocessors (the decode attention
  /// workspace holds the partial results of its largest split count).
  Workspace() = default;
  Workspace(const ModelConfig& cfg, DType dt, int n_sms);

  cuda::DeviceBuffer resid;    ///< fp32 residual stream [kMaxTokens, d]
  cuda::DeviceBuffer xn;       ///< normalized rows [kMaxTokens, d]
  cuda::DeviceBuffer qkv;      ///< [kMaxTokens, (nh + 2 nkv) hd]
  cuda::DeviceBuffer q;        ///< roped queries [kMaxTokens, nh hd]
  cuda::DeviceBuffer attn;     ///< attention output [kMaxTokens, nh hd]
  cuda::DeviceBuffer tmp;      ///< Wo / down output of the unfused path [kMaxTokens, d]
  cuda::DeviceBuffer gu;       ///< gate/up [kMaxTokens, 2 d_ff]
  cuda::DeviceBuffer h;        ///< SwiGLU output [kMaxTokens, d_ff]
  cuda::DeviceBuffer logits;   ///< fp32 [kLogitChunk, vocab]
  cuda::DeviceBuffer attn_ws;  ///< split-KV partials and split counters (zeroed once)
};

}  // namespace vireo::detail::cuda_backend
