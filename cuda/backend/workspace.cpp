// Workspace sizing (workspace.hpp).
#include "backend/workspace.hpp"

#include <algorithm>

#include "backend/limits.hpp"

namespace vireo::detail::cuda_backend {

Workspace::Workspace(const ModelConfig& cfg, DType dt, int n_sms) {
  const int nh = cfg.n_heads, nkv = cfg.n_kv_heads, hd = cfg.head_dim;
  const std::size_t M = kMaxTokens, es = dtype_size(dt);
  const std::size_t qkvw = std::size_t(nh + 2 * nkv) * hd, qd = std::size_t(nh) * hd;
  resid = cuda::DeviceBuffer(M * cfg.d_model * 4);
  xn = cuda::DeviceBuffer(M * cfg.d_model * es);
  qkv = cuda::DeviceBuffer(M * qkvw * es);
  q = cuda::DeviceBuffer(M * qd * es);
  attn = cuda::DeviceBuffer(M * qd * es);
  tmp = cuda::DeviceBuffer(M * cfg.d_model * es);
  gu = cuda::DeviceBuffer(M * 2 * std::size_t(cfg.d_ff) * es);
  h = cuda::DeviceBuffer(M * std::size_t(cfg.d_ff) * es);
  logits = cuda::DeviceBuffer(std::size_t(kLogitChunk) * cfg.vocab_size * 4);
  std::size_t ws = 0;
  for (int t = 1; t <= kMaxTokens; ++t)
    ws = std::max(ws, cuda::decode_attention_workspace_floats(t, nh, hd, cuda::decode_attention_splits(t, nkv, n_sms)));
  attn_ws = cuda::DeviceBuffer(std::max<std::size_t>(ws, 1) * 4);
  attn_ws.fill_bytes(0);  // split counters of the decode attention start (and stay) at zero
}

}  // namespace vireo::detail::cuda_backend
