// Memory planning before load (include/vireo/plan.hpp): weights from plan_weights.cpp, the KV
// pool by the lecture's formula in whole blocks, the backends' workspaces, and what fits a
// budget or how many devices the whole takes.
#include <fmt/format.h>

#include <algorithm>

#include "plan/plan_internal.hpp"
#include "vireo/error.hpp"

namespace vireo {
namespace {

constexpr std::uint64_t kGiB = std::uint64_t(1) << 30;
// The CUDA backend's step limits (cuda backend: kMaxTokens, kLogitChunk, kMaxSampleRows and
// the block-id capacity of its plan buffers, two of them).
constexpr std::uint64_t kGpuMaxTokens = 4096, kGpuLogitRows = 256, kGpuSampleRows = 64;
constexpr std::uint64_t kGpuPlanBytes = 2 * (std::uint64_t(1) << 22) * 4;

PlanOptions filled(PlanOptions o, const ModelConfig& c) {
  auto bad = [](const std::string& m) { throw Error(ErrorCode::InvalidArgument, "plan: " + m); };
  if (o.block_size < 1) bad(fmt::format("block_size {} must be at least 1", o.block_size));
  if (o.concurrency < 1) bad(fmt::format("concurrency {} must be at least 1", o.concurrency));
  if (o.context < 0) bad(fmt::format("context {} is negative", o.context));
  if (o.max_batch_tokens < 1) bad(fmt::format("max_batch_tokens {} must be at least 1", o.max_batch_tokens));
  if (o.reserve_bytes < -1) bad(fmt::format("reserve_bytes {} is negative", o.reserve_bytes));
  if (o.context == 0) o.context = c.context_length > 0 ? c.context_length : 4096;
  if (o.device_memory_bytes == 0) o.device_memory_bytes = 80 * kGiB;
  if (o.memory_budget_bytes == 0) o.memory_budget_bytes = o.device_memory_bytes;
  if (o.reserve_bytes == -1) o.reserve_bytes = o.device == DeviceKind::CPU ? 0 : std::int64_t(kGiB);
  return o;
}

void check_config(const ModelConfig& c) {
  if (c.n_layers < 1 || c.d_model < 1 || c.n_heads < 1 || c.n_kv_heads < 1 || c.head_dim < 1 || c.d_ff < 1 ||
      c.vocab_size < 1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("plan: config sizes must be positive (layers {}, d_model {}, heads {}, kv_heads {}, "
                            "head_dim {}, d_ff {}, vocab {})",
                            c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.d_ff, c.vocab_size));
}

std::uint64_t kv_bytes_per_token(const ModelConfig& c, const PlanOptions& o) {
  const std::uint64_t elem = o.device == DeviceKind::CPU ? 4 : dtype_size(o.dtype);
  const std::uint64_t row = o.kv_precision == KVPrecision::Int8 ? std::uint64_t(c.head_dim) + 4
                                                                 : std::uint64_t(c.head_dim) * elem;
  return 2 * std::uint64_t(c.n_layers) * std::uint64_t(c.n_kv_heads) * row;
}

std::uint64_t workspace_bytes(const ModelConfig& c, const PlanOptions& o) {
  const std::uint64_t d = std::uint64_t(c.d_model), qd = std::uint64_t(c.n_heads) * std::uint64_t(c.head_dim),
                      kvd = std::uint64_t(c.n_kv_heads) * std::uint64_t(c.head_dim), ff = std::uint64_t(c.d_ff),
                      v = std::uint64_t(c.vocab_size);
  if (o.device == DeviceKind::CPU) {
    // One step's fp32 activations: x, xn, proj [T, d]; q, attention out [T, qd]; k, v
    // [T, kvd]; gate, up [T, d_ff]; and a logits row per sequence.
    const std::uint64_t t = std::uint64_t(o.max_batch_tokens);
    const std::uint64_t rows = std::min<std::uint64_t>(t, std::uint64_t(o.concurrency));
    return 4 * t * (3 * d + 2 * qd + 2 * kvd + 2 * ff) + 4 * rows * v;
  }
  // The CUDA backend's buffers for kGpuMaxTokens-token steps: an fp32 residual, activations
  // in `dtype` (xn, tmp [M, d]; qkv [M, qd + 2 kvd]; q, attn [M, qd]; gate|up [M, 2 d_ff];
  // h [M, d_ff]), one split of decode-attention partials, the logits chunk, the GPU
  // sampler's rows, the plan buffers, and with gpu_quantized one dequantized layer matrix.
  const std::uint64_t m = kGpuMaxTokens, es = dtype_size(o.dtype);
  std::uint64_t b = m * d * 4 + m * es * (2 * d + (qd + 2 * kvd) + 2 * qd + 3 * ff);
  b += m * std::uint64_t(c.n_heads) * (std::uint64_t(c.head_dim) + 2) * 4;
  b += kGpuLogitRows * v * 4 + kGpuSampleRows * v * 16 + kGpuPlanBytes;
  if (o.gpu_quantized && o.dtype != DType::F32) b += 2 * ff * d * es;
  return b;
}

MemoryPlan finish(const ModelConfig& c, const PlanOptions& o, std::uint64_t weights, std::uint64_t file) {
  MemoryPlan p;
  p.config = c;
  p.options = o;
  p.weight_bytes = weights;
  p.file_bytes = file;
  p.kv_bytes_per_token = kv_bytes_per_token(c, o);
  const std::uint64_t bs = std::uint64_t(o.block_size), block = p.kv_bytes_per_token * bs;
  const std::uint64_t blocks_per_seq = (std::uint64_t(o.context) + bs - 1) / bs;
  p.kv_bytes = std::uint64_t(o.concurrency) * blocks_per_seq * block;
  p.workspace_bytes = workspace_bytes(c, o);
  p.reserve_bytes = std::uint64_t(o.reserve_bytes);
  p.total_bytes = p.weight_bytes + p.kv_bytes + p.workspace_bytes + p.reserve_bytes;
  p.fits = p.total_bytes <= o.device_memory_bytes;

  const std::uint64_t fixed = p.weight_bytes + p.workspace_bytes + p.reserve_bytes;
  if (o.memory_budget_bytes > fixed) {
    const std::uint64_t blocks = (o.memory_budget_bytes - fixed) / block;
    p.budget_kv_tokens = std::int64_t(blocks * bs);
    const std::uint64_t per_seq = blocks / std::uint64_t(o.concurrency);
    p.budget_max_context = std::int64_t(std::min<std::uint64_t>(per_seq * bs, std::uint64_t(c.context_length)));
    p.budget_max_concurrency = std::int64_t(blocks / blocks_per_seq);
  }
  // Weights and KV split over n devices, each with its own workspace and reserve.
  const std::uint64_t per_device = p.workspace_bytes + p.reserve_bytes, shared = p.weight_bytes + p.kv_bytes;
  if (o.device_memory_bytes > per_device) {
    const std::uint64_t room = o.device_memory_bytes - per_device;
    const std::uint64_t n = std::max<std::uint64_t>(1, (shared + room - 1) / room);
    p.devices_needed = n > (1u << 20) ? 0 : int(n);
  }
  return p;
}

}  // namespace

MemoryPlan plan(const std::filesystem::path& gguf_path, const PlanOptions& opts) {
  const gguf::File f = gguf::File::open(gguf_path);
  const ModelConfig c = detail::plan_config(f);
  const PlanOptions o = filled(opts, c);
  return finish(c, o, detail::file_weight_bytes(f, o), f.file_size());
}

MemoryPlan plan(const ModelConfig& config, gguf::TensorType weight_type, const PlanOptions& opts) {
  check_config(config);
  if (gguf::block_elements(weight_type) == 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("plan: unknown weight type {}", static_cast<std::uint32_t>(weight_type)));
  const PlanOptions o = filled(opts, config);
  return finish(config, o, detail::config_weight_bytes(config, weight_type, o), 0);
}

}  // namespace vireo
