// The CUDA backend's construction, forward() and controls (backend.hpp): the plan is packed
// and uploaded (plan_pack.cpp), then the step runs eagerly or from a CUDA graph
// (graph_cache.cpp, step.cpp), and only the logit rows asked for come back.
#include "backend/backend.hpp"

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "backend/limits.hpp"
#include "util/tuning.hpp"
#include "vireo/error.hpp"

namespace vireo::detail::cuda_backend {

CudaBackend::CudaBackend(const ModelConfig& cfg, const Weights& w, int device, DType dtype, void* stream,
                         bool quantized, const std::function<void(float)>& progress)
    : cfg_(cfg), dev_(device), dt_(dtype), keep_quant_(quantized && dtype != DType::F32) {
  std::string why;
  const int n = cuda::device_count(&why);
  if (n == 0) throw Error(ErrorCode::Unsupported, "no usable CUDA device: " + why);
  if (device < 0 || device >= n)
    throw Error(ErrorCode::InvalidArgument, fmt::format("CUDA device {} requested but {} are present", device, n));
  const int nh = cfg.n_heads, nkv = cfg.n_kv_heads, hd = cfg.head_dim;
  if (!(hd == 64 || hd == 128) || nkv <= 0 || nh % nkv || nh / nkv > 8)
    throw Error(ErrorCode::Unsupported,
                fmt::format("CUDA attention supports head_dim 64 or 128 and GQA groups <= 8; the model has head_dim "
                            "{}, {} heads, {} KV heads",
                            hd, nh, nkv));
  cuda::check(cudaSetDevice(dev_), "cudaSetDevice");
  cudaDeviceProp prop{};
  cuda::check(cudaGetDeviceProperties(&prop, dev_), "cudaGetDeviceProperties");
  n_sms_ = prop.multiProcessorCount;
  stream_ = stream ? std::make_shared<cuda::Stream>(stream) : std::make_shared<cuda::Stream>();
  graphs_on_ = stream_->capturable();
  blas_ = std::make_unique<cuda::Blas>(stream_->get());
  w_ = upload_weights(cfg, w, dt_, keep_quant_, progress);
  ws_ = Workspace(cfg, dt_, n_sms_);
  plan_.allocate();
  // GPU sampling's buffers (kMaxSampleRows rows of the vocabulary, CUB's sort workspace):
  // made here so that a sampled step never allocates (or fails to) mid-generation.
  sampler_ = std::make_unique<cuda::GpuSampler>(kMaxSampleRows, cfg_.vocab_size, stream_->get());
  cuda::check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_->get())), "backend init");
  const Tuning tuning = read_tuning();  // docs/TUNING.md
  fuse_ = tuning.decode_fusion;
  qgemv_max_env_ = tuning.qgemv_max_tokens;
  if (tuning.cuda_profile) {
    prof_.enable();
    graphs_on_ = false;
  }
}

int CudaBackend::max_tokens() const noexcept { return kMaxTokens; }

cuda::DecodeTuning CudaBackend::decode_tuning() const noexcept { return {.fusion = fuse_ ? 1 : 0}; }

void CudaBackend::set_decode_tuning(const cuda::DecodeTuning& t) {
  if (t.fusion > 1)
    throw Error(ErrorCode::InvalidArgument, fmt::format("decode tuning: fusion {} (0 or 1)", t.fusion));
  std::lock_guard<std::mutex> lock(mu_);  // not while a forward uses the graphs
  cuda::check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_->get())), "decode tuning");
  graphs_.clear();
  if (t.fusion >= 0) fuse_ = t.fusion == 1;
}

double CudaBackend::time_graph_replay(int reps) {
  std::lock_guard<std::mutex> lock(mu_);
  return graphs_.time_last_replay(reps, stream_->get());
}

std::unique_ptr<KVStorage> CudaBackend::make_kv_storage(const KVGeometry& g) {
  if (g.int8 && g.head_dim != 64 && g.head_dim != 128)
    throw Error(ErrorCode::Unsupported,
                fmt::format("int8 KV storage (KVPrecision::Int8) on the CUDA backend needs head_dim 64 or 128, not {}",
                            g.head_dim));
  if (g.dtype != dt_ || g.n_layers != cfg_.n_layers || g.n_kv_heads != cfg_.n_kv_heads || g.head_dim != cfg_.head_dim)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("KV geometry ({} layers, {} KV heads, head_dim {}, {}) does not match the CUDA backend "
                            "({} layers, {} KV heads, head_dim {}, {})",
                            g.n_layers, g.n_kv_heads, g.head_dim, to_string(g.dtype), cfg_.n_layers, cfg_.n_kv_heads,
                            cfg_.head_dim, to_string(dt_)));
  cuda::check(cudaSetDevice(dev_), "cudaSetDevice");
  return std::make_unique<CudaKVStorage>(g, stream_);
}

