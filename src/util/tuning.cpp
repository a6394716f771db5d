// The one reader of the VIREO_* environment variables (tuning.hpp, docs/TUNING.md). Each
// variable is parsed one way: an integer in a closed range, whole string, no trailing
// characters; anything else is reported through vireo::log and ignored.
#include "util/tuning.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cstdlib>
#include <cstring>

#include "vireo/log.hpp"

namespace vireo::detail {
namespace {

/// The value of `name` as an integer in [lo, hi], or `fallback` when it is unset, with a
/// warning when it is set to anything else.
int read_int(const char* name, int lo, int hi, int fallback) {
  const char* v = std::getenv(name);
  if (!v) return fallback;
  int x = 0;
  const char* end = v + std::strlen(v);
  const auto [p, ec] = std::from_chars(v, end, x);
  if (*v && ec == std::errc() && p == end && x >= lo && x <= hi) return x;
  log(LogLevel::Warn, fmt::format("{}=\"{}\" ignored: expected an integer from {} to {} (docs/TUNING.md)", name, v, lo, hi));
  return fallback;
}

bool read_bool(const char* name, bool fallback) { return read_int(name, 0, 1, fallback ? 1 : 0) == 1; }

}  // namespace

Tuning read_tuning() {
  Tuning t;
  t.pdl = read_bool("VIREO_PDL", t.pdl);
  t.cuda_profile = read_bool("VIREO_CUDA_PROFILE", t.cuda_profile);
  t.decode_fusion = read_bool("VIREO_DECODE_FUSION", t.decode_fusion);
  t.qgemv_max_tokens = read_int("VIREO_QGEMV_MAX_TOKENS", 0, 4096, t.qgemv_max_tokens);
  return t;
}

const Tuning& process_tuning() {
  static const Tuning t = read_tuning();
  return t;
}

}  // namespace vireo::detail
