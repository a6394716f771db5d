// GPTQ onto GGUF blocks (see gptq.hpp): damped Cholesky inverse of H, column-by-column
// rounding on block grids fitted at the start of each block, error feedback within a lazy
// block and one block-wide update of the remaining columns after it.
#include "quantize/gptq.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "gguf/quantize_ref.hpp"
#include "vireo/error.hpp"

namespace vireo::quant {

namespace {

// In-place lower Cholesky factor of the n x n SPD matrix a (row-major); false if not SPD.
bool cholesky_lower(std::vector<double>& a, std::int64_t n) {
  for (std::int64_t j = 0; j < n; ++j) {
    double* aj = &a[std::size_t(j * n)];
    double d = aj[j];
    for (std::int64_t k = 0; k < j; ++k) d -= aj[k] * aj[k];
    if (!(d > 0.0)) return false;
    d = std::sqrt(d);
    aj[j] = d;
    for (std::int64_t i = j + 1; i < n; ++i) {
      double* ai = &a[std::size_t(i * n)];
      double s = ai[j];
      for (std::int64_t k = 0; k < j; ++k) s -= ai[k] * aj[k];
      ai[j] = s / d;
    }
    for (std::int64_t k = j + 1; k < n; ++k) aj[k] = 0.0;
  }
  return true;
}

// The upper Cholesky factor U of H^-1 (H^-1 = U^T U), from the lower factor L of H:
// H^-1 = L^-T L^-1; with M = L^-1 (lower), H^-1 = M^T M, and U = chol_upper(M^T M).
bool inverse_upper_factor(std::vector<double> h, std::int64_t n, std::vector<double>& u) {
  if (!cholesky_lower(h, n)) return false;
  // M = L^-1 by forward substitution, stored transposed (mt[c][k] = M[k][c]) so that every
  // inner loop runs over contiguous memory.
  std::vector<double> mt(std::size_t(n * n), 0.0);
  for (std::int64_t c = 0; c < n; ++c) {
    double* mc = &mt[std::size_t(c * n)];
    mc[c] = 1.0 / h[std::size_t(c * n + c)];
    for (std::int64_t i = c + 1; i < n; ++i) {
      const double* li = &h[std::size_t(i * n)];
      double s = 0.0;
      for (std::int64_t k = c; k < i; ++k) s += li[k] * mc[k];
      mc[i] = -s / li[i];
    }
  }
  // Hinv = M^T M (symmetric): Hinv[i][j] = sum_k M[k][i] M[k][j], k >= max(i, j).
  std::vector<double> hinv(static_cast<std::size_t>(n * n));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = i; j < n; ++j) {
      const double *mi = &mt[std::size_t(i * n)], *mj = &mt[std::size_t(j * n)];
      double s = 0.0;
      for (std::int64_t k = j; k < n; ++k) s += mi[k] * mj[k];
      hinv[std::size_t(i * n + j)] = hinv[std::size_t(j * n + i)] = s;
    }
  if (!cholesky_lower(hinv, n)) return false;
  u.assign(std::size_t(n * n), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j <= i; ++j) u[std::size_t(j * n + i)] = hinv[std::size_t(i * n + j)];
  return true;
}

}  // namespace

