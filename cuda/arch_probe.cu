// Whether this build holds kernels the current device can run: a CUDA binary carries code for
// the architectures it was compiled for (CMAKE_CUDA_ARCHITECTURES), and a device outside them
// fails every launch with "no kernel image". Asking for an empty kernel's attributes finds
// that out before any weight is uploaded.
#include <cuda_runtime.h>

#include "cuda_api.hpp"

namespace vireo::cuda {
namespace {
__global__ void arch_probe_kernel() {}
}  // namespace

Status kernel_image_status() noexcept {
  cudaFuncAttributes attr{};
  const cudaError_t e = cudaFuncGetAttributes(&attr, arch_probe_kernel);
  if (e != cudaSuccess) cudaGetLastError();
  return e;
}

}  // namespace vireo::cuda
