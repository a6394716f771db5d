// Quantize a whole GGUF model: what vireo-quantize runs.
//
// Every tensor is dequantized to fp32 (the reference) and written again:
//  - 1-D tensors (norm weights, biases) stay F32;
//  - token_embd / output (the LM head; token_embd alone when tied) get `embd_type`
//    (default Q8_0: llama.cpp picks Q6_K for it, and falls back to Q8_0 for rows that are
//    not a multiple of 256, which is SmolLM2's case);
//  - every other matrix gets `type` when its rows (the input dimension) split into the
//    type's blocks, else llama.cpp's fallback for that type: Q3_K -> IQ4_NL, Q4_K -> Q5_0,
//    Q5_K -> Q5_1, Q6_K -> Q8_0 (SmolLM2's 576-wide rows take them; its 1536-wide ffn_down
//    rows keep the K-quant). A type without a fallback, or a fallback that does not divide
//    the row either, is an Error naming the tensor.
// Methods: RTN (the format's reference quantizer), GPTQ (gptq.hpp; Hessians from
// calibration text) and AWQ (awq.hpp; scales folded into attn_norm for q/k/v, ffn_norm for
// gate/up, and ffn_up's rows for ffn_down; attn_output gets none: with grouped-query
// attention its input channels are V's, shared by several heads, as llm-awq skips it too).
// Calibration runs the reference model once, over the caller's tokens, on the CPU.
// Metadata is copied; general.file_type is set to the llama.cpp ftype of the target.
#pragma once
#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "quantize/gptq.hpp"
#include "vireo/gguf.hpp"
#include "vireo/types.hpp"

namespace vireo::quant {

enum class Method { RTN, GPTQ, AWQ };

struct ModelQuantizeOptions {
  gguf::TensorType type = gguf::TensorType::Q4_0;
  gguf::TensorType embd_type = gguf::TensorType::Q8_0;
  Method method = Method::RTN;
  std::vector<Token> calibration;  ///< tokens for GPTQ / AWQ
  int calib_ctx = 512;
  GptqOptions gptq;
  int awq_grid = 20;
  int n_threads = 0;
  const std::atomic<bool>* cancel = nullptr;
  /// (stage, fraction done): "calibrate", "quantize".
  std::function<void(const std::string&, float)> progress;
  std::function<void(const std::string&)> log;
};

/// The type a matrix of `cols`-element rows gets when `type` is asked for (see above).
/// Throws InvalidArgument naming `tensor` when neither the type nor its fallback fits.
gguf::TensorType planned_type(gguf::TensorType type, std::uint64_t cols, const std::string& tensor);

/// llama.cpp's general.file_type (llama_ftype) for a file mostly of `type`.
std::uint32_t ftype_of(gguf::TensorType type);

/// Read `in`, write the quantized model to `out` (through a temporary file in the same
/// directory, renamed on success; nothing is left behind on an error or cancellation).
void quantize_model(const std::filesystem::path& in, const std::filesystem::path& out,
                    const ModelQuantizeOptions& opts);

}  // namespace vireo::quant
