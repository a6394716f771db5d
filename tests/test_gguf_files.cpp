// gguf::File::open on paths that are not regular files: a FIFO (whose open used to block
// until a writer came, so loading a model from one hung forever), a directory, a character
// device (/dev/null; NUL on Windows), a symbolic link to a valid file (accepted). Each refusal
// is an Io error naming the path and what it is. The FIFO open runs on another thread with a
// time limit; should it block, the test opens the FIFO for writing to release it, then fails.
// Windows has no FIFOs in the file system (its named pipes live in \\.\pipe\), so that test
// is POSIX-only. A non-ASCII path (UTF-8 through the C API, UTF-16 inside on Windows) opens
// and is named in UTF-8 when it is missing.
#include <catch2/catch.hpp>

#ifndef _WIN32
#include <fcntl.h>
#include <sys/stat.h>
#endif
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>

#include "platform/path.hpp"
#include "tiny_gguf.hpp"
#include "vireo/error.hpp"
#include "vireo/gguf.hpp"
#include "vireo/vireo.h"

using namespace vireo;

namespace {

std::filesystem::path temp_dir() {
  auto d = std::filesystem::temp_directory_path() / ("vireo_test_files_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d;
}

/// The Error File::open(p) throws (code and message checked by the caller).
Error open_error(const std::filesystem::path& p) {
  try {
    gguf::File::open(p);
  } catch (const Error& e) {
    return e;
  }
  FAIL("File::open accepted " << p);
  return Error(ErrorCode::Io, "");
}

}  // namespace

#ifndef _WIN32
TEST_CASE("File::open refuses a FIFO at once, naming it", "[cpu][gguf]") {
  const auto dir = temp_dir();
  const auto fifo = dir / "model.fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  auto opened = std::async(std::launch::async, [&] {
    try {
      gguf::File::open(fifo);
      return std::string("accepted");
    } catch (const Error& e) {
      return std::string(e.what()) + (e.code() == ErrorCode::Io ? " [Io]" : " [not Io]");
    }
  });
  const bool finished = opened.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  if (!finished) {
    // Release the blocked open: a writer arriving lets it return.
    const int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (w >= 0) ::close(w);
  }
  const std::string what = opened.get();
  std::filesystem::remove_all(dir);
  INFO(what);
  CHECK(finished);
  CHECK(what.find(fifo.string()) != std::string::npos);
  CHECK(what.find("not a regular file (a FIFO)") != std::string::npos);
  CHECK(what.find("[Io]") != std::string::npos);
}
#endif

TEST_CASE("File::open refuses directories and devices, naming them", "[cpu][gguf]") {
  const auto dir = temp_dir();
  const Error d = open_error(dir);
  CHECK(d.code() == ErrorCode::Io);
  CHECK(std::string(d.what()).find(dir.string()) != std::string::npos);
  CHECK(std::string(d.what()).find("a directory") != std::string::npos);
#ifdef _WIN32
  const char* null_device = "NUL";
#else
  const char* null_device = "/dev/null";
#endif
  const Error n = open_error(null_device);
  CHECK(n.code() == ErrorCode::Io);
  CHECK(std::string(n.what()).find(std::string("'") + null_device + "': not a regular file (a character device)") !=
        std::string::npos);
  std::filesystem::remove_all(dir);
}

// [posix]: creating a symbolic link on Windows needs an administrator or developer mode, and
// wine does not implement it (scripts/ci/mingw-wine.sh leaves [posix] out).
TEST_CASE("File::open follows a symbolic link to a regular file", "[cpu][gguf][posix]") {
  const auto dir = temp_dir();
  const auto real = test::write_tmp(test::tiny_gguf({}), "files-" + std::to_string(::getpid()));
  const auto link = dir / "link.gguf";
  std::filesystem::create_symlink(real, link);
  const gguf::File f = gguf::File::open(link);
  CHECK(f.version() == 3);
  std::filesystem::remove_all(dir);
  std::filesystem::remove(real);
}

TEST_CASE("a non-ASCII path opens, through the C API too, and is named in UTF-8", "[cpu][gguf]") {
  const auto dir = temp_dir();
  const std::string name = "vireo-\xc3\xbc\xe6\xa8\xa1\xe5\x9e\x8b";  // "vireo-" U+00FC U+6A21 U+578B
  const std::filesystem::path p = dir / platform::path_from_utf8(name + ".gguf");
  const std::vector<std::byte> bytes = test::tiny_gguf({});
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  REQUIRE(std::filesystem::file_size(p) == bytes.size());
  CHECK(gguf::File::open(p).version() == 3);

  vireo_memory_plan plan{};
  const std::string utf8 = platform::path_to_utf8(p);
  INFO(utf8);
  CHECK(vireo_plan_file(utf8.c_str(), nullptr, &plan) == VIREO_STATUS_OK);
  CHECK(plan.file_bytes == bytes.size());

  const Error e = open_error(dir / platform::path_from_utf8(name + "-missing.gguf"));
  CHECK(e.code() == ErrorCode::Io);
  CHECK(std::string(e.what()).find(name + "-missing.gguf': cannot open: ") != std::string::npos);
  std::filesystem::remove_all(dir);
}
