// The model's weights on the GPU, and their upload (weights_upload.cpp).
//
// Every matrix is dequantized row by row (gguf::dequantize) and converted to the backend dtype
// once; Q/K/V are stacked into one [(nh + 2 nkv) hd, d] matrix and gate/up into one
// [2 d_ff, d] matrix so each needs one GEMM. With ModelOptions::gpu_quantized, matrices whose
// parts share a Q8_0 / Q4_0 / Q4_1 type stay in their GGUF blocks instead (quant_weights.hpp).
// Norm weights, biases and RoPE inverse frequencies stay fp32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <vector>

#include "cuda_api.hpp"
#include "model/weights.hpp"
#include "quant_weights.hpp"
#include "vireo/model.hpp"

namespace vireo::detail::cuda_backend {

/// A weight matrix on the device: dense in the compute type, or (quant, gpu_quantized) its
/// GGUF quants in buf with scales and minimums beside them (quant_weights.hpp).
struct Mat {
  cuda::DeviceBuffer buf;
  cuda::DeviceBuffer scales, mins;  ///< quant only (mins: Q4_1)
  bool quant = false;
  cuda::QFormat fmt = cuda::QFormat::Q8_0;
  int rows = 0, cols = 0;
  const void* ptr() const noexcept { return buf.get(); }
  cuda::QuantView qview() const noexcept {
    cuda::QuantView v;
    v.fmt = fmt;
    v.qs = buf.as<std::uint8_t>();
    v.d = scales.as<std::uint16_t>();
    v.m = mins.as<std::uint16_t>();
    return v;
  }
};

struct Layer {
  cuda::DeviceBuffer attn_norm, ffn_norm, bqkv;
  Mat wqkv, wo, wgu, wdown;
};

/// Every weight of the model on the device.
struct DeviceWeights {
  Mat tok_embd, output;  ///< output empty when the embeddings are tied
  cuda::DeviceBuffer output_norm, inv_freq;
  std::vector<Layer> layers;
  /// A dequantized layer matrix for steps that run quantized matrices through cuBLAS
  /// (sized for the largest quantized layer matrix; empty when none stayed quantized).
  cuda::DeviceBuffer deq;
  bool layer_quant = false;  ///< a layer matrix stayed quantized (needs cols % 32 to fuse)
  std::size_t bytes = 0;     ///< device bytes of the weights
};

/// Upload w in `dt` (keep_quant: Q8_0 / Q4_0 / Q4_1 matrices stay quantized). Throws
/// Error(InvalidModel) for a missing or mis-shaped weight, Error(Cuda) on a CUDA failure.
/// progress(f) after each layer (f = layers done / layers); it may throw to abort.
DeviceWeights upload_weights(const ModelConfig& cfg, const Weights& w, DType dt, bool keep_quant,
                             const std::function<void(float)>& progress = {});

}  // namespace vireo::detail::cuda_backend
