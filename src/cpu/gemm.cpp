// Prefill matmul over 16-row panels (see gemm.hpp).
#include "cpu/gemm.hpp"

#include <algorithm>
#include <vector>

#include "cpu/ops.hpp"
#include "cpu/simd.hpp"
#include "vireo/gguf.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VIREO_GEMM_AVX2 1
#endif

namespace vireo::cpu {
namespace {

constexpr int kNR = 16;  // rows of W per panel (two 8-lane vectors)
constexpr int kMR = 6;   // tokens per register tile (6 x 2 accumulators + 2 panel vectors)

// out[i * ldo + j] = sum_k x[i * ldx + k] * panel[k * 16 + j] for i < MR, j < 16, k < K.
// (Blocking k so that a 16 KiB slice of the panel stays in L1 measured the same on the 2-core
// EPYC VM, up to K = 2048, and was left out.)
template <int MR>
void tile(const float* x, std::int64_t ldx, const float* panel, std::int64_t K, float* out, std::int64_t ldo) noexcept {
#ifdef VIREO_GEMM_AVX2
  // Named accumulators: with arrays GCC 12 stored all twelve to the stack on every k (twice
  // the instructions of the FMAs themselves). Rows past MR compile away.
  __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0;
  __m256 a3 = a0, b3 = a0, a4 = a0, b4 = a0, a5 = a0, b5 = a0;
  for (std::int64_t k = 0; k < K; ++k) {
    const __m256 p0 = _mm256_loadu_ps(panel + k * kNR), p1 = _mm256_loadu_ps(panel + k * kNR + 8);
#define VIREO_ROW(i)                                               \
  if constexpr (MR > i) {                                          \
    const __m256 v = _mm256_broadcast_ss(x + i * ldx + k);         \
    a##i = _mm256_fmadd_ps(v, p0, a##i);                           \
    b##i = _mm256_fmadd_ps(v, p1, b##i);                           \
  }
    VIREO_ROW(0) VIREO_ROW(1) VIREO_ROW(2) VIREO_ROW(3) VIREO_ROW(4) VIREO_ROW(5)
#undef VIREO_ROW
  }
#define VIREO_STORE(i)                              \
  if constexpr (MR > i) {                           \
    _mm256_storeu_ps(out + i * ldo, a##i);          \
    _mm256_storeu_ps(out + i * ldo + 8, b##i);      \
  }
  VIREO_STORE(0) VIREO_STORE(1) VIREO_STORE(2) VIREO_STORE(3) VIREO_STORE(4) VIREO_STORE(5)
#undef VIREO_STORE
#else
  float c[MR][kNR] = {};
  for (std::int64_t k = 0; k < K; ++k)
    for (int i = 0; i < MR; ++i) {
      const float a = x[i * ldx + k];
      for (int j = 0; j < kNR; ++j) c[i][j] += a * panel[k * kNR + j];
    }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < kNR; ++j) out[i * ldo + j] = c[i][j];
#endif
}

using TileFn = void (*)(const float*, std::int64_t, const float*, std::int64_t, float*, std::int64_t) noexcept;
constexpr TileFn kTiles[kMR + 1] = {nullptr, tile<1>, tile<2>, tile<3>, tile<4>, tile<5>, tile<6>};

// panel[k * 16 + j] = W[r0 + j][k] (0 for j >= nr), a block of columns at a time (32, or
// a K-quant's 256): the 16 rows' blocks are dequantized into a cache-resident tile and
// transposed from there.
void build_panel(const detail::WeightView& w, std::int64_t r0, std::int64_t nr, float* panel) {
  constexpr std::int64_t kMaxChunk = 256;
  const std::int64_t K = w.cols;
  const bool is_f32 = w.type == gguf::TensorType::F32;
  const std::size_t eb = gguf::block_elements(w.type), bb = gguf::block_bytes(w.type);  // eb: 1, 32 or 256
  const std::int64_t chunk = std::max<std::int64_t>(32, std::int64_t(eb));
  static thread_local std::vector<float> tmp(std::size_t(kNR * kMaxChunk));
  const float* src[kNR];
  for (std::int64_t k0 = 0; k0 < K; k0 += chunk) {
    const std::int64_t kn = std::min<std::int64_t>(chunk, K - k0);
    const std::size_t off = std::size_t(k0) / eb * bb;
    for (std::int64_t j = 0; j < nr; ++j) {
      const std::byte* row = w.row(r0 + j) + off;
      if (is_f32) {
        src[j] = reinterpret_cast<const float*>(row);
      } else {
        float* t = tmp.data() + j * kMaxChunk;
        gguf::dequantize(w.type, row, t, std::size_t(kn));
        src[j] = t;
      }
    }
    for (std::int64_t e = 0; e < kn; ++e) {
      float* col = panel + (k0 + e) * kNR;
      for (std::int64_t j = 0; j < nr; ++j) col[j] = src[j][e];
      for (std::int64_t j = nr; j < kNR; ++j) col[j] = 0.0f;
    }
  }
}

// y[0][i] = w[i] . x0, y[rows + i] = w[i] . x1 for the 4 rows w[0..3].
void tile_4x2(const float* const* w, const float* x0, const float* x1, std::int64_t n, float* y,
              std::int64_t rows) noexcept {
  std::int64_t k = 0;
  float acc0[4] = {}, acc1[4] = {};
#if defined(__AVX2__) && defined(__FMA__)
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
  __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
  for (; k + 8 <= n; k += 8) {
    const __m256 u = _mm256_loadu_ps(x0 + k), v = _mm256_loadu_ps(x1 + k);
    __m256 w0 = _mm256_loadu_ps(w[0] + k), w1 = _mm256_loadu_ps(w[1] + k);
    a00 = _mm256_fmadd_ps(w0, u, a00);
    a10 = _mm256_fmadd_ps(w0, v, a10);
    a01 = _mm256_fmadd_ps(w1, u, a01);
    a11 = _mm256_fmadd_ps(w1, v, a11);
    __m256 w2 = _mm256_loadu_ps(w[2] + k), w3 = _mm256_loadu_ps(w[3] + k);
    a02 = _mm256_fmadd_ps(w2, u, a02);
    a12 = _mm256_fmadd_ps(w2, v, a12);
    a03 = _mm256_fmadd_ps(w3, u, a03);
    a13 = _mm256_fmadd_ps(w3, v, a13);
  }
  acc0[0] = hsum(a00), acc0[1] = hsum(a01), acc0[2] = hsum(a02), acc0[3] = hsum(a03);
  acc1[0] = hsum(a10), acc1[1] = hsum(a11), acc1[2] = hsum(a12), acc1[3] = hsum(a13);
#endif
  for (; k < n; ++k)
    for (int i = 0; i < 4; ++i) {
      acc0[i] += w[i][k] * x0[k];
      acc1[i] += w[i][k] * x1[k];
    }
  for (int i = 0; i < 4; ++i) {
    y[i] = acc0[i];
    y[rows + i] = acc1[i];
  }
}

}  // namespace

void gemm_rows(const detail::WeightView& w, const float* x, std::int64_t T, float* y, ThreadPool& pool) {
  const std::int64_t rows = w.rows, cols = w.cols;
  const bool is_f32 = w.type == gguf::TensorType::F32;
  constexpr std::int64_t kTileRows = 4;
  pool.parallel_for((rows + kTileRows - 1) / kTileRows, [&](std::int64_t g0, std::int64_t g1) {
    std::vector<float> buf(static_cast<std::size_t>(kTileRows * cols));
    for (std::int64_t g = g0; g < g1; ++g) {
      const std::int64_t r0 = g * kTileRows, nr = std::min<std::int64_t>(kTileRows, rows - r0);
      const float* wr[kTileRows];
      for (std::int64_t i = 0; i < nr; ++i) {
        const std::byte* src = w.row(r0 + i);
        if (is_f32) {
          wr[i] = reinterpret_cast<const float*>(src);
        } else {
          gguf::dequantize(w.type, src, buf.data() + i * cols, std::size_t(cols));
          wr[i] = buf.data() + i * cols;
        }
      }
      std::int64_t t = 0;
      if (nr == kTileRows)
        for (; t + 2 <= T; t += 2) tile_4x2(wr, x + t * cols, x + (t + 1) * cols, cols, y + t * rows + r0, rows);
      for (; t < T; ++t)
        for (std::int64_t i = 0; i < nr; ++i) y[t * rows + r0 + i] = dot(wr[i], x + t * cols, cols);
    }
  });
}

void gemm_panels(const detail::WeightView& w, const float* x, std::int64_t T, float* y, ThreadPool& pool) {
  const std::int64_t N = w.rows, K = w.cols;
  const std::int64_t n_panels = (N + kNR - 1) / kNR;
  // Enough items for every thread when the panels alone are few (small N, many cores): the
  // tokens are cut into ranges of at least 8 tiles; each range dequantizes its panel again.
  const std::int64_t want = 4 * std::int64_t(pool.size());
  const std::int64_t max_ranges = std::max<std::int64_t>(1, T / (8 * kMR));
  const std::int64_t n_ranges = n_panels >= want ? 1 : std::min(max_ranges, (want + n_panels - 1) / n_panels);
  const std::int64_t range = ((T + n_ranges - 1) / n_ranges + kMR - 1) / kMR * kMR;

  pool.parallel_for(n_panels * n_ranges, [&](std::int64_t i0, std::int64_t i1) {
    std::vector<float> panel(static_cast<std::size_t>(K * kNR));
    float edge[kMR * kNR];    // a partial panel's outputs for one tile
    std::int64_t built = -1;  // the panel now in `panel`
    for (std::int64_t item = i0; item < i1; ++item) {
      const std::int64_t p = item / n_ranges, r0 = p * kNR, nr = std::min<std::int64_t>(kNR, N - r0);
      const std::int64_t t_begin = (item % n_ranges) * range, t_end = std::min(T, t_begin + range);
      if (t_begin >= t_end) continue;
      if (built != p) {
        build_panel(w, r0, nr, panel.data());
        built = p;
      }
      // A full panel writes y directly; a partial one goes through `edge`.
      for (std::int64_t t = t_begin; t < t_end; t += kMR) {
        const int mr = int(std::min<std::int64_t>(kMR, t_end - t));
        if (nr == kNR) {
          kTiles[mr](x + t * K, K, panel.data(), K, y + t * N + r0, N);
        } else {
          kTiles[mr](x + t * K, K, panel.data(), K, edge, kNR);
          for (int i = 0; i < mr; ++i) std::copy_n(edge + i * kNR, nr, y + (t + i) * N + r0);
        }
      }
    }
  });
}

}  // namespace vireo::cpu
