// Host side of the L2 prefetch of decode GEMV weights (see l2_prefetch.cuh), and
// l2_prefetch_idle, a kernel that only prefetches and waits: the benchmark's stand-in for
// decode attention, to measure what a prefetch ahead of a GEMV saves.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>

#include "common.cuh"
#include "cuda_api.hpp"
#include "l2_prefetch.cuh"
#include "launch.cuh"

namespace vireo::cuda {
namespace {

__global__ void l2_prefetch_idle_kernel(L2Prefetch pf, long long spin_ns) {
  pdl_wait();
  pdl_trigger();
  const std::uint64_t t0 = global_ns();
  l2_prefetch_share(pf);
  while (global_ns() - t0 < std::uint64_t(spin_ns)) {
  }
}

}  // namespace

std::size_t l2_prefetch_budget() noexcept {
  static const std::size_t bytes = [] {
    const char* e = std::getenv("VIREO_L2_PREFETCH_MB");
    const long mb = e ? std::strtol(e, nullptr, 10) : 0;
    return std::size_t(std::clamp(mb, 0L, 48L)) << 20;
  }();
  return bytes;
}

L2Prefetch l2_prefetch_rows(const void* base, int rows, std::size_t row_stride, std::size_t budget) noexcept {
  L2Prefetch pf;
  if (!base || rows <= 0 || budget == 0 || (reinterpret_cast<std::uintptr_t>(base) & 15u) || row_stride % 16)
    return pf;
  const std::size_t per_row = std::min({budget / std::size_t(rows), row_stride, std::size_t(1) << 30}) / 16 * 16;
  if (per_row == 0) return pf;
  pf.base = base;
  pf.row_stride = row_stride;
  pf.row_bytes = std::uint32_t(per_row);
  pf.rows = rows;
  return pf;
}

Status l2_prefetch_idle(const L2Prefetch& pf, int ctas, long long spin_ns, void* stream) noexcept {
  if (ctas <= 0 || spin_ns < 0) return cudaErrorInvalidValue;
  return cuda::launch(l2_prefetch_idle_kernel, dim3(ctas), dim3(128), 0, static_cast<cudaStream_t>(stream), pf,
                      spin_ns);
}

}  // namespace vireo::cuda
