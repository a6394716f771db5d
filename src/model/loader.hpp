// GGUF -> ModelConfig + Weights: reads the architecture's hyper-parameters and maps every
// tensor, checking its presence, type and shape against the config before any use.
#pragma once
#include "model/weights.hpp"
#include "vireo/gguf.hpp"
#include "vireo/model.hpp"

namespace vireo::detail {

/// Hyper-parameters from `{arch}.*` metadata. Throws Unsupported / InvalidModel.
ModelConfig config_from_gguf(const gguf::File& f);
/// Views of every weight; 1-D tensors converted to F32 into w.owned. Throws InvalidModel
/// naming the tensor and the expected vs actual shape / type.
Weights map_weights(const gguf::File& f, const ModelConfig& cfg);
/// Checks a config is usable (positive sizes, heads divide, even head_dim, ...).
void validate_config(const ModelConfig& cfg);

}  // namespace vireo::detail
