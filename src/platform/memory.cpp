// platform::physical_memory_bytes: sysconf's page count times page size on POSIX (in 64 bits:
// `long` is 32 bits on some targets), GlobalMemoryStatusEx on Windows.
#include "platform/memory.hpp"

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#else
#include <unistd.h>
#endif

namespace vireo::platform {

std::uint64_t physical_memory_bytes() noexcept {
#ifdef _WIN32
  MEMORYSTATUSEX s{};
  s.dwLength = sizeof(s);
  return GlobalMemoryStatusEx(&s) ? std::uint64_t(s.ullTotalPhys) : 0;
#else
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? std::uint64_t(pages) * std::uint64_t(page) : 0;
#endif
}

}  // namespace vireo::platform
