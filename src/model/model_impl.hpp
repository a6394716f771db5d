// What a Model holds: config, the GGUF file its weights point into, tokenizer, weights and
// the backend that runs them.
#pragma once
#include <memory>
#include <optional>

#include "model/backend.hpp"
#include "model/network.hpp"
#include "model/weights.hpp"
#include "vireo/gguf.hpp"
#include "vireo/model.hpp"
#include "vireo/tokenizer.hpp"

namespace vireo::detail {

struct ModelImpl {
  ModelConfig cfg;
  ModelOptions opts;
  std::optional<gguf::File> file;        // absent for random models
  std::unique_ptr<Tokenizer> tokenizer;  // absent for random models
  WeightStore store;  // what the network's views point into, besides the file
  Network net;
  std::unique_ptr<Backend> backend;
  Device device;
};

/// Create the backend named by opts.device for m.cfg / m.weights (model.cpp); progress(f) as
/// the GPU upload goes (it may throw to abort).
void attach_backend(ModelImpl& m, const std::function<void(float)>& progress = {});

}  // namespace vireo::detail
