// Model: a decoder-only language model loaded from GGUF onto a device. Families: Llama
// (Llama 2 / 3.x, SmolLM2, TinyLlama), Mistral, Qwen2, Phi-3 and Gemma 3; each is described
// once (src/model/arch/) and run by every backend. Immutable after load; may be shared by
// several caches and threads.
//
// forward(batch, cache) appends every batch token to its sequence in `cache`, runs the
// network, and returns the logits of the tokens that asked for them, in batch order.
#pragma once
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vireo/batch.hpp"
#include "vireo/device.hpp"
#include "vireo/gguf.hpp"
#include "vireo/sampler.hpp"
#include "vireo/types.hpp"
#include "vireo/export.h"

VIREO_CXX_API_BEGIN
namespace vireo {
class KVCache;
class Tokenizer;
namespace gguf { class File; }
namespace detail { struct ModelImpl; struct Access; }

/// What a model is: its family and shapes. A family's details (RoPE variant, norms, sliding
/// window, ...) stay inside the library.
struct ModelConfig {
  std::string arch = "llama";  ///< family: llama, mistral, qwen2, phi3, gemma3
  std::string name;            ///< general.name of the file, if any
  int n_layers = 0;
  int d_model = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int d_ff = 0;
  int vocab_size = 0;
  int context_length = 0;
  float rope_theta = 10000.0f;
  float rms_eps = 1e-5f;
  bool tied_embeddings = true;
  /// Parameters (weights) count.
  std::int64_t n_params() const noexcept;
};

struct ModelOptions {
  Device device = Device::cpu();
  /// Activations/weights on the GPU (bf16 default; F32 for tests). The CPU is always fp32.
  DType dtype = DType::BF16;
  int n_threads = 0;  ///< CPU threads; 0 = hardware concurrency
  const std::atomic<bool>* cancel = nullptr;    ///< checked during load and forward
  /// Load progress in [0, 1], non-decreasing, ending at 1: reported as the stages that take
  /// time go (the weight check per tensor with check_weights, the GPU upload per layer);
  /// `cancel` is checked at every report, so a progress callback can abort the load by
  /// setting it.
  std::function<void(float)> progress;
  /// CUDA only: a cudaStream_t (passed as void*, so this header needs no CUDA include) that
  /// every kernel and copy of this model runs on, so a caller can order vireo's work with its
  /// own (a render loop, other CUDA libraries). nullptr: the model creates its own
  /// non-blocking stream. The caller keeps the stream alive as long as the model and its
  /// KV caches. forward() still synchronizes the stream before it returns (the logits are
  /// on the host then). The legacy and per-thread default streams (cudaStreamLegacy,
  /// cudaStreamPerThread) are accepted but run decode steps eagerly: they cannot be captured
  /// into CUDA graphs.
  void* cuda_stream = nullptr;
  /// CUDA only (bf16 / fp16): keep Q8_0, Q4_0 and Q4_1 weight matrices in their GGUF
  /// precision on the GPU instead of converting them to `dtype` at load: ~3.5x less weight
  /// memory for Q4, and decode GEMVs that read 4.5-5 bits per weight. Steps of up to 32
  /// tokens (16 for Q8_0) run those GEMVs 8 tokens at a time; larger ones dequantize one
  /// matrix at a time into a scratch buffer for cuBLAS, so prefill and large batches are
  /// slower than with converted weights. The weights the GPU multiplies are
  /// the same either way (dequantized in fp32, rounded to `dtype`). Measured speeds are in
  /// bench/README.md.
  bool gpu_quantized = false;
  /// CPU only: decode steps (up to 8 tokens) multiply quantized weight matrices (Q8_0, Q4_0,
  /// Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) with activations quantized to 8 bits per 32-element block (scale max|x| / 127, the
  /// scheme llama.cpp uses) through integer dot products, instead of the fp32 reference
  /// arithmetic: faster decode, logits that differ from the reference by the activations'
  /// rounding (see bench/README.md for the figures). Prefill steps are unchanged.
  bool cpu_quantize_activations = false;
  /// Check every weight for NaN / Inf at load (reads and dequantizes the whole file once);
  /// Model::load then throws InvalidModel naming the tensor and element. Off by default: a
  /// forward always reports non-finite logits as an InvalidModel error.
  bool check_weights = false;
  /// When `device` is a GPU that cannot take this model -- no CUDA in this build, a compute
  /// capability or architecture the build has no kernels for, too little free memory -- load
  /// on the CPU instead and log why (Warn). Off: Model::load throws an Error saying why
  /// (Unsupported / OutOfMemory / Cuda) before uploading anything.
  bool fallback_to_cpu = false;
};

/// Logits of one forward step: one row per token that asked for logits, in batch order.
class Logits {
 public:
  std::size_t rows() const noexcept { return seq_.size(); }
  int vocab() const noexcept { return vocab_; }
  std::span<const float> row(std::size_t i) const { return {data_.data() + i * std::size_t(vocab_), std::size_t(vocab_)}; }
  SeqId seq(std::size_t i) const { return seq_[i]; }
  /// Index of the row's token in the Batch.
  std::size_t batch_index(std::size_t i) const { return index_[i]; }

