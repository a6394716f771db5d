// Diagnostic: does programmatic dependent launch actually overlap two kernels on this device,
// eagerly and inside a CUDA graph? (When PDL on every decode kernel changes a step's time
// less than expected, whether the dependent grid starts early at all is the first thing to
// know.)
//
// A one-CTA primary kernel triggers its dependents, spins for spin_ns on %globaltimer and
// records when it ends; a one-CTA secondary launched right after it (PDL attribute set)
// records its start before griddepcontrol.wait and its time after the wait. If the secondary
// started before the primary ended, the launch overlapped.
#include <cuda_runtime.h>

#include <cstdint>

#include "common.cuh"
#include "cuda_api.hpp"
#include "launch.cuh"

namespace vireo::cuda {
namespace {

__global__ void probe_primary(std::uint64_t* t, long long spin_ns) {
  pdl_wait();
  pdl_trigger();
  const std::uint64_t t0 = global_ns();
  while (global_ns() - t0 < std::uint64_t(spin_ns)) {
  }
  t[0] = global_ns();
}

__global__ void probe_secondary(std::uint64_t* t) {
  const std::uint64_t start = global_ns();  // before waiting: when this grid really began
  pdl_wait();
  pdl_trigger();
  t[1] = start;
  t[2] = global_ns();
}

}  // namespace

Status pdl_probe(bool graph, double* early_us, double* after_wait_us) noexcept {
  cudaStream_t s = nullptr;
  std::uint64_t* d = nullptr;
  cudaGraph_t g = nullptr;
  cudaGraphExec_t exec = nullptr;
  std::uint64_t h[3] = {0, 0, 0};
  cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  if (e == cudaSuccess) e = cudaMalloc(&d, sizeof(h));
  auto both = [&]() -> cudaError_t {
    cudaError_t r = cuda::launch(probe_primary, dim3(1), dim3(32), 0, s, d, 50000LL);
    if (r == cudaSuccess) r = cuda::launch(probe_secondary, dim3(1), dim3(32), 0, s, d);
    return r;
  };
  if (e == cudaSuccess) e = both();  // warm-up (module load), eager
  if (e == cudaSuccess) e = cudaStreamSynchronize(s);
  if (e == cudaSuccess && graph) {
    e = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    if (e == cudaSuccess) {
      const cudaError_t r = both();
      e = cudaStreamEndCapture(s, &g);
      if (e == cudaSuccess) e = r;
    }
    if (e == cudaSuccess) e = cudaGraphInstantiate(&exec, g, 0);
    if (e == cudaSuccess) e = cudaGraphLaunch(exec, s);
  } else if (e == cudaSuccess) {
    e = both();
  }
  if (e == cudaSuccess) e = cudaMemcpyAsync(h, d, sizeof(h), cudaMemcpyDeviceToHost, s);
  if (e == cudaSuccess) e = cudaStreamSynchronize(s);
  if (e == cudaSuccess) {
    if (early_us) *early_us = (double(h[0]) - double(h[1])) * 1e-3;
    if (after_wait_us) *after_wait_us = (double(h[2]) - double(h[0])) * 1e-3;
  }
  if (exec) cudaGraphExecDestroy(exec);
  if (g) cudaGraphDestroy(g);
  if (d) cudaFree(d);
  if (s) cudaStreamDestroy(s);
  return e;
}

}  // namespace vireo::cuda
