// Decode matmuls over 8-bit activations (ModelOptions::cpu_quantize_activations): each
// activation row is quantized per 32-element block, symmetric, scale max|x| / 127 (GGUF
// Q8_0's scheme, the one llama.cpp multiplies its quantized weights with), and each 32-weight
// (sub-)block meets it in an integer dot product:
//   Q8_0: dw dx sum(qw qx)
//   Q4_0: dw dx sum(qw qx) - 8 dw sx,  sx = dx sum(qx)    (Q5_0: -16 dw sx)
//   Q4_1: dw dx sum(qw qx) + mw sx                          (Q5_1 alike)
//   Q4_K / Q5_K sub-block s: (d sc_s) dx sum(qw qx) - (dmin min_s) sx
//   Q6_K: per 16-weight half, (d sc) dx sum((qw - 32) qx)
// AVX2: 32 products per block in one maddubs + madd (Q8_0's signed weights through the sign
// trick), one int -> float conversion and one FMA per block, where the fp32 path
// (quant_dot.hpp) widens and converts every weight. Not the reference arithmetic: the
// activations carry a rounding error of up to dx / 2 per element.
#pragma once
#include <initializer_list>
#include <span>
#include <cstdint>
#include <vector>

#include "cpu/ops.hpp"
#include "cpu/thread_pool.hpp"
#include "model/weights.hpp"
#include "vireo/gguf.hpp"

namespace vireo::cpu {

/// T rows of n activations (n a multiple of 32), quantized.
struct Q8Acts {
  std::int64_t T = 0, n = 0;
  std::vector<std::int8_t> q;  ///< [T][n], in [-127, 127]
  std::vector<float> d;        ///< [T][n / 32] block scales: max |x| / 127 (0 for an all-zero block)
  std::vector<float> s;        ///< [T][n / 32] d * sum(q)
};

/// Quantize x [T][n] into a (reusing its buffers). A block with a non-finite value gets
/// scale NaN, so every output it feeds is NaN, as in the fp32 path.
void quantize_acts(const float* x, std::int64_t T, std::int64_t n, Q8Acts& a);

/// y[t * w.rows + r] = W[r] . x[t] for the activations of `a` (a.n == w.cols), for the types
/// has_quant_dot() (cpu/quant_dot.hpp) accepts (others throw InvalidArgument). Parallel over rows; the tokens go
/// 4 at a time through each row.
void q8_matmul(const detail::WeightView& w, const Q8Acts& a, float* y, ThreadPool& pool);

/// q8_matmul of the same activations with several matrices (a layer's Q, K, V; gate and
/// up) in one parallel_for over all their rows (see matmul_many).
void q8_matmul_many(std::span<const MatmulOut> outs, const Q8Acts& a, ThreadPool& pool);
inline void q8_matmul_many(std::initializer_list<MatmulOut> outs, const Q8Acts& a, ThreadPool& pool) {
  q8_matmul_many(std::span<const MatmulOut>(outs.begin(), outs.size()), a, pool);
}

}  // namespace vireo::cpu
