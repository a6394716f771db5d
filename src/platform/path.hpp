// Paths as UTF-8 text and back. The C API and error messages carry paths as UTF-8 bytes;
// std::filesystem::path's own char conversions are not UTF-8 everywhere (on Windows they go
// through the active code page or the C locale), its char8_t ones are, on every platform
// (on POSIX they copy the bytes unchanged).
#pragma once
#include <filesystem>
#include <string>
#include <string_view>

namespace vireo::platform {

/// The path named by UTF-8 text (wide UTF-16 inside on Windows, the same bytes on POSIX).
inline std::filesystem::path path_from_utf8(std::string_view utf8) {
  return std::filesystem::path(std::u8string_view(reinterpret_cast<const char8_t*>(utf8.data()), utf8.size()));
}

/// The path as UTF-8 text, for messages.
inline std::string path_to_utf8(const std::filesystem::path& p) {
  const std::u8string s = p.u8string();
  return std::string(reinterpret_cast<const char*>(s.data()), s.size());
}

}  // namespace vireo::platform
