// The graph cache: decode steps captured once per key as a CUDA graph and replayed.
//
// A key's first step runs eagerly (same padded plan, same results): kernels are loaded
// lazily and cuBLAS picks and sets up its kernels on first use, and none of that should
// happen inside a stream capture. The key's second step is captured, instantiated and
// replayed; later ones replay. All plan data lives at fixed device addresses (plan_pack.hpp)
// and is uploaded before each replay.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <tuple>

namespace vireo::detail::cuda_backend {

class GraphCache {
 public:
  /// Graph bucket, KV pool address, its blocks, block size, split-KV count, int8 K/V. (int8
  /// pools lay out, and run, differently: a freed pool's address may come back as a pool of
  /// the other precision.)
  using Key = std::tuple<int, void*, std::int64_t, int, int, bool>;
  /// Enqueues the kernels of one step on the stream; capturing: under stream capture (no
  /// cancellation checks then).
  using StepFn = std::function<void(bool capturing)>;

  GraphCache() = default;
  GraphCache(const GraphCache&) = delete;
  GraphCache& operator=(const GraphCache&) = delete;
  ~GraphCache();

  /// Run the step of `key` on `stream`: eagerly the first time, then from its graph.
  void run(const Key& key, void* stream, const StepFn& step);
  /// The last step did not replay a graph.
  void forget_last() noexcept { last_ = nullptr; }
  /// Destroy every graph (they hold the kernels and settings they were captured with).
  void clear() noexcept;
  int size() const noexcept { return int(graphs_.size()); }
  /// Replay the last step's graph `reps` times back to back on `stream` and return the GPU
  /// time per replay in ms, or -1 when the last step did not run from a graph.
  double time_last_replay(int reps, void* stream);

 private:
  using Exec = void*;  ///< a cudaGraphExec_t
  std::map<Key, Exec> graphs_;
  std::set<Key> warmed_;  ///< keys run once eagerly
  Exec last_ = nullptr;   ///< the graph the last step replayed (owned by graphs_), or none
};

}  // namespace vireo::detail::cuda_backend
