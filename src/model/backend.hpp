// Backend: what a device must provide to run a Network (model/network.hpp).
//
// Model::forward does the device-independent part once (validate the batch, reserve KV
// slots, copy-on-write, build a ForwardPlan of positions / slots / block tables) and hands
// the plan to the backend, which runs the network and fills the logits rows. The plan is
// plain arrays (CSR-style, as in FlashInfer's page tables) so a CUDA backend can upload it
// as-is.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "kv/kv_storage.hpp"
#include "model/network.hpp"
#include "vireo/error.hpp"
#include "vireo/model.hpp"
#include "vireo/sampler.hpp"

namespace vireo::detail {

/// The cancellation flags a step honours: the model's (ModelOptions::cancel) and the call's
/// (ForwardOptions::cancel). Backends call check() between ops or layers.
struct Cancel {
  const std::atomic<bool>* model = nullptr;
  const std::atomic<bool>* call = nullptr;
  bool requested() const noexcept {
    return (model && model->load(std::memory_order_relaxed)) || (call && call->load(std::memory_order_relaxed));
  }
  void check() const {
    if (requested()) throw Error(ErrorCode::Cancelled, "forward cancelled");
  }
};

struct ForwardPlan {
  // Per token of the batch, T = tokens.size().
  std::vector<Token> tokens;
  std::vector<std::int32_t> positions;   ///< position of the token in its sequence
  std::vector<std::int64_t> slots;       ///< KV slot = block * block_size + offset
  std::vector<std::int32_t> seq_of;      ///< index into the per-sequence arrays below
  // Per distinct sequence of the batch, S of them.
  std::vector<std::int64_t> ctx_len;       ///< sequence length after this step
  std::vector<std::int32_t> block_indptr;  ///< S+1 offsets into block_ids
  std::vector<std::int32_t> block_ids;     ///< concatenated block tables
  // Rows whose logits are returned, in batch order (indices into tokens).
  std::vector<std::int32_t> logit_rows;
  // Token trees (Batch::add_tree), empty when the step has none. Per token: its index in
  // its sequence's storage (the keys it may see end there; chains: == position), the
  // storage index of its tree's first token (-1: a chain token) and the tree tokens it sees
  // (bit j: the tree's j-th token; itself and its ancestors).
  std::vector<std::int32_t> kv_pos;
  std::vector<std::int32_t> tree_base;
  std::vector<std::uint64_t> tree_mask;
  bool has_trees() const noexcept { return !tree_base.empty(); }
  int block_size = 16;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DType kv_dtype() const noexcept = 0;
  virtual std::unique_ptr<KVStorage> make_kv_storage(const KVGeometry& g) = 0;
  /// Run the network for `plan`; write plan.logit_rows.size() rows into out (already reset).
  virtual void forward(const ForwardPlan& plan, KVStorage& kv, Logits& out,
                       const Cancel& cancel) = 0;
  virtual std::size_t weight_bytes() const noexcept = 0;
  /// Calibration tools' hook (model/observer.hpp); only the CPU executor calls it.
  virtual void set_linear_observer(class LinearObserver* obs) {
    throw Error(ErrorCode::Unsupported, "this backend does not report activations (use the CPU)");
  }
  /// Whether forward() fills Logits::mutable_hidden() when it is set.
  virtual bool supports_hidden() const noexcept { return false; }
  /// Whether forward() honours ForwardPlan's token trees.
  virtual bool supports_trees() const noexcept { return false; }
  /// The device stream (a cudaStream_t) the backend's work runs on; nullptr on the CPU.
  virtual void* stream() const noexcept { return nullptr; }

  /// Whether forward_sample() can sample these rows (one SamplerParams per logits row) on
  /// the device. The default backend cannot: the model then samples host logits.
  virtual bool can_sample(std::span<const SamplerParams> rows) const noexcept { return false; }
  /// Run the network for `plan` and sample logits row i with rows[i] and Philox counter
  /// counters[i] on the device; only out[i] (token, log-prob) comes back. Called only when
  /// can_sample(rows) is true.
  virtual void forward_sample(const ForwardPlan& plan, KVStorage& kv, std::span<const SamplerParams> rows,
                              std::span<const std::uint64_t> counters, std::span<Sampled> out,
                              const Cancel& cancel) {
    throw Error(ErrorCode::Internal, "forward_sample called on a backend that does not sample on its device");
  }
};

/// The fp32, multithreaded CPU reference backend.
/// quantize_acts: ModelOptions::cpu_quantize_activations.
std::unique_ptr<Backend> make_cpu_backend(const Network& net, int n_threads, bool quantize_acts = false);
#ifdef VIREO_WITH_CUDA
/// The CUDA backend (cuda/): converts weights to `dtype` on device `index` at creation.
/// `stream`: the caller's cudaStream_t, or nullptr for a stream of the backend's own;
/// `quantized`: keep Q8_0 / Q4_0 / Q4_1 matrices quantized on the device.
/// w: the network as a decoder stack (match_decoder_stack, model/patterns.hpp).
/// progress(f), f in (0, 1], after each layer's weights are on the device (it may throw to
/// abort the load).
std::unique_ptr<Backend> make_cuda_backend(const ModelConfig& cfg, const Weights& w, int device_index,
                                           DType dtype, void* stream, bool quantized,
                                           const std::function<void(float)>& progress = {});
#endif

}  // namespace vireo::detail
