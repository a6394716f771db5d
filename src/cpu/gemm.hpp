// The prefill matmuls of the CPU backend (steps of many tokens): y[T, N] = x[T, K] . W^T.
//
// W's rows are dequantized 16 at a time into a k-major panel (panel[k][16], zero rows past
// N), and a 6-token x 16-row register tile multiplies it with the activations: per k, two
// panel loads and six activation broadcasts feed twelve FMAs (the layout of the 6x16
// micro-kernel that vireo-bench uses as the CPU's FMA roofline). Each output is one FMA chain
// over k = 0 .. K-1 in order: the fp32 reference arithmetic, summed in a different order from
// the decode path's 8-lane partial sums (both agree with a double-precision dot to ~1e-6
// relative).
#pragma once
#include <cstdint>

#include "cpu/thread_pool.hpp"
#include "model/weights.hpp"

namespace vireo::cpu {

/// y[t * w.rows + r] = sum_k x[t * w.cols + k] * W[r][k] for t < T, r < w.rows; any weight type
/// gguf::dequantize handles. Parallel over (16-row panel, token range) items.
void gemm_panels(const detail::WeightView& w, const float* x, std::int64_t T, float* y, ThreadPool& pool);

/// The same product by 4-row x 2-token tiles of dot products (8 vector accumulators summed
/// at the end) over rows dequantized into a buffer: no transposition, so cheaper than the
/// panels when few tokens share each dequantized row; every row group streams all of x.
void gemm_rows(const detail::WeightView& w, const float* x, std::int64_t T, float* y, ThreadPool& pool);

}  // namespace vireo::cpu
