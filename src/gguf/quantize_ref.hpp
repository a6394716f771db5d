// Reference quantizers beyond Q8_0 / Q4_0 / Q4_1 (gguf/quantize_ref.cpp), and re-rounding of
// one element of an already quantized block, which GPTQ needs: it fixes a block's scales
// from the weights at the start of the block, then rounds column after column onto that
// grid while it corrects the columns not yet rounded.
#pragma once
#include <cstddef>
#include <cstdint>

#include "vireo/gguf.hpp"

namespace vireo::gguf::quant_ref {

// Blocks of nb * block_elements(type) floats to nb blocks of bytes (layouts in quant.cpp).
void quant_q5_0(const float* x, std::uint8_t* dst, std::size_t nb);
void quant_q5_1(const float* x, std::uint8_t* dst, std::size_t nb);
void quant_iq4_nl(const float* x, std::uint8_t* dst, std::size_t nb);
void quant_q3_k(const float* x, std::uint8_t* dst, std::size_t nb);
void quant_q4_k(const float* x, std::uint8_t* dst, std::size_t nb);
void quant_q5_k(const float* x, std::uint8_t* dst, std::size_t nb);
void quant_q6_k(const float* x, std::uint8_t* dst, std::size_t nb);

/// Whether requantize_element() handles type t (every type quantize() writes except the
/// float types).
bool can_requantize(TensorType t) noexcept;

/// Element j (0 <= j < block_elements(t)) of the block at `block`: store the code nearest to
/// x on the grid of the block's own scales / minimums (left unchanged) and return the value
/// that dequantize() now gives for it.
float requantize_element(TensorType t, std::uint8_t* block, int j, float x) noexcept;

}  // namespace vireo::gguf::quant_ref
