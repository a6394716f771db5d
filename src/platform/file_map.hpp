// platform::FileMap: a whole regular file mapped read-only into memory, the one place the
// library opens and maps files (mmap on POSIX; CreateFileW + CreateFileMappingW +
// MapViewOfFile on Windows). Failures are Error(Io) naming the file and the OS's reason.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>
#include <utility>

namespace vireo::platform {

class FileMap {
 public:
  /// Opens `path` and maps all of it read-only. Throws Error(Io) naming the file and giving the
  /// OS's text when it cannot be opened, sized or mapped ("'<path>': cannot open: <text>"), and
  /// "'<path>': not a regular file (a FIFO); a <what> must be a regular file" for a directory,
  /// FIFO, pipe, device or socket, refused before anything could block on it. An empty file
  /// maps to data() == nullptr, size() == 0: whether that is an error is the caller's decision.
  static FileMap open(const std::filesystem::path& path, std::string_view what = "file");

  FileMap() noexcept = default;
  FileMap(FileMap&& o) noexcept : base_(std::exchange(o.base_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  FileMap& operator=(FileMap&& o) noexcept {
    if (this != &o) {
      release();
      base_ = std::exchange(o.base_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  FileMap(const FileMap&) = delete;
  FileMap& operator=(const FileMap&) = delete;
  ~FileMap() { release(); }

  const std::uint8_t* data() const noexcept { return static_cast<const std::uint8_t*>(base_); }
  std::uint64_t size() const noexcept { return size_; }

 private:
  void release() noexcept;  // unmaps (per OS); leaves the map empty
  void* base_ = nullptr;
  std::uint64_t size_ = 0;
};

}  // namespace vireo::platform
