// Patterns a backend may fuse: recognising a known sequence of ops in a Network and handing
// the backend that sequence's weights by name.
#pragma once
#include "model/network.hpp"
#include "model/weights.hpp"

namespace vireo::detail {

/// The network as a stack of the common pre-norm decoder block (arch.hpp: add_decoder_block)
/// with SwiGLU, full causal attention scaled by 1 / sqrt(head_dim), adjacent-pair RoPE over
/// the whole head without position scaling, RMSNorm, no embedding scale or logit soft-cap:
/// what the CUDA backend's fused step runs. Fused QKV / gate-up matrices come back split
/// into row ranges. Throws Unsupported naming `who`, the family and the first op or
/// setting that differs.
Weights match_decoder_stack(const Network& net, const char* who);

}  // namespace vireo::detail
