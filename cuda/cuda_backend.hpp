// Controls of the CUDA backend beyond the Backend interface, reachable from tests and
// benchmarks with dynamic_cast<vireo::cuda::BackendControls*>(model.impl().backend.get()).
// Host-only header (no CUDA includes).
#pragma once

namespace vireo::cuda {

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
};

}  // namespace vireo::cuda