  /// Ask the next forward() for the final hidden state of every logits row too: the
  /// d_model values after the final norm, which the LM head multiplies (what Medusa / EAGLE
  /// draft heads read; an embedding). CPU backend; the CUDA backend refuses it for now.
  void request_hidden(bool on) noexcept { want_hidden_ = on; }
  bool hidden_requested() const noexcept { return want_hidden_; }
  /// Hidden state of logits row i (empty unless requested).
  std::span<const float> hidden_row(std::size_t i) const {
    return hidden_dim_ ? std::span<const float>(hidden_.data() + i * std::size_t(hidden_dim_), std::size_t(hidden_dim_))
                       : std::span<const float>();
  }

  // Filled by backends.
  void reset(int vocab, std::size_t rows, int hidden_dim = 0) {
    vocab_ = vocab;
    data_.assign(rows * std::size_t(vocab), 0.0f);
    seq_.assign(rows, -1);
    index_.assign(rows, 0);
    hidden_dim_ = want_hidden_ ? hidden_dim : 0;
    hidden_.assign(rows * std::size_t(hidden_dim_), 0.0f);
  }
  float* mutable_data() noexcept { return data_.data(); }
  float* mutable_hidden() noexcept { return hidden_dim_ ? hidden_.data() : nullptr; }
  void set_row_info(std::size_t i, SeqId s, std::size_t idx) { seq_[i] = s; index_[i] = idx; }

 private:
  int vocab_ = 0;
  std::vector<float> data_;
  std::vector<SeqId> seq_;
  std::vector<std::size_t> index_;
  bool want_hidden_ = false;
  int hidden_dim_ = 0;
  std::vector<float> hidden_;
};

/// Per-call options of a step.
struct ForwardOptions {
  /// Another thread sets it to stop this step: forward() then throws Cancelled and the
  /// cache holds what it held before the call. Checked, with ModelOptions::cancel, between
  /// ops on the CPU and between layers on a GPU. With a flag given, a long CPU step runs in
  /// chunks of 256 tokens so the check comes every few tens of milliseconds on a small
  /// model; that costs some prefill throughput (each weight panel is dequantized once per
  /// chunk; bench/README.md has the figures), so pass a flag only where you may cancel.
  const std::atomic<bool>* cancel = nullptr;
};

class Model {
 public:
  /// Load a GGUF model. Throws Io / InvalidModel / Unsupported / OutOfMemory / Cancelled.
  static Model load(const std::filesystem::path& path, ModelOptions opts = {});
  /// Load a GGUF image held in memory (an asset pack, a download, a resource): the bytes
  /// are copied, so the caller may free them when load returns. Throws as load(path) does,
  /// and InvalidArgument for an empty image.
  static Model load(std::span<const std::byte> image, ModelOptions opts = {});
  /// A Llama model of the given shape with random weights (for benchmarks and tests): no
  /// tokenizer. `weight_type` is the storage of the matrices (F32, F16, BF16, Q8_0, Q4_0, Q4_1).
  static Model random(const ModelConfig& cfg, std::uint64_t seed, ModelOptions opts = {},
                      gguf::TensorType weight_type = gguf::TensorType::F32);

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  const ModelConfig& config() const noexcept;
  bool has_tokenizer() const noexcept;
  /// Throws InvalidArgument for a random model (no vocabulary).
  const Tokenizer& tokenizer() const;
  Device device() const noexcept;
  DType kv_dtype() const noexcept;
  /// The cudaStream_t this model's work runs on (ModelOptions::cuda_stream or the model's
  /// own); nullptr on the CPU.
  void* cuda_stream() const noexcept;
  /// Bytes of all weights as stored on the device (for roofline numbers).
  std::size_t weight_bytes() const noexcept;

  /// Run one step. Throws InvalidArgument (bad token / unknown or swapped sequence),
  /// CacheFull (no room; nothing was appended), Cancelled. On any throw the cache holds
  /// exactly what it held before the call.
  Logits forward(const Batch& batch, KVCache& cache) const;
  /// Same, writing into `out` to reuse its memory across steps.
  void forward(const Batch& batch, KVCache& cache, Logits& out, const ForwardOptions& opts = {}) const;

  /// One step, then one token per logits row: row i (batch order, as in forward()) is
  /// sampled with *samplers[i] and, for its penalties, histories[i] (histories may be empty
  /// when no sampler has penalties). On the CUDA backend, when no row has penalties or a
  /// logit bias and the step has at most 64 logits rows, sampling runs on the GPU and only token ids and
  /// log-probs leave the device; otherwise the host samples the logits. Either way each
  /// sampler's stream advances by one draw, as with Sampler::sample, so both paths draw
  /// the same numbers. Throws as forward() does, and InvalidArgument when the samplers or
  /// histories do not match the logits rows; on a throw no sampler advances.
  std::vector<Sampled> forward_sample(const Batch& batch, KVCache& cache, std::span<Sampler* const> samplers,
                                      std::span<const std::span<const Token>> histories = {},
                                      const ForwardOptions& opts = {}) const;

 private:
  friend struct detail::Access;  // the library's internals (src/model/access.hpp)
  explicit Model(std::unique_ptr<detail::ModelImpl> impl);
  static Model load_impl_(gguf::File file, const std::string& source, ModelOptions opts);
  std::unique_ptr<detail::ModelImpl> impl_;
};

}  // namespace vireo
VIREO_CXX_API_END
