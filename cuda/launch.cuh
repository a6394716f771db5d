// Kernel launches with programmatic dependent launch (PDL, Hopper and later).
//
// A decode step is ~9 dependent kernels per layer; between two of them the GPU normally
// drains the first grid, then launches and ramps up the second (a few microseconds each,
// a sizeable share of a batch-1 step). With PDL the next kernel is launched while the
// current one is still running: every kernel here starts with pdl_wait() (griddepcontrol.wait:
// block until the previous grid has completed and its writes are visible) and then
// pdl_trigger() (griddepcontrol.launch_dependents: the next grid may be scheduled once every
// CTA of this one has started). Work that does not depend on the previous kernel (address
// arithmetic, L2 prefetch of weights) goes before pdl_wait(); nothing is read from or written
// to activation buffers before it. Because every kernel waits unconditionally at its top, a
// grid cannot complete before its predecessor has, so dependencies further back hold too.
// Kernels of other libraries (cuBLAS) are launched normally and serialize fully.
//
// launch() uses cudaLaunchKernelEx with cudaLaunchAttributeProgrammaticStreamSerialization
// when pdl_enabled() (compute capability >= 9.0 and VIREO_PDL is not "0"); stream capture
// turns it into programmatic edges of the CUDA graph.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

namespace vireo::cuda {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

/// PDL on the current device (cc >= 9.0) and not switched off by VIREO_PDL=0.
bool pdl_enabled() noexcept;

/// launch() with thread-block clusters of cluster_x CTAs along x (grid.x % cluster_x == 0);
/// cluster_x 0 or 1: no clusters. Clusters of more than 8 CTAs (non-portable, up to 16 on
/// Hopper) are opted into first.
template <typename... KArgs, typename... Args>
cudaError_t launch_cluster(void (*kernel)(KArgs...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t stream,
                           unsigned cluster_x, Args&&... args) {
  if (cluster_x > 8) {
    if (const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
        e != cudaSuccess)
      return e;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  unsigned n = 0;
  if (cluster_x > 1) {
    attr[n].id = cudaLaunchAttributeClusterDimension;
    attr[n].val.clusterDim.x = cluster_x;
    attr[n].val.clusterDim.y = 1;
    attr[n].val.clusterDim.z = 1;
    ++n;
  }
  if (pdl_enabled()) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n].val.programmaticStreamSerializationAllowed = 1;
    ++n;
  }
  cfg.attrs = attr;
  cfg.numAttrs = n;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

template <typename... KArgs, typename... Args>
cudaError_t launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t stream,
                   Args&&... args) {
  return launch_cluster(kernel, grid, block, smem, stream, 0u, std::forward<Args>(args)...);
}

}  // namespace vireo::cuda
