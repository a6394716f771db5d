// Qwen2 / Qwen2.5: the Llama block with biases on Q, K and V and GPT-NeoX RoPE (the
// converter does not permute Q/K: RoPE rotates the two halves of each head).
#include "model/arch/arch.hpp"

namespace vireo::detail {

Network describe_qwen2(const ArchReader& r, ModelConfig& cfg) {
  return describe_decoder_stack(r, cfg,
                                {.name = "qwen2", .default_eps = 1e-6f, .rope = RopeStyle::Halves});
}

}  // namespace vireo::detail
