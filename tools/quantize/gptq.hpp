// GPTQ (Frantar et al., 2022) onto GGUF block formats.
//
// A linear y = W x (W: [rows, cols], one GGUF row per output channel) is quantized column
// by column so as to minimise ||W X - Q X||^2 over calibration inputs X, whose second
// moment H = 2 X^T X (accumulated by the caller) is all that is needed: after column i is
// rounded, its error, divided by the i-th diagonal entry of the upper Cholesky factor U of
// H^-1, is spread over the columns not yet rounded along row i of U (the optimal update of
// the OBS framework). Updates are applied lazily in blocks of columns (one rank-B update per
// block instead of B rank-1 updates). H is damped by `damp` times its mean diagonal before
// the inverse; columns no input ever reached (H_ii = 0) are zeroed.
//
// Groups are the GGUF blocks: when the column reaches the first column of a block (32
// elements, 256 for K-quants), the block's scales / minimums are fitted to the current,
// already corrected weights of that block by the format's own quantizer, and each column is
// then rounded onto that grid (gguf/quantize_ref.hpp: requantize_element), so the output is
// exactly a valid block of the format. With act_order the columns are processed in order of
// decreasing H_ii, and all block scales are fitted first, on the original weights (GPTQ's
// "static groups"), since a block's columns are then scattered over the whole pass.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "vireo/gguf.hpp"

namespace vireo::quant {

struct GptqOptions {
  double damp = 0.01;       ///< fraction of mean(diag H) added to the diagonal
  int block_cols = 128;     ///< lazy-update block (rounded up to a multiple of the GGUF block)
  bool act_order = false;   ///< columns by decreasing H_ii, static groups
};

/// Quantize W ([rows, cols] row-major fp32) to `type` with GPTQ. `h`: [cols, cols] (only
/// its symmetric content is used; it is copied). Returns rows * row_bytes(type, cols)
/// bytes. Throws InvalidArgument when cols is not a multiple of the type's block or the
/// sizes disagree, Unsupported for a type GPTQ cannot round onto (requantize_element).
std::vector<std::byte> gptq_quantize(const float* w, std::int64_t rows, std::int64_t cols, std::vector<double> h,
                                     gguf::TensorType type, const GptqOptions& opts = {});

}  // namespace vireo::quant
