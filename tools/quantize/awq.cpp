// AWQ scale search (see awq.hpp): for each alpha on the grid, quantize every linear of the
// group with its input channels scaled, and measure the output error on the sample.
#include "quantize/awq.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "vireo/error.hpp"

namespace vireo::quant {

double awq_output_error(std::span<const AwqLinear> linears, std::int64_t cols, const float* x, std::int64_t n,
                        const float* s) {
  double total = 0.0;
  std::vector<float> row(static_cast<std::size_t>(cols)), deq(static_cast<std::size_t>(cols)), diff(static_cast<std::size_t>(cols));
  for (const AwqLinear& l : linears) {
    const std::uint64_t rb = gguf::row_bytes(l.type, std::uint64_t(cols));
    std::vector<std::uint8_t> q(rb);
    for (std::int64_t r = 0; r < l.rows; ++r) {
      const float* w = l.w + r * cols;
      for (std::int64_t c = 0; c < cols; ++c) row[std::size_t(c)] = s ? w[c] * s[c] : w[c];
      gguf::quantize(l.type, row.data(), q.data(), std::size_t(cols));
      gguf::dequantize(l.type, q.data(), deq.data(), std::size_t(cols));
      for (std::int64_t c = 0; c < cols; ++c)
        diff[std::size_t(c)] = (s ? deq[std::size_t(c)] / s[c] : deq[std::size_t(c)]) - w[c];
      for (std::int64_t t = 0; t < n; ++t) {
        const float* xt = x + t * cols;
        float acc = 0.0f;
        for (std::int64_t c = 0; c < cols; ++c) acc += diff[std::size_t(c)] * xt[c];
        total += double(acc) * double(acc);
      }
    }
  }
  return total;
}

AwqResult awq_search(std::span<const AwqLinear> linears, std::int64_t cols, const float* x, std::int64_t n,
                     const float* act_mean, int grid) {
  if (linears.empty() || cols < 1 || n < 1 || grid < 1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("AWQ: {} linears, {} columns, {} sample rows, grid {}", linears.size(), cols, n, grid));
  AwqResult best;
  best.scales.assign(std::size_t(cols), 1.0f);
  best.err_rtn = best.err = awq_output_error(linears, cols, x, n, nullptr);
  std::vector<float> s(static_cast<std::size_t>(cols));
  for (int g = 1; g <= grid; ++g) {
    const double alpha = double(g) / double(grid);
    double mx = 0.0, mn = INFINITY;
    for (std::int64_t c = 0; c < cols; ++c) {
      const double v = std::max(1e-4, std::pow(std::max(0.0, double(act_mean[c])), alpha));
      s[std::size_t(c)] = float(v);
      mx = std::max(mx, v), mn = std::min(mn, v);
    }
    const double norm = std::sqrt(mx * mn);
    for (auto& v : s) v = float(double(v) / norm);
    const double e = awq_output_error(linears, cols, x, n, s.data());
    if (e < best.err) best.err = e, best.alpha = alpha, best.scales = s;
  }
  return best;
}

}  // namespace vireo::quant
