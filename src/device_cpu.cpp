// vireo::Device queries for a build without CUDA: no GPU is ever usable, Device::best() is
// the CPU and says why. (The CUDA build implements these in cuda/device_cuda.cpp.)
#ifndef VIREO_WITH_CUDA
#include <fmt/format.h>

#include "vireo/device.hpp"
#include "vireo/log.hpp"

namespace vireo {

int Device::cuda_device_count(std::string* reason) {
  if (reason) *reason = "vireo was built without CUDA";
  return 0;
}

Device Device::best(std::string* reason) {
  const std::string why = "using the CPU: vireo was built without CUDA";
  log(LogLevel::Info, why);
  if (reason) *reason = why;
  return Device::cpu();
}

std::string Device::name() const {
  if (kind == DeviceKind::CPU) return "cpu";
  return fmt::format("cuda:{} (unavailable: vireo was built without CUDA)", index);
}

}  // namespace vireo
#endif  // VIREO_WITH_CUDA
