// vireo::Device queries for a CUDA build: count the usable GPUs, pick the best device, name
// one. A CUDA build on a machine without a driver or GPU answers "0 devices" with the CUDA
// error text as the reason, and a GPU this build cannot run (compute capability, no kernel
// image) is passed over with its reason, so Device::best() falls back to the CPU instead of
// failing.
#include <cuda_runtime.h>
#include <fmt/format.h>

#include "cuda_api.hpp"
#include "vireo/device.hpp"
#include "vireo/log.hpp"

namespace vireo {

int Device::cuda_device_count(std::string* reason) { return cuda::device_count(reason); }

Device Device::best(std::string* reason) {
  std::string why;
  const int n = cuda::device_count(&why);
  if (n > 0) {
    // A device that is listed can still be unusable: too old for the kernels, an
    // architecture this build has no code for, a wrong driver, busy in exclusive mode.
    why = cuda::device_unusable(0);
    if (why.empty()) {
      Device d = Device::cuda(0);
      why = fmt::format("using {} ({} CUDA device{} found)", d.name(), n, n == 1 ? "" : "s");
      log(LogLevel::Info, why);
      if (reason) *reason = why;
      return d;
    }
  }
  why = "using the CPU: " + why;
  log(LogLevel::Info, why);
  if (reason) *reason = why;
  return Device::cpu();
}

std::string Device::name() const {
  if (kind == DeviceKind::CPU) return "cpu";
  cudaDeviceProp prop{};
  cudaError_t e = cudaGetDeviceProperties(&prop, index);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return fmt::format("cuda:{} (unavailable: {})", index, cudaGetErrorString(e));
  }
  return fmt::format("cuda:{} ({}, sm_{}{}, {:.1f} GiB)", index, prop.name, prop.major, prop.minor,
                     double(prop.totalGlobalMem) / double(1ull << 30));
}

}  // namespace vireo
