// Plan packing: a ForwardPlan (model/backend.hpp) becomes the device arrays one step's
// kernels read, packed into pinned memory and uploaded with one copy.
//
// Sequences with a single new token go to the decode list (split-KV decode attention), the
// others are cut into prefill tiles of cuda::prefill_tile() tokens (fp32 runs every token as
// decode). A decode step (every sequence has one token, <= kMaxGraphTokens tokens, graphs on)
// is padded to its bucket {1, 2, 4, ..., 64} with slot -1 (no KV write) and kv_len 0, and
// uses the layout of its bucket at the start of a buffer of its own, so a captured graph's
// pointers never move. The split-KV count depends on the bucket and the longest context
// rounded up to a power of two (each split takes ceil(kv_len / splits) keys on the device),
// so a handful of graphs serve every context length.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cuda_api.hpp"
#include "model/backend.hpp"

namespace vireo::detail::cuda_backend {

/// One packed step: its shapes and the device addresses of its plan arrays.
struct Step {
  int n = 0, n_dec = 0, n_tiles = 0, rows = 0, splits = 1, block_size = 16;
  bool fused = false;  ///< set by the backend: norms, RoPE and residual adds inside the GEMVs
  const std::int32_t *tokens, *positions, *kv_len, *bt_off, *dec_list, *pf_list, *tiles, *logit_rows, *block_ids;
  const std::int64_t* slots;
};

/// What pack() made of a plan.
struct PackedPlan {
  Step step;
  bool graph = false;  ///< a decode step padded to its graph bucket (step.n tokens)
  int logit_rows = 0;  ///< rows the caller asked for (step.rows >= it when graph)
};

/// The pinned host staging buffer and the two device plan buffers (eager steps, graph steps).
class PlanBuffers {
 public:
  PlanBuffers() = default;
  /// Allocate for kMaxTokens tokens and kMaxBlockIds block ids (limits.hpp).
  void allocate();
  /// Pack `plan` (validated by the caller: <= kMaxTokens tokens, <= kMaxBlockIds block ids)
  /// and upload it on `stream` (asynchronously). graphs_on: decode steps may be replayed from a
  /// graph; f32: the fp32 test mode (decode attention for every token).
  PackedPlan pack(const ForwardPlan& plan, bool graphs_on, bool f32, int n_kv_heads, int n_sms, void* stream);

 private:
  std::size_t plan_bytes_ = 0, graph_plan_bytes_ = 0;
  cuda::DeviceBuffer plan_dev_, graph_plan_dev_;
  cuda::PinnedBuffer plan_host_;
};

}  // namespace vireo::detail::cuda_backend
