// Internal pieces of the memory planner (src/plan): config from a GGUF header, weight bytes
// per device.
#pragma once
#include <cstdint>

#include "vireo/gguf.hpp"
#include "vireo/plan.hpp"

namespace vireo::detail {

ModelConfig plan_config(const gguf::File& f);
/// Bytes of a [rows, cols] tensor stored as `type` once it is on o.device.
std::uint64_t tensor_device_bytes(gguf::TensorType type, std::uint64_t rows, std::uint64_t cols, const PlanOptions& o);
std::uint64_t file_weight_bytes(const gguf::File& f, const PlanOptions& o);
std::uint64_t config_weight_bytes(const ModelConfig& c, gguf::TensorType type, const PlanOptions& o);

}  // namespace vireo::detail
