// platform::FileMap on Windows: CreateFileW on the path's UTF-16 form (shared for reading,
// writing and deletion, as an open file is on POSIX), the kind from GetFileType and the
// handle's attributes (FILE_FLAG_BACKUP_SEMANTICS lets a directory be opened, so it can be
// named rather than reported as "access denied"), the size from GetFileSizeEx, then a
// read-only section (CreateFileMappingW) and one view of the whole file (MapViewOfFile). Both
// handles are closed once the view exists; the view keeps the file open. Windows refuses to
// truncate a file while a view of it exists, so the SIGBUS case of POSIX cannot occur.
// OS errors are reported with FormatMessageW's text in UTF-8 and the error number.
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>

#include <fmt/format.h>

#include <cstdint>
#include <string>

#include "platform/file_map.hpp"
#include "platform/path.hpp"
#include "vireo/error.hpp"

namespace vireo::platform {
namespace {

/// The system's text for a Win32 error code, in UTF-8, without the trailing period and line
/// break, followed by the code ("The system cannot find the file specified (error 2)").
std::string os_error_text(DWORD code) {
  wchar_t* buf = nullptr;
  const DWORD n = FormatMessageW(FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM |
                                     FORMAT_MESSAGE_IGNORE_INSERTS,
                                 nullptr, code, 0, reinterpret_cast<wchar_t*>(&buf), 0, nullptr);
  std::string text;
  if (n > 0 && buf) {
    const int bytes = WideCharToMultiByte(CP_UTF8, 0, buf, int(n), nullptr, 0, nullptr, nullptr);
    if (bytes > 0) {
      text.resize(std::size_t(bytes));
      WideCharToMultiByte(CP_UTF8, 0, buf, int(n), text.data(), bytes, nullptr, nullptr);
    }
  }
  if (buf) LocalFree(buf);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' || text.back() == '.'))
    text.pop_back();
  if (text.empty()) text = "unknown error";
  return fmt::format("{} (error {})", text, unsigned(code));
}

/// What a handle that is not a regular file refers to, or nullptr for a regular file.
const char* non_file_kind(HANDLE h) {
  switch (GetFileType(h)) {
    case FILE_TYPE_DISK: break;
    case FILE_TYPE_CHAR: return "a character device";
    case FILE_TYPE_PIPE: return "a pipe";
    default: return "not a plain file";
  }
  BY_HANDLE_FILE_INFORMATION info{};
  if (GetFileInformationByHandle(h, &info) && (info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY))
    return "a directory";
  return nullptr;
}

struct HandleCloser {
  HANDLE h;
  ~HandleCloser() {
    if (h && h != INVALID_HANDLE_VALUE) CloseHandle(h);
  }
};

}  // namespace

FileMap FileMap::open(const std::filesystem::path& path, std::string_view what) {
  const std::string source = fmt::format("'{}'", path_to_utf8(path));
  HandleCloser file{CreateFileW(path.c_str(), GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                                nullptr, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL | FILE_FLAG_BACKUP_SEMANTICS, nullptr)};
  if (file.h == INVALID_HANDLE_VALUE)
    throw Error(ErrorCode::Io, fmt::format("{}: cannot open: {}", source, os_error_text(GetLastError())));
  if (const char* kind = non_file_kind(file.h))
    throw Error(ErrorCode::Io,
                fmt::format("{}: not a regular file ({}); a {} must be a regular file", source, kind, what));
  LARGE_INTEGER size{};
  if (!GetFileSizeEx(file.h, &size))
    throw Error(ErrorCode::Io, fmt::format("{}: cannot stat: {}", source, os_error_text(GetLastError())));
  FileMap f;
  if (size.QuadPart == 0) return f;  // a section of an empty file cannot be created
  const auto bytes = std::uint64_t(size.QuadPart);
  if (bytes > std::uint64_t(SIZE_MAX))
    throw Error(ErrorCode::Io, fmt::format("{}: {} bytes do not fit the address space", source, bytes));
  HandleCloser section{CreateFileMappingW(file.h, nullptr, PAGE_READONLY, 0, 0, nullptr)};
  if (!section.h)
    throw Error(ErrorCode::Io, fmt::format("{}: cannot map {} bytes: {}", source, bytes, os_error_text(GetLastError())));
  void* view = MapViewOfFile(section.h, FILE_MAP_READ, 0, 0, 0);
  if (!view)
    throw Error(ErrorCode::Io, fmt::format("{}: cannot map {} bytes: {}", source, bytes, os_error_text(GetLastError())));
  f.base_ = view;
  f.size_ = bytes;
  return f;
}

void FileMap::release() noexcept {
  if (base_) UnmapViewOfFile(base_);
  base_ = nullptr;
  size_ = 0;
}

}  // namespace vireo::platform
