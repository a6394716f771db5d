// Checks on a ModelConfig before a model is built from it (Model::random). Models loaded
// from GGUF are described by their family's file (model/arch/).
#pragma once
#include "vireo/model.hpp"

namespace vireo::detail {

/// Checks a config is usable (positive sizes, heads divide, even head_dim, ...).
void validate_config(const ModelConfig& cfg);

}  // namespace vireo::detail
