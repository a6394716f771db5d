// AWQ (Lin et al., 2023): activation-aware per-input-channel scales.
//
// For linears that share one input x (q/k/v after the attention norm, gate/up after the MLP
// norm, down after the SwiGLU product), a scale s_c > 0 per input channel is folded exactly
// into the model: W <- W diag(s) and the producer of x divides channel c by s_c (the
// preceding RMSNorm's weight, or the rows of the preceding linear). Quantizing W diag(s)
// protects the channels whose activations are large. As in the paper, s = a^alpha with a_c
// the mean |x_c| over the calibration tokens, normalised by sqrt(max s * min s), and alpha
// picked on a grid over [0, 1] to minimise the summed output error
//   sum_l || X W_l^T - X diag(1/s) deq(quant(W_l diag(s)))^T ||^2
// over a sample X of calibration inputs, each W_l quantized to its own (planned) type.
// alpha = 0 is s = 1, plain rounding, so the search never picks worse than RTN on X.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "vireo/gguf.hpp"

namespace vireo::quant {

struct AwqLinear {
  const float* w = nullptr;  ///< [rows, cols] row-major
  std::int64_t rows = 0;
  gguf::TensorType type = gguf::TensorType::Q4_0;
};

struct AwqResult {
  std::vector<float> scales;  ///< [cols]
  double alpha = 0.0;
  double err_rtn = 0.0;       ///< output error with s = 1
  double err = 0.0;           ///< output error with the chosen s
};

/// x: [n, cols] sample of the shared input; act_mean: [cols] mean |x| over all calibration
/// tokens. grid: number of steps over [0, 1] (grid + 1 values of alpha).
AwqResult awq_search(std::span<const AwqLinear> linears, std::int64_t cols, const float* x, std::int64_t n,
                     const float* act_mean, int grid = 20);

/// Output error sum_l ||X (W_l - Weff_l)^T||^2 of the linears quantized with scales s
/// (nullptr: s = 1); what awq_search minimises, exposed for tests and reports.
double awq_output_error(std::span<const AwqLinear> linears, std::int64_t cols, const float* x, std::int64_t n,
                        const float* s);

}  // namespace vireo::quant
