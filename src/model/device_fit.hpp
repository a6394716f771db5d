// Whether a model can go on the GPU its options name, checked before any weight is uploaded:
// the device must run this build's kernels (compute capability, kernel image) and have the
// free memory for the weights plus a reserve for workspaces and the runtime.
#pragma once
#include <optional>

#include "vireo/error.hpp"

namespace vireo::detail {
struct ModelImpl;

/// Bytes kept free beside the weights (workspaces, cuBLAS, the CUDA context): PlanOptions'
/// default GPU reserve.
inline constexpr std::uint64_t kGpuReserveBytes = std::uint64_t(1) << 30;

/// nullopt when m (its network and options) fits m.opts.device; else the Error to throw
/// (Unsupported: no CUDA in this build, or a device that cannot run its kernels; Cuda: no such
/// device; OutOfMemory: too little free memory, with the figures).
std::optional<Error> cuda_unfit(const ModelImpl& m);

}  // namespace vireo::detail
