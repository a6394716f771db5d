// Helpers shared by the fuzz targets: a byte reader that hands out typed values from the
// fuzzer's input (zeros once it runs out), where the default model lives, and the check
// that aborts with a message when an invariant fails (libFuzzer records the input).
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

namespace vireo::fuzz {

/// Reads typed values from the front of the input; past its end every read returns 0.
class Bytes {
 public:
  Bytes(const std::uint8_t* p, std::size_t n) : p_(p), n_(n) {}
  bool empty() const noexcept { return n_ == 0; }
  std::size_t size() const noexcept { return n_; }
  template <class T>
  T take() {
    T v{};
    const std::size_t k = sizeof(T) < n_ ? sizeof(T) : n_;
    std::memcpy(&v, p_, k);
    p_ += k;
    n_ -= k;
    return v;
  }
  std::uint8_t byte() { return take<std::uint8_t>(); }
  /// An integer in [lo, hi] from one or two bytes.
  int range(int lo, int hi) {
    const unsigned span = unsigned(hi - lo) + 1;
    const unsigned v = span <= 256 ? byte() : take<std::uint16_t>();
    return lo + int(v % span);
  }
  /// Up to `max` bytes as a string (stops at the end of the input).
  std::string str(std::size_t max) {
    const std::size_t k = max < n_ ? max : n_;
    std::string s(reinterpret_cast<const char*>(p_), k);
    p_ += k;
    n_ -= k;
    return s;
  }
  std::string rest() { return str(n_); }

 private:
  const std::uint8_t* p_;
  std::size_t n_;
};

/// The SmolLM2 GGUF (scripts/fetch-model.sh), or $VIREO_MODEL.
inline std::filesystem::path model_path() {
  if (const char* p = std::getenv("VIREO_MODEL")) return p;
  return std::filesystem::path(VIREO_SOURCE_DIR) / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf";
}

[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "fuzz invariant violated: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

#define VIREO_FUZZ_CHECK(cond, msg)                                  \
  do {                                                               \
    if (!(cond)) ::vireo::fuzz::die(std::string(#cond) + ": " + (msg)); \
  } while (0)

/// Whether s is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
inline bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
    if (n < 0 || s.size() - i <= std::size_t(n)) return false;
    std::uint32_t cp = n == 0 ? c : c & (0x3Fu >> n);
    for (int k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + std::size_t(k)]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3Fu);
    }
    static constexpr std::uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += std::size_t(n) + 1;
  }
  return true;
}

}  // namespace vireo::fuzz
