// validate_config: the checks a ModelConfig passes before Model::random builds a model.
#include "model/loader.hpp"

#include <fmt/format.h>

#include <cstring>
#include <set>

#include "vireo/error.hpp"

namespace vireo::detail {
void validate_config(const ModelConfig& c) {
  auto bad = [&](const std::string& what) {
    throw Error(ErrorCode::InvalidModel, fmt::format("model config: {}", what));
  };
  if (c.n_layers <= 0 || c.d_model <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.head_dim <= 0 ||
      c.d_ff <= 0 || c.vocab_size <= 0)
    bad(fmt::format("sizes must be positive (layers {}, d_model {}, heads {}, kv_heads {}, head_dim {}, d_ff {}, vocab {})",
                    c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.d_ff, c.vocab_size));
  if (c.n_heads % c.n_kv_heads != 0)
    bad(fmt::format("head count {} is not a multiple of kv head count {}", c.n_heads, c.n_kv_heads));
  if (c.head_dim % 2 != 0) bad(fmt::format("head_dim {} is odd (RoPE rotates pairs)", c.head_dim));
  if (!(c.rms_eps > 0.0f) || !(c.rope_theta > 0.0f))
    bad(fmt::format("rms_eps {} and rope_theta {} must be positive", c.rms_eps, c.rope_theta));
}

}  // namespace vireo::detail
