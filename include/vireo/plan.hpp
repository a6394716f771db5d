// Memory planning before load: how many bytes a model, a context length and a number of
// concurrent sequences take on a device, from the GGUF file's header (nothing is loaded or
// uploaded) or from a ModelConfig, and what fits in a budget.
//
//   KV bytes per token = 2 (K and V) * layers * kv_heads * head_dim * bytes per element
// (the lecture's formula with GQA: kv_heads, not heads; int8 K/V store head_dim + 4 bytes per
// row: the values and one fp32 scale). The KV pool holds whole blocks, so a sequence of
// `context` tokens takes ceil(context / block_size) blocks.
//
// Weights: on the CPU every matrix is used as stored in the file and 1-D tensors (norms,
// biases) are converted to fp32; on a GPU every matrix becomes `dtype` (bf16 / fp16 / fp32),
// or keeps its Q8_0 / Q4_0 / Q4_1 blocks with gpu_quantized, and 1-D tensors are fp32.
// Workspaces: the CPU backend's per-step activations for max_batch_tokens tokens; the CUDA
// backend's fixed buffers (sized for its 4096-token steps), an estimate. reserve_bytes is
// what the runtime takes besides (CUDA context, cuBLAS workspace; set it for your driver).
//
// devices_needed: the fewest devices of device_memory_bytes each that hold the weights and
// the KV cache split evenly between them (tensor or pipeline parallelism), each with its own
// workspace and reserve. vireo itself runs a model on one device; the count is the answer to
// "how many GPUs does this deployment need for memory".
#pragma once
#include <cstdint>
#include <filesystem>

#include "vireo/device.hpp"
#include "vireo/export.h"
#include "vireo/gguf.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/model.hpp"
#include "vireo/types.hpp"

namespace vireo {
VIREO_CXX_API_BEGIN

struct PlanOptions {
  DeviceKind device = DeviceKind::CPU;
  DType dtype = DType::BF16;  ///< GPU weights and K/V (the CPU is always fp32)
  bool gpu_quantized = false;  ///< ModelOptions::gpu_quantized (bf16 / fp16 only, as on the GPU)
  KVPrecision kv_precision = KVPrecision::Model;
  int block_size = 16;
  std::int64_t context = 0;      ///< tokens per sequence; 0: the model's context length
  std::int64_t concurrency = 1;  ///< sequences held at once
  int max_batch_tokens = 512;    ///< CPU: tokens of the largest forward step (its workspace)
  /// Memory of one device: a GPU's, or the host's for the CPU. 0: 80 GiB.
  std::uint64_t device_memory_bytes = 0;
  /// Bytes for the largest context x concurrency; 0: device_memory_bytes.
  std::uint64_t memory_budget_bytes = 0;
  /// Runtime overhead per device besides vireo's buffers. -1: 1 GiB on a GPU, 0 on the CPU.
  std::int64_t reserve_bytes = -1;
};

struct MemoryPlan {
  ModelConfig config;
  PlanOptions options;             ///< with the defaults filled in
  std::uint64_t weight_bytes = 0;  ///< weights on the device
  std::uint64_t file_bytes = 0;    ///< the GGUF file (memory-mapped on the host); 0 from a config
  std::uint64_t kv_bytes_per_token = 0;
  std::uint64_t kv_bytes = 0;      ///< context x concurrency, in whole blocks
  std::uint64_t workspace_bytes = 0;
  std::uint64_t reserve_bytes = 0;
  std::uint64_t total_bytes = 0;   ///< weights + KV + workspace + reserve
  bool fits = false;               ///< total_bytes <= device_memory_bytes
  /// Within memory_budget_bytes after weights, workspace and reserve (0 when they alone
  /// exceed it): KV tokens of the pool, the longest context at `concurrency` sequences
  /// (at most the model's context length), the most sequences of `context` tokens.
  std::int64_t budget_kv_tokens = 0;
  std::int64_t budget_max_context = 0;
  std::int64_t budget_max_concurrency = 0;
  /// Fewest devices of device_memory_bytes that hold it all (see above); 0: none does.
  int devices_needed = 0;
};

/// Plan from a GGUF file's header: shapes from its metadata, weight bytes from its tensor
/// directory. Throws Io / InvalidModel / Unsupported as gguf::File::open does,
/// InvalidModel for missing shape keys, InvalidArgument for bad options.
MemoryPlan plan(const std::filesystem::path& gguf_path, const PlanOptions& opts = {});
/// Plan from a shape whose matrices are stored as `weight_type` (the embedding included;
/// norms in fp32), as Model::random builds them. Throws InvalidArgument for bad sizes.
MemoryPlan plan(const ModelConfig& config, gguf::TensorType weight_type, const PlanOptions& opts = {});

VIREO_CXX_API_END
}  // namespace vireo
