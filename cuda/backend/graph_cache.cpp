// The graph cache (graph_cache.hpp): capture, instantiate, replay, time.
#include "backend/graph_cache.hpp"

#include <cuda_runtime.h>

#include "cuda_api.hpp"

namespace vireo::detail::cuda_backend {

GraphCache::~GraphCache() { clear(); }

void GraphCache::clear() noexcept {
  for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec));
  graphs_.clear();
  warmed_.clear();
  last_ = nullptr;
}

void GraphCache::run(const Key& key, void* stream, const StepFn& step) {
  auto s = static_cast<cudaStream_t>(stream);
  if (!graphs_.count(key) && warmed_.insert(key).second) {
    step(false);
    last_ = nullptr;
    return;
  }
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    cuda::check(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    cudaGraph_t g = nullptr;
    try {
      step(true);
    } catch (...) {
      cudaStreamEndCapture(s, &g);
      if (g) cudaGraphDestroy(g);
      throw;
    }
    cuda::check(cudaStreamEndCapture(s, &g), "cudaStreamEndCapture");
    cudaGraphExec_t exec = nullptr;
    cudaError_t e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    cuda::check(e, "cudaGraphInstantiate");
    it = graphs_.emplace(key, exec).first;
  }
  cuda::check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(it->second), s), "cudaGraphLaunch");
  last_ = it->second;
}

double GraphCache::time_last_replay(int reps, void* stream) {
  if (!last_ || reps < 1) return -1.0;
  auto s = static_cast<cudaStream_t>(stream);
  auto exec = static_cast<cudaGraphExec_t>(last_);
  cudaEvent_t ev[2] = {nullptr, nullptr};
  cuda::check(cudaEventCreate(&ev[0]), "cudaEventCreate");
  const cudaError_t e1 = cudaEventCreate(&ev[1]);
  float ms = 0.0f;
  cudaError_t e = e1;
  if (e == cudaSuccess) e = cudaEventRecord(ev[0], s);
  for (int i = 0; i < reps && e == cudaSuccess; ++i) e = cudaGraphLaunch(exec, s);
  if (e == cudaSuccess) e = cudaEventRecord(ev[1], s);
  if (e == cudaSuccess) e = cudaEventSynchronize(ev[1]);
  if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, ev[0], ev[1]);
  cudaEventDestroy(ev[0]);
  if (ev[1]) cudaEventDestroy(ev[1]);
  cuda::check(e, "graph replay timing");
  return double(ms) / reps;
}

}  // namespace vireo::detail::cuda_backend
