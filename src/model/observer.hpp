// An internal hook on the CPU executor for tools that need a model's activations (the
// calibration of AWQ / GPTQ quantization): called before every Linear op with the rows the
// op multiplies. Not part of the public API; set through Backend::set_linear_observer.
#pragma once
#include <cstdint>

#include "model/network.hpp"

namespace vireo::detail {

class LinearObserver {
 public:
  virtual ~LinearObserver() = default;
  /// x: the op's input rows [T, cols] (op.src), about to be multiplied by op.w
  /// (op.w.name names the GGUF tensor when the model came from a file).
  virtual void on_linear(int layer, const Op& op, const float* x, std::int64_t T, std::int64_t cols) = 0;
};

}  // namespace vireo::detail
