// The host's physical memory, for refusing an allocation that cannot fit before it is
// touched (a zero-filled pool larger than RAM would not fail at allocation but get the process
// killed later).
#pragma once
#include <cstdint>

namespace vireo::platform {

/// Bytes of physical memory of the host, or 0 when the OS does not say.
std::uint64_t physical_memory_bytes() noexcept;

}  // namespace vireo::platform
