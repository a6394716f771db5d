// gguf::File::open on paths that are not regular files: a FIFO (whose open used to block
// until a writer came, so loading a model from one hung forever), a directory, a character
// device, a symbolic link to a valid file (accepted). Each refusal is an Io error naming the
// path and what it is. The FIFO open runs on another thread with a time limit; should it
// block, the test opens the FIFO for writing to release it, then fails.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <string>

#include "tiny_gguf.hpp"
#include "vireo/error.hpp"
#include "vireo/gguf.hpp"

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

TEST_CASE("File::open refuses directories and devices, naming them", "[cpu][gguf]") {
  const auto dir = temp_dir();
  const Error d = open_error(dir);
  CHECK(d.code() == ErrorCode::Io);
  CHECK(std::string(d.what()).find(dir.string()) != std::string::npos);
  CHECK(std::string(d.what()).find("a directory") != std::string::npos);
  const Error n = open_error("/dev/null");
  CHECK(n.code() == ErrorCode::Io);
  CHECK(std::string(n.what()).find("'/dev/null': not a regular file (a character device)") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("File::open follows a symbolic link to a regular file", "[cpu][gguf]") {
  const auto dir = temp_dir();
  const auto real = test::write_tmp(test::tiny_gguf({}), "files-" + std::to_string(::getpid()));
  const auto link = dir / "link.gguf";
  std::filesystem::create_symlink(real, link);
  const gguf::File f = gguf::File::open(link);
  CHECK(f.version() == 3);
  std::filesystem::remove_all(dir);
  std::filesystem::remove(real);
}