void CudaBackend::forward(const ForwardPlan& plan, KVStorage& kv_base, Logits& out, const Cancel& cancel) {
  auto& kv = dynamic_cast<CudaKVStorage&>(kv_base);
  std::lock_guard<std::mutex> lock(mu_);  // workspaces are shared by every caller of the model
  if (plan.tokens.empty()) return;
  const int R = compute(plan, kv, cancel);
  auto s = static_cast<cudaStream_t>(stream_->get());
  // Logits of the rows that asked for them (the first chunk is already in ws_.logits).
  float* dst = out.mutable_data();
  const std::size_t V = std::size_t(cfg_.vocab_size);
  for (int c0 = 0; c0 < R; c0 += kLogitChunk) {
    const int rows = std::min(kLogitChunk, R - c0);
    if (c0 > 0) project(last_step_, c0, rows);
    cuda::check(cudaMemcpyAsync(dst + std::size_t(c0) * V, ws_.logits.get(), std::size_t(rows) * V * 4,
                                cudaMemcpyDeviceToHost, s),
                "logits download");
  }
  cuda::check(cudaStreamSynchronize(s), "forward");
}

bool CudaBackend::can_sample(std::span<const SamplerParams> rows) const noexcept {
  if (rows.empty() || rows.size() > std::size_t(kMaxSampleRows)) return false;
  return std::none_of(rows.begin(), rows.end(), [](const SamplerParams& p) {
    return p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f ||
           !p.logit_bias.empty();
  });
}

void CudaBackend::forward_sample(const ForwardPlan& plan, KVStorage& kv_base, std::span<const SamplerParams> rows,
                                 std::span<const std::uint64_t> counters, std::span<Sampled> out,
                                 const Cancel& cancel) {
  auto& kv = dynamic_cast<CudaKVStorage&>(kv_base);
  std::lock_guard<std::mutex> lock(mu_);
  if (plan.tokens.empty()) return;
  const int R = compute(plan, kv, cancel);  // R <= kMaxSampleRows <= kLogitChunk: all in ws_.logits
  if (R != int(rows.size()))
    throw Error(ErrorCode::Internal, fmt::format("forward_sample: {} logits rows for {} samplers", R, rows.size()));
  std::vector<cuda::RowSampling> rs(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    rs[i].temperature = rows[i].temperature;
    rs[i].top_k = rows[i].top_k;
    rs[i].top_p = rows[i].top_p;
    rs[i].min_p = rows[i].min_p;
    rs[i].seed = rows[i].seed;
    rs[i].counter = counters[i];
  }
  std::vector<std::int32_t> tokens(rows.size());
  std::vector<float> logprobs(rows.size());
  sampler_->sample(ws_.logits.as<float>(), R, rs.data(), tokens.data(), logprobs.data());
  for (std::size_t i = 0; i < rows.size(); ++i) out[i] = {tokens[i], logprobs[i]};
}

int CudaBackend::compute(const ForwardPlan& plan, CudaKVStorage& kv, const Cancel& cancel) {
  if (plan.tokens.size() > std::size_t(kMaxTokens))
    throw Error(
        ErrorCode::InvalidArgument,
        fmt::format("a CUDA forward step takes at most {} tokens; this batch has {}", kMaxTokens, plan.tokens.size()));
  if (plan.block_ids.size() > std::size_t(kMaxBlockIds))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("the step's block tables hold {} blocks, more than the {} the CUDA backend was sized for",
                            plan.block_ids.size(), kMaxBlockIds));
  cancel.check();
  cuda::check(cudaSetDevice(dev_), "cudaSetDevice");
  const PackedPlan packed =
      plan_.pack(plan, graphs_on_, dt_ == DType::F32, cfg_.n_kv_heads, n_sms_, stream_->get());
  Step st = packed.step;
  // int8 K/V are written by rope_kv (the fused QKV epilogue writes 16-bit K/V only).
  st.fused = fused_step(st.n) && !kv.geometry().int8;
  if (packed.graph) {
    const GraphCache::Key key =
        std::make_tuple(st.n, kv.k(0), kv.geometry().num_blocks, plan.block_size, st.splits, kv.geometry().int8);
    graphs_.run(key, stream_->get(), [&](bool capturing) { run(st, kv, capturing ? Cancel{} : cancel); });
  } else {
    run(st, kv, cancel);
    prof_.collect(st.n);
    graphs_.forget_last();
  }
  last_step_ = st;
  return packed.logit_rows;
}

}  // namespace vireo::detail::cuda_backend

namespace vireo::detail {

std::unique_ptr<Backend> make_cuda_backend(const ModelConfig& cfg, const Weights& w, int device_index, DType dtype,
                                           void* stream, bool quantized, const std::function<void(float)>& progress) {
  return std::make_unique<cuda_backend::CudaBackend>(cfg, w, device_index, dtype, stream, quantized, progress);
}

}  // namespace vireo::detail