std::vector<std::byte> gptq_quantize(const float* w_in, std::int64_t rows, std::int64_t cols, std::vector<double> h,
                                     gguf::TensorType type, const GptqOptions& opts) {
  const std::int64_t be = std::int64_t(gguf::block_elements(type));
  if (!gguf::quant_ref::can_requantize(type))
    throw Error(ErrorCode::Unsupported, fmt::format("GPTQ: cannot round onto {} blocks", gguf::to_string(type)));
  if (rows < 1 || cols < 1 || cols % be != 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("GPTQ: a [{}, {}] matrix does not split into {} blocks of {}", rows, cols,
                            gguf::to_string(type), be));
  if (h.size() != std::size_t(cols * cols))
    throw Error(ErrorCode::InvalidArgument, fmt::format("GPTQ: H has {} entries, not {}^2", h.size(), cols));
  const std::size_t bb = gguf::block_bytes(type);
  const std::size_t row_bytes = std::size_t(cols / be) * bb;
  const std::int64_t B = std::max<std::int64_t>(be, (opts.block_cols + be - 1) / be * be);

  // Working copy in double, columns in processing order.
  std::vector<std::int64_t> perm(static_cast<std::size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  if (opts.act_order)
    std::stable_sort(perm.begin(), perm.end(), [&](std::int64_t a, std::int64_t b) {
      return h[std::size_t(a * cols + a)] > h[std::size_t(b * cols + b)];
    });
  std::vector<double> w(static_cast<std::size_t>(rows * cols));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t k = 0; k < cols; ++k) w[std::size_t(r * cols + k)] = w_in[std::size_t(r * cols + perm[std::size_t(k)])];
  std::vector<double> hp(static_cast<std::size_t>(cols * cols));
  for (std::int64_t i = 0; i < cols; ++i)
    for (std::int64_t j = 0; j < cols; ++j)
      hp[std::size_t(i * cols + j)] = h[std::size_t(perm[std::size_t(i)] * cols + perm[std::size_t(j)])];
  h.clear();
  h.shrink_to_fit();

  // Dead inputs: never excited, their weights cannot matter; zero them, unit diagonal.
  double mean_diag = 0.0;
  for (std::int64_t i = 0; i < cols; ++i) {
    double& d = hp[std::size_t(i * cols + i)];
    if (d == 0.0) {
      d = 1.0;
      for (std::int64_t r = 0; r < rows; ++r) w[std::size_t(r * cols + i)] = 0.0;
    }
    mean_diag += d;
  }
  mean_diag /= double(cols);
  std::vector<double> u;
  double damp = opts.damp;
  for (int attempt = 0;; ++attempt) {
    std::vector<double> hd = hp;
    for (std::int64_t i = 0; i < cols; ++i) hd[std::size_t(i * cols + i)] += damp * mean_diag;
    if (inverse_upper_factor(std::move(hd), cols, u)) break;
    if (attempt == 6)
      throw Error(ErrorCode::InvalidArgument, "GPTQ: the calibration Hessian stays singular after damping");
    damp *= 10.0;
  }

  std::vector<std::byte> out(std::size_t(rows) * row_bytes);
  auto block_of = [&](std::int64_t r, std::int64_t orig_col) {
    return reinterpret_cast<std::uint8_t*>(out.data()) + std::size_t(r) * row_bytes + std::size_t(orig_col / be) * bb;
  };
  std::vector<float> tmp(static_cast<std::size_t>(be));
  auto fit_block = [&](std::int64_t r, std::int64_t block, const auto& value_of) {
    for (std::int64_t e = 0; e < be; ++e) tmp[std::size_t(e)] = float(value_of(block * be + e));
    gguf::quantize(type, tmp.data(), block_of(r, block * be), std::size_t(be));
  };
  if (opts.act_order) {
    // Static groups: every block's grid from the original weights.
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t b = 0; b < cols / be; ++b)
        fit_block(r, b, [&](std::int64_t c) { return double(w_in[std::size_t(r * cols + c)]); });
  }

  std::vector<double> err(static_cast<std::size_t>(rows * B));
  for (std::int64_t b0 = 0; b0 < cols; b0 += B) {
    const std::int64_t b1 = std::min(cols, b0 + B);
    for (std::int64_t i = b0; i < b1; ++i) {
      const std::int64_t orig = perm[std::size_t(i)];
      if (!opts.act_order && i % be == 0) {
        // Without act order processing order is column order: fit block i / be now, on the
        // corrected weights.
        for (std::int64_t r = 0; r < rows; ++r)
          fit_block(r, i / be, [&](std::int64_t c) { return w[std::size_t(r * cols + c)]; });
      }
      const double d = u[std::size_t(i * cols + i)];
      const double* urow = &u[std::size_t(i * cols)];
      for (std::int64_t r = 0; r < rows; ++r) {
        double* wr = &w[std::size_t(r * cols)];
        const double q = gguf::quant_ref::requantize_element(type, block_of(r, orig), int(orig % be), float(wr[i]));
        const double e = (wr[i] - q) / d;
        err[std::size_t(r * B + (i - b0))] = e;
        for (std::int64_t j = i + 1; j < b1; ++j) wr[j] -= e * urow[j];
      }
    }
    // The rest of the columns, once per block: W[:, b1:] -= E U[b0:b1, b1:].
    if (b1 < cols)
      for (std::int64_t r = 0; r < rows; ++r) {
        double* wr = &w[std::size_t(r * cols)];
        for (std::int64_t i = b0; i < b1; ++i) {
          const double e = err[std::size_t(r * B + (i - b0))];
          if (e == 0.0) continue;
          const double* urow = &u[std::size_t(i * cols)];
          for (std::int64_t j = b1; j < cols; ++j) wr[j] -= e * urow[j];
        }
      }
  }
  return out;
}

}  // namespace vireo::quant
