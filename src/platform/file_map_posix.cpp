// platform::FileMap on POSIX: open(2) with O_NONBLOCK (so a FIFO is refused by fstat instead
// of waiting for a writer), fstat for the kind and size, then one read-only private mmap of
// the whole file; the descriptor is closed at once (the mapping keeps the file alive). A file
// that another process truncates later can still fault on access (SIGBUS): mmap gives no
// protection against that.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

#include "platform/file_map.hpp"
#include "platform/path.hpp"
#include "vireo/error.hpp"

namespace vireo::platform {
namespace {

const char* file_kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a plain file";
}

}  // namespace

FileMap FileMap::open(const std::filesystem::path& path, std::string_view what) {
  const std::string source = fmt::format("'{}'", path_to_utf8(path));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) throw Error(ErrorCode::Io, fmt::format("{}: cannot open: {}", source, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    throw Error(ErrorCode::Io, fmt::format("{}: cannot stat: {}", source, std::strerror(e)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(ErrorCode::Io, fmt::format("{}: not a regular file ({}); a {} must be a regular file", source,
                                           file_kind(st.st_mode), what));
  }
  FileMap f;
  if (st.st_size == 0) {
    ::close(fd);
    return f;
  }
  const auto size = std::size_t(st.st_size);
  void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int e = errno;
  ::close(fd);
  if (m == MAP_FAILED)
    throw Error(ErrorCode::Io, fmt::format("{}: cannot mmap {} bytes: {}", source, size, std::strerror(e)));
  f.base_ = m;
  f.size_ = size;
  return f;
}

void FileMap::release() noexcept {
  if (base_) ::munmap(base_, std::size_t(size_));
  base_ = nullptr;
  size_ = 0;
}

}  // namespace vireo::platform
