// gguf::check_finite: dequantize each tensor in chunks of whole blocks and scan for NaN,
// infinities and values beyond a bound (see check_finite.hpp).
#include "gguf/check_finite.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "vireo/error.hpp"

namespace vireo::gguf {

void check_finite(const File& file, const std::string& source, float max_abs,
                  const std::function<void(float)>& progress) {
  if (std::isnan(max_abs) || max_abs < 0)
    throw Error(ErrorCode::InvalidArgument, fmt::format("check_finite: max_abs {} is not a non-negative bound", max_abs));
  constexpr std::uint64_t CHUNK = 1 << 16;  // elements dequantized at a time
  std::vector<float> buf;
  std::uint64_t total = 0, done = 0;
  for (const TensorInfo& t : file.tensors()) total += t.size_bytes;
  for (const TensorInfo& t : file.tensors()) {
    const std::uint64_t be = block_elements(t.type), bb = block_bytes(t.type);
    const std::uint64_t per_chunk = std::max<std::uint64_t>(be, CHUNK / be * be);
    buf.resize(std::size_t(per_chunk));
    for (std::uint64_t start = 0; start < t.n_elements; start += per_chunk) {
      const std::uint64_t n = std::min(per_chunk, t.n_elements - start);
      dequantize(t.type, t.data + start / be * bb, buf.data(), std::size_t(n));
      for (std::uint64_t i = 0; i < n; ++i) {
        const float v = buf[std::size_t(i)];
        if (std::isfinite(v) && std::fabs(v) <= max_abs) continue;
        const std::string what = std::isnan(v) ? "NaN" : std::isinf(v) ? (v > 0 ? "+inf" : "-inf") : fmt::format("{:g}", v);
        throw Error(ErrorCode::InvalidModel,
                    fmt::format("{}: tensor '{}' ({}) element {} is {}{}: the weights are corrupt", source, t.name,
                                to_string(t.type), start + i, what,
                                std::isfinite(v) ? fmt::format(", beyond the bound {:g}", max_abs) : std::string()));
      }
    }
    done += t.size_bytes;
    if (progress && total) progress(float(double(done) / double(total)));
  }
}

}  // namespace vireo::gguf
