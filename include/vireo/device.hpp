// Where a model runs. Device::best() picks a working CUDA GPU when vireo was built with
// CUDA and one is usable, else the CPU, and says why through `reason`.
#pragma once
#include <string>
#include "vireo/export.h"

VIREO_CXX_API_BEGIN
namespace vireo {

enum class DeviceKind { CPU, CUDA };

struct Device {
  DeviceKind kind = DeviceKind::CPU;
  int index = 0;

  static Device cpu() noexcept { return {DeviceKind::CPU, 0}; }
  static Device cuda(int index = 0) noexcept { return {DeviceKind::CUDA, index}; }
  /// A usable GPU if any, else the CPU; the choice and its reason are also logged.
  static Device best(std::string* reason = nullptr);
  /// Number of usable CUDA devices (0 without a CUDA build, driver or GPU).
  static int cuda_device_count(std::string* reason = nullptr);
  std::string name() const;
  bool operator==(const Device&) const = default;
};

}  // namespace vireo
VIREO_CXX_API_END
