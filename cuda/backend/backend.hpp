// The CUDA backend: the Llama forward pass of the CPU reference (src/cpu/cpu_backend.cpp) on
// one GPU, with weights and activations in bf16 / fp16 (fp32 accumulation everywhere) or fp32
// for testing. The device-resident paged K/V pool, CudaKVStorage, is in kv_storage_cuda.cpp.
//
// The class glues the pieces, one job per file:
//   device_weights.hpp / weights_upload.cpp  weight upload and conversion
//   workspace.{hpp,cpp}                       activation buffers, sized at load
//   plan_pack.{hpp,cpp}                       ForwardPlan -> device plan arrays, one upload
//   graph_cache.{hpp,cpp}                     decode steps captured and replayed as CUDA graphs
//   step.cpp                                  the kernels of one step (the layer loop)
//   profiler.{hpp,cpp}                        VIREO_CUDA_PROFILE's per-stage GPU times
//   backend.cpp                               construction, forward(), controls
// All workspaces, the plan buffers and the logits chunk are allocated at load; forward()
// allocates nothing. Every kernel of a step is launched with programmatic dependent launch
// (cuda/launch.cuh).
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>

#include "backend/device_weights.hpp"
#include "backend/graph_cache.hpp"
#include "backend/plan_pack.hpp"
#include "backend/profiler.hpp"
#include "backend/workspace.hpp"
#include "cuda_api.hpp"
#include "cuda_backend.hpp"
#include "kv_storage_cuda.hpp"
#include "model/backend.hpp"

namespace vireo::detail::cuda_backend {

class CudaBackend final : public Backend, public cuda::BackendControls {
 public:
  CudaBackend(const ModelConfig& cfg, const Weights& w, int device, DType dtype, void* stream, bool quantized,
              const std::function<void(float)>& progress);

  DType kv_dtype() const noexcept override { return dt_; }
  std::size_t weight_bytes() const noexcept override { return w_.bytes; }
  void* stream() const noexcept override { return stream_->get(); }
  void set_graphs_enabled(bool on) noexcept override { graphs_on_ = on && stream_->capturable(); }
  int graphs_captured() const noexcept override { return graphs_.size(); }
  int max_tokens() const noexcept override;
  cuda::DecodeTuning decode_tuning() const noexcept override;
  void set_decode_tuning(const cuda::DecodeTuning& t) override;
  double time_graph_replay(int reps) override;

  std::unique_ptr<KVStorage> make_kv_storage(const KVGeometry& g) override;
  void forward(const ForwardPlan& plan, KVStorage& kv_base, Logits& out, const Cancel& cancel) override;
  bool can_sample(std::span<const SamplerParams> rows) const noexcept override;
  void forward_sample(const ForwardPlan& plan, KVStorage& kv_base, std::span<const SamplerParams> rows,
                      std::span<const std::uint64_t> counters, std::span<Sampled> out,
                      const Cancel& cancel) override;

 private:
  // backend.cpp
  /// Upload the plan and run every layer (eagerly or by graph replay); the first
  /// kLogitChunk logits rows end up in ws_.logits (not yet synchronised). Returns the number
  /// of logits rows. Caller holds mu_.
  int compute(const ForwardPlan& plan, CudaKVStorage& kv, const Cancel& cancel);

  // step.cpp
  /// Every kernel of one step, on stream_ (possibly under graph capture).
  void run(const Step& st, CudaKVStorage& kv, const Cancel& cancel);
  /// Final norm of logit rows [c0, c0 + rows) (adding the last layer's FFN output) and the
  /// vocab projection into ws_.logits.
  void project(const Step& st, int c0, int rows);
  /// y[n, w.rows] = x[n, w.cols] . w^T: GEMV, grouped quantized GEMVs, or cuBLAS.
  void matmul(const void* x, const Mat& w, void* y, bool y_f32, int n);
  /// Up to how many tokens a quantized matmul runs as grouped GEMVs.
  int qgemv_max_tokens(cuda::QFormat f) const noexcept;
  /// Whether a step of n tokens runs the fused decode path.
  bool fused_step(int n) const noexcept;
  /// One fused decode GEMV (cuda::gemv_fused) over a 16-bit or a quantized matrix.
  cuda::Status fused(cuda::GemvEpilogue epi, bool norm, const Mat& w, const void* x, void* y, int n, int rows,
                     const cuda::GemvExtras& ex);
  void mark(const char* stage) { prof_.mark(stage, stream_->get()); }

  ModelConfig cfg_;
  int dev_;
  DType dt_;
  int n_sms_ = 1;
  std::shared_ptr<cuda::Stream> stream_;
  std::unique_ptr<cuda::Blas> blas_;
  DeviceWeights w_;
  Workspace ws_;
  PlanBuffers plan_;
  std::unique_ptr<cuda::GpuSampler> sampler_;
  std::mutex mu_;
  Step last_step_{};  ///< the step compute() ran, for projecting further logits chunks
  bool graphs_on_ = true;
  StepProfiler prof_;
  GraphCache graphs_;
  bool fuse_ = true;         ///< batch-1 decode steps run the fused GEMVs (fused_step())
  int qgemv_max_env_ = 0;    ///< VIREO_QGEMV_MAX_TOKENS (0: per-format default)
  bool keep_quant_ = false;  ///< ModelOptions::gpu_quantized (16-bit compute types only)
};

}  // namespace vireo::detail::cuda_backend
