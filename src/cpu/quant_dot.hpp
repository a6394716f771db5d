// Fused dot products of one quantized weight row with an fp32 activation row, for the
// decode path (few tokens per step), where dequantizing each row to a buffer first would
// double the memory traffic that bounds decode. Per 32-element block:
//   Q8_0: d * sum(q_j x_j)
//   Q4_0: d * sum(q_j x_j) - 8 d * sum(x_j)          (q in 0..15, value (q - 8) d)
//   Q4_1: d * sum(q_j x_j) + m * sum(x_j)            (value q d + m)
// sum(x_j) per block is computed once per activation row (block_sums) and reused for every
// weight row. Results equal the dequantize-then-dot reference up to fp32 summation order.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "gguf/fp16.hpp"
#include "vireo/gguf.hpp"

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace vireo::cpu {

/// The fp16 value at p (a block's d or m; any alignment).
inline float half_at(const std::byte* p) noexcept {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
#if defined(__F16C__)
  return _cvtsh_ss(h);  // one vcvtph2ps instead of the portable bit manipulation
#else
  return detail::fp16_to_fp32(h);
#endif
}

/// True for the types quant_dot handles: Q8_0, Q4_0, Q4_1 (one-token kernels of their own),
/// Q5_0, Q5_1, Q4_K, Q5_K, Q6_K (through quant_dot_tokens).
bool has_quant_dot(gguf::TensorType t) noexcept;
/// sums[b] = sum of x[32 b .. 32 b + 31], for n / 32 blocks.
void block_sums(const float* x, std::int64_t n, float* sums) noexcept;
/// Dot of a quantized row of n elements (n a multiple of the type's block) with x.
float quant_dot(gguf::TensorType t, const std::byte* row, const float* x, const float* x_block_sums,
                std::int64_t n) noexcept;

/// Dots of one quantized row with T <= 8 activation rows x + t * x_stride, into out[t]. Each
/// block is dequantized once into registers and reused for every token, so a small decode
/// batch costs one dequantization per weight instead of one per token.
void quant_dot_tokens(gguf::TensorType t, const std::byte* row, const float* x, std::int64_t x_stride, int T,
                      std::int64_t n, float* out) noexcept;

}  // namespace vireo::cpu
