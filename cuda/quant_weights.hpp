// Quantized weight matrices kept in their GGUF precision on the GPU (ModelOptions::
// gpu_quantized): Q8_0, Q4_0 and Q4_1 matrices stay 8.5 / 4.5 / 5 bits per weight in device
// memory instead of being converted to 16 bits at load. Decode reads them directly (gemv.cu's
// GEMV, fused variants included, dequantizes each 32-weight block in registers), so a batch-1
// step moves ~3.5x fewer bytes for Q4; steps of up to 32 tokens (Q8_0: 16) run it 8 tokens at
// a time, larger ones dequantize one matrix at a time into a scratch buffer (dequant.cu) and
// use cuBLAS.
//
// Every weight is dequantized with gguf::dequantize's fp32 arithmetic and rounded to the
// compute type, so the weights the tensor cores see are the ones the converting path uploads.
//
// Host-only header (no CUDA includes), like cuda_api.hpp.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cuda_api.hpp"

namespace vireo::gguf {
enum class TensorType : std::uint32_t;  // vireo/gguf.hpp (C++20; .cu files are C++17)
}

namespace vireo::cuda {

enum class QFormat : int { Q8_0 = 0, Q4_0 = 1, Q4_1 = 2 };

/// The native GPU format of GGUF tensor type t, if it has one.
bool quant_format(gguf::TensorType t, QFormat* f) noexcept;
/// Bytes of quants per 32-weight block: 32 (Q8_0) or 16 (Q4_0, Q4_1).
constexpr int quant_block_bytes(QFormat f) noexcept { return f == QFormat::Q8_0 ? 32 : 16; }
/// Whether the format stores a per-block minimum (Q4_1).
constexpr bool quant_has_min(QFormat f) noexcept { return f == QFormat::Q4_1; }

/// Device layout of a [rows, cols] matrix (cols % 32 == 0; nb = cols / 32 blocks per row):
///   qs [rows][nb][quant_block_bytes]  each block's quants as GGUF stores them (Q8_0: int8
///                                     q[0..31]; Q4: byte i holds q[i] in its low and q[i+16]
///                                     in its high nibble)
///   d  [rows][nb] fp16 scales;  m [rows][nb] fp16 minimums (Q4_1 only)
/// Weight (r, 32 b + e) = d * q_e (Q8_0), d * (q_e - 8) (Q4_0), d * q_e + m (Q4_1), in fp32.
/// qs 16-byte aligned.
struct QuantView {
  QFormat fmt = QFormat::Q8_0;
  const std::uint8_t* qs = nullptr;
  const std::uint16_t* d = nullptr;
  const std::uint16_t* m = nullptr;
};

/// Split n_rows consecutive GGUF rows of type t (cols weights each, starting at src) into the
/// layout above: qs gets n_rows * nb * quant_block_bytes bytes, d and m (Q4_1) n_rows * nb each.
/// Throws Error(InvalidArgument) for a type without a native format or cols % 32 != 0.
void repack_quant_rows(gguf::TensorType t, const void* src, std::int64_t n_rows, int cols, std::uint8_t* qs,
                       std::uint16_t* d, std::uint16_t* m);

/// Host reference: weight (r, c) of a repacked matrix with `cols` columns (tests).
float repacked_weight(QFormat f, const std::uint8_t* qs, const std::uint16_t* d, const std::uint16_t* m, int cols,
                      std::int64_t r, int c);

/// Decode GEMV over quantized weights: y[n, rows] = x[n, cols] . W[rows, cols]^T for
/// 1 <= n <= GEMV_MAX_TOKENS; dt BF16 or F16 (x in dt; y in dt, or fp32 when y_f32); x 16-byte
/// aligned, cols % 32 == 0. ex: only the prefetch fields apply.
Status gemv_q(DType dt, const QuantView& w, const void* x, void* y, bool y_f32, int n, int rows, int cols,
              void* stream, const GemvExtras& ex = {});
/// gemv_swiglu() over a quantized stacked [2 ff, cols] gate/up matrix.
Status gemv_swiglu_q(DType dt, const QuantView& w, const void* x, void* h, int n, int ff, int cols, void* stream,
                     const GemvExtras& ex = {});
/// gemv_fused() (RMSNorm folded in, RoPE + KV write / residual add / SwiGLU epilogues) over a
/// quantized matrix; cols % 32 == 0. The same kernel as the 16-bit one, with the weight load of
/// gemv_q. cudaErrorNotSupported where gemv_fused() would refuse.
Status gemv_fused(DType dt, GemvEpilogue epi, bool norm, const QuantView& w, const void* x, void* y, int n, int rows,
                  int cols, const GemvExtras& ex, void* stream);
/// out [rows, cols] in dt = the dequantized matrix (the input of a cuBLAS GEMM).
Status dequantize_q(DType dt, const QuantView& w, void* out, std::int64_t rows, int cols, void* stream);
/// resid[t, :] = float(dt(W[tokens[t], :])) for t < n: embedding rows of a quantized table,
/// rounded to dt first as the converting path stores the table.
Status embed_q(DType dt, const QuantView& w, const std::int32_t* tokens, float* resid, int n, int d, void* stream);

}  // namespace vireo::cuda
