// Pulling the next decode GEMV's weights into L2 while a kernel that hardly touches HBM runs
// (nvcc only; the descriptor and its host helpers are in cuda_api.hpp).
//
// At batch 1 an 8B decode step alternates HBM-bound GEMVs with kernels that move almost no
// bytes: decode attention over a short context, RMSNorm, RoPE. While those run the HBM idles
// (~10-20 us per layer on an H100). A kernel given an L2Prefetch spends that time streaming the
// first row_bytes of every row of the next matrix into L2. The decode GEMV walks each row of
// its 16-row tile from column 0 upwards with all CTAs of a single wave at once (QKV and Wo of
// the 8B shape are one wave), so a prefix of every row, not a prefix of the rows, is what every
// CTA reads first: all CTAs start on L2 hits and then stream the rest at the full HBM rate.
//
// Each CTA of the launching grid takes rows cta, cta + ctas, ...; a thread takes one row
// with a single bulk prefetch (cp.async.bulk.prefetch.L2, sm_90: the copy engine walks the
// bytes, the thread goes on at once). Before sm_90 the lanes fall back to one
// prefetch.global.L2 per 128-byte line. A prefetch is a hint: it never faults inside the
// allocation and never changes a result, only where bytes come from.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cuda_api.hpp"

namespace vireo::cuda {

/// Issue this CTA's share of pf (a no-op when pf.rows == 0). Any grid shape and block size.
__device__ __forceinline__ void l2_prefetch_share(const L2Prefetch& pf) {
  if (pf.rows <= 0 || pf.row_bytes == 0) return;
  const unsigned ctas = gridDim.x * gridDim.y * gridDim.z;
  const unsigned cta = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
  const unsigned tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const auto* base = static_cast<const unsigned char*>(pf.base);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // One row per thread: rows cta * threads + tid, then strided by the whole grid's threads.
  // The .global operand gets a global-space address (cvta), not the generic pointer.
  const std::size_t gbase = __cvta_generic_to_global(base);
  for (std::size_t r = std::size_t(cta) * threads + tid; r < std::size_t(pf.rows); r += std::size_t(ctas) * threads)
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(gbase + r * pf.row_stride), "r"(pf.row_bytes)
                 : "memory");
#else
  const unsigned lines = (pf.row_bytes + 127) / 128;
  for (std::size_t r = cta; r < std::size_t(pf.rows); r += ctas)
    for (unsigned i = tid; i < lines; i += threads)
      asm volatile("prefetch.global.L2 [%0];\n" ::"l"(base + r * pf.row_stride + std::size_t(i) * 128));
#endif
}

}  // namespace vireo::cuda
