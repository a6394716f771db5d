// Mistral: the Llama block with sliding-window attention (attention.sliding_window keys; a
// file without the key attends to the whole context).
#include "model/arch/arch.hpp"

namespace vireo::detail {

Network describe_mistral(const ArchReader& r, ModelConfig& cfg) {
  return describe_decoder_stack(r, cfg,
                                {.name = "mistral", .default_eps = 1e-5f, .rope = RopeStyle::Pairs, .sliding_window = true});
}

}  // namespace vireo::detail
