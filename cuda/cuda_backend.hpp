// Controls of the CUDA backend beyond the Backend interface, reachable from tests and
// benchmarks with dynamic_cast<vireo::cuda::BackendControls*>(model.impl().backend.get()).
// Host-only header (no CUDA includes).
#pragma once

namespace vireo::cuda {

/// Decode settings switchable on a loaded model, so that a benchmark can A/B them in one
/// process (interleaved, same weights) instead of one process per setting. Each starts from
/// its environment variable (docs/TUNING.md); a field left at -1 is not changed.
struct DecodeTuning {
  int fusion = -1;  ///< VIREO_DECODE_FUSION: 1 (default) batch-1 steps run the fused GEMVs, 0 never
};

class BackendControls {
 public:
  virtual ~BackendControls() = default;
  /// The backend's stream (a cudaStream_t): every kernel of forward() runs on it.
  virtual void* stream() const noexcept = 0;
  /// Decode steps (every sequence of the batch has one token, at most 64 tokens) replay a
  /// CUDA graph captured per batch-size bucket; off runs the same kernels eagerly.
  virtual void set_graphs_enabled(bool on) noexcept = 0;
  /// Graphs captured so far (one per bucket and KV pool).
  virtual int graphs_captured() const noexcept = 0;
  /// Largest number of tokens one forward() accepts (workspaces are sized for it at load).
  virtual int max_tokens() const noexcept = 0;
  /// The decode settings now in force, every field set.
  virtual DecodeTuning decode_tuning() const noexcept = 0;
  /// Change the decode settings (fields >= 0; out-of-range values throw vireo::Error). Waits
  /// for the stream and drops the captured graphs, which hold the old kernels.
  virtual void set_decode_tuning(const DecodeTuning& t) = 0;
  /// Replay the graph of the last forward step `reps` times back to back and return the GPU
  /// time per replay in ms (CUDA events around all of them), or -1 when the last step did not
  /// run from a graph. The replays redo that step exactly (same tokens, same K/V slots, same
  /// logits), so the caches and results are unchanged. Against a step timed from the host,
  /// the difference is what the host adds: planning, plan upload, launch, sampling, sync.
  virtual double time_graph_replay(int reps) = 0;
};

}  // namespace vireo::cuda
