// The CUDA backend: the Llama forward pass of the CPU reference (src/cpu/cpu_backend.cpp) on
// one GPU, with weights and activations in bf16 / fp16 (fp32 accumulation everywhere) or fp32
// for testing. The device-resident paged K/V pool, CudaKVStorage, is in kv_storage_cuda.cpp.
//
// Load: every matrix is dequantized row by row (gguf::dequantize) and converted to the
// backend dtype once; Q/K/V are stacked into one [(nh + 2 nkv) hd, d] matrix and gate/up into
// one [2 d_ff, d] matrix so each needs one GEMM. Norm weights, biases and RoPE inverse
// frequencies stay fp32. All workspaces (sized for max_tokens() tokens), the plan buffers
// and the logits chunk are allocated here; forward() allocates nothing.
//
// forward(): the plan is packed into pinned memory and uploaded with one copy, then per layer
// fused add+RMSNorm -> QKV matmul -> bias+RoPE+KV write -> attention (split-KV decode kernel
// for sequences with one new token, tensor-core FlashAttention for prefill chunks; fp32 mode
// uses the decode kernel for every token) -> Wo -> add+RMSNorm -> gate/up matmul -> SwiGLU ->
// Wdown. Matmuls with <= 8 tokens use the GEMV kernel (gate/up fused with SwiGLU in
// gemv_swiglu), larger ones cuBLAS. The residual stream
// is fp32. Only the logit rows go through the final norm and the vocab projection (in chunks
// of 256 rows), and only those logits are copied back.
//
// Decode steps (each sequence has exactly one token, <= 64 tokens) are captured once per
// batch-size bucket {1, 2, 4, ..., 64}, KV pool and attention split count as a CUDA graph (at
// the key's second step; its first runs eagerly as a warm-up) and replayed: all plan data
// lives at fixed device addresses and is uploaded before the replay, tokens are padded to the
// bucket with slot -1 (no KV write) and kv_len 0. The split count depends on the bucket and
// the longest context rounded up to a power of two (each split takes ceil(kv_len / splits)
// keys on the device), so a handful of graphs serve every context length.
//
// Every kernel of a step is launched with programmatic dependent launch (cuda/launch.cuh).
// VIREO_CUDA_PROFILE=1 turns graphs off and prints per-stage GPU times (see mark()).
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <set>
#include <tuple>

#include "cpu/thread_pool.hpp"
#include "cuda_api.hpp"
#include "cuda_backend.hpp"
#include "kv_storage_cuda.hpp"
#include "model/backend.hpp"
#include "quant_weights.hpp"
#include "vireo/error.hpp"
#include "vireo/gguf.hpp"

namespace vireo::detail {
namespace {

constexpr int kMaxTokens = 4096;
constexpr int kLogitChunk = 256;
constexpr int kMaxSampleRows = 64;  // rows forward_sample samples on the GPU (<= kLogitChunk)
constexpr std::int64_t kMaxBlockIds = std::int64_t(1) << 22;
constexpr int kMaxGraphTokens = 64;

void cu(cudaError_t e, const char* what) { cuda::check(int(e), what); }
void ck(cuda::Status s, const char* what) { cuda::check(s, what); }

// ---- the plan on the device ------------------------------------------------------------------

/// Byte offsets of the plan arrays in one buffer, for n token slots (the step's tokens padded
/// to a graph bucket) and n_tiles prefill tiles. block_ids comes last: its length varies.
struct PlanLayout {
  std::size_t tokens, positions, kv_len, bt_off, dec_list, pf_list, tiles, logit_rows, slots, block_ids;
  PlanLayout(int n, int n_tiles) {
    std::size_t o = 0;
    auto take = [&o](std::size_t bytes) {
      std::size_t at = o;
      o += (bytes + 15) / 16 * 16;
      return at;
    };
    const std::size_t i4 = std::size_t(n) * 4;
    tokens = take(i4);
    positions = take(i4);
    kv_len = take(i4);
    bt_off = take(i4);
    dec_list = take(i4);
    pf_list = take(i4);
    tiles = take(std::size_t(std::max(n_tiles, 1)) * 12);
    logit_rows = take(i4);
    slots = take(std::size_t(n) * 8);
    block_ids = o;
  }
};

/// A weight matrix on the device: dense in the compute type, or (quant, gpu_quantized) its
/// GGUF quants in buf with scales and minimums beside them (quant_weights.hpp).
struct Mat {
  cuda::DeviceBuffer buf;
  cuda::DeviceBuffer scales, mins;  ///< quant only (mins: Q4_1)
  bool quant = false;
  cuda::QFormat fmt = cuda::QFormat::Q8_0;
  int rows = 0, cols = 0;
  const void* ptr() const noexcept { return buf.get(); }
  cuda::QuantView qview() const noexcept {
    cuda::QuantView v;
    v.fmt = fmt;
    v.qs = buf.as<std::uint8_t>();
    v.d = scales.as<std::uint16_t>();
    v.m = mins.as<std::uint16_t>();
    return v;
  }
};

struct Layer {
  cuda::DeviceBuffer attn_norm, ffn_norm, bqkv;
  Mat wqkv, wo, wgu, wdown;
};

// ---- the backend ---------------------------------------------------------------------------

class CudaBackend final : public Backend, public cuda::BackendControls {
 public:
  CudaBackend(const ModelConfig& cfg, const Weights& w, int device, DType dtype, void* stream, bool quantized)
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
    cu(cudaSetDevice(dev_), "cudaSetDevice");
    cudaDeviceProp prop{};
    cu(cudaGetDeviceProperties(&prop, dev_), "cudaGetDeviceProperties");
    n_sms_ = prop.multiProcessorCount;
    stream_ = stream ? std::make_shared<cuda::Stream>(stream) : std::make_shared<cuda::Stream>();
    graphs_on_ = stream_->capturable();
    blas_ = std::make_unique<cuda::Blas>(stream_->get());

    // Weights.
    tok_embd_ = upload({&w.tok_embd});
    output_norm_ = upload_f32(w.output_norm, cfg.d_model);
    if (!cfg.tied_embeddings && w.output && w.output.data != w.tok_embd.data) output_ = upload({&w.output});
    layers_.resize(std::size_t(cfg.n_layers));
    for (int l = 0; l < cfg.n_layers; ++l) {
      const LayerWeights& L = w.layers[std::size_t(l)];
      Layer& D = layers_[std::size_t(l)];
      D.attn_norm = upload_f32(L.attn_norm, cfg.d_model);
      D.ffn_norm = upload_f32(L.ffn_norm, cfg.d_model);
      D.wqkv = upload({&L.wq, &L.wk, &L.wv});
      D.wo = upload({&L.wo});
      D.wgu = upload({&L.w_gate, &L.w_up});
      D.wdown = upload({&L.w_down});
      if (L.bq || L.bk || L.bv) {
        std::vector<float> b(std::size_t((nh + 2 * nkv) * hd), 0.0f);
        auto put = [&](const WeightView& v, std::size_t at, std::size_t n) {
          if (v) gguf::dequantize(v.type, v.data, b.data() + at, n);
        };
        put(L.bq, 0, std::size_t(nh * hd));
        put(L.bk, std::size_t(nh * hd), std::size_t(nkv * hd));
        put(L.bv, std::size_t((nh + nkv) * hd), std::size_t(nkv * hd));
        D.bqkv = cuda::DeviceBuffer(b.size() * 4);
        D.bqkv.upload(b.data(), b.size() * 4);
      }
    }
    // RoPE inverse frequencies exactly as the CPU reference computes them.
    std::vector<float> inv(static_cast<std::size_t>(hd / 2));
    for (int i = 0; i < hd / 2; ++i) {
      inv[std::size_t(i)] = float(std::pow(double(cfg.rope_theta), -2.0 * i / hd));
      if (!w.rope_freqs.empty()) inv[std::size_t(i)] /= w.rope_freqs[std::size_t(i)];
    }
    inv_freq_ = cuda::DeviceBuffer(inv.size() * 4);
    inv_freq_.upload(inv.data(), inv.size() * 4);
    // Steps of more than qgemv_max_tokens() tokens dequantize a layer matrix here for cuBLAS.
    std::size_t deq = 0;
    for (const Layer& D : layers_)
      for (const Mat* m : {&D.wqkv, &D.wo, &D.wgu, &D.wdown})
        if (m->quant) {
          deq = std::max(deq, std::size_t(m->rows) * std::size_t(m->cols));
          layer_quant_ = true;
        }
    if (deq) deq_ = cuda::DeviceBuffer(deq * dtype_size(dt_));

    // Workspaces for kMaxTokens tokens.
    const std::size_t M = kMaxTokens, es = dtype_size(dt_);
    const std::size_t qkvw = std::size_t(nh + 2 * nkv) * hd, qd = std::size_t(nh) * hd;
    resid_ = cuda::DeviceBuffer(M * cfg.d_model * 4);
    xn_ = cuda::DeviceBuffer(M * cfg.d_model * es);
    qkv_ = cuda::DeviceBuffer(M * qkvw * es);
    q_ = cuda::DeviceBuffer(M * qd * es);
    attn_ = cuda::DeviceBuffer(M * qd * es);
    tmp_ = cuda::DeviceBuffer(M * cfg.d_model * es);
    gu_ = cuda::DeviceBuffer(M * 2 * std::size_t(cfg.d_ff) * es);
    h_ = cuda::DeviceBuffer(M * std::size_t(cfg.d_ff) * es);
    logits_ = cuda::DeviceBuffer(std::size_t(kLogitChunk) * cfg.vocab_size * 4);
    std::size_t ws = 0;
    for (int t = 1; t <= kMaxTokens; ++t)
      ws = std::max(ws, cuda::decode_attention_workspace_floats(t, nh, hd, cuda::decode_attention_splits(t, nkv, n_sms_)));
    attn_ws_ = cuda::DeviceBuffer(std::max<std::size_t>(ws, 1) * 4);
    attn_ws_.fill_bytes(0);  // split counters of the decode attention start (and stay) at zero
    const PlanLayout max_layout(kMaxTokens, kMaxTokens);
    plan_bytes_ = max_layout.block_ids + std::size_t(kMaxBlockIds) * 4;
    plan_dev_ = cuda::DeviceBuffer(plan_bytes_);
    plan_host_ = cuda::PinnedBuffer(plan_bytes_);
    // Graph steps use the layout of their bucket at the start of their own buffer, so a
    // captured graph's pointers never move.
    const PlanLayout graph_layout(kMaxGraphTokens, 1);
    graph_plan_bytes_ = graph_layout.block_ids + std::size_t(kMaxBlockIds) * 4;
    graph_plan_dev_ = cuda::DeviceBuffer(graph_plan_bytes_);
    // GPU sampling's buffers (kMaxSampleRows rows of the vocabulary, CUB's sort workspace):
    // made here so that a sampled step never allocates (or fails to) mid-generation.
    sampler_ = std::make_unique<cuda::GpuSampler>(kMaxSampleRows, cfg_.vocab_size, stream_->get());
    cu(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_->get())), "backend init");
    if (const char* e = std::getenv("VIREO_DECODE_FUSION");
        e && std::strlen(e) == 1 && e[0] >= '0' && e[0] <= '2') {
      fuse_ = e[0] - '0';
      fuse_max_tokens_ = cuda::GEMV_MAX_TOKENS;
    }
    if (const char* e = std::getenv("VIREO_WO_PREFETCH")) wo_prefetch_ = std::clamp(std::atoi(e), 0, 64);
    if (const char* e = std::getenv("VIREO_GEMV_DEPTH"); e && (e[0] == '1' || e[0] == '2') && !e[1]) gemv_depth_ = e[0] - '0';
    if (const char* e = std::getenv("VIREO_Q4_SCALE_AFTER"); e && std::strcmp(e, "1") == 0) q4_scale_after_ = true;
    if (const char* e = std::getenv("VIREO_ATTN_CLUSTER"); e && e[0] >= '0' && e[0] <= '2' && !e[1]) attn_cluster_ = e[0] - '0';
    if (const char* e = std::getenv("VIREO_CUDA_PROFILE"); e && std::strcmp(e, "1") == 0) {
      profile_on_ = true;
      graphs_on_ = false;
    }
  }

  ~CudaBackend() override {
    for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
    profile_report();
    for (cudaEvent_t e : prof_events_) cudaEventDestroy(e);
  }

  DType kv_dtype() const noexcept override { return dt_; }
  std::size_t weight_bytes() const noexcept override { return weight_bytes_; }
  void* stream() const noexcept override { return stream_->get(); }
  void set_graphs_enabled(bool on) noexcept override { graphs_on_ = on && stream_->capturable(); }
  int graphs_captured() const noexcept override { return int(graphs_.size()); }
  int max_tokens() const noexcept override { return kMaxTokens; }
  cuda::DecodeTuning decode_tuning() const noexcept override {
    return {.fusion = fuse_, .fusion_max_tokens = fuse_max_tokens_, .gemv_depth = gemv_depth_,
            .attn_cluster = attn_cluster_, .attn_split_keys = attn_split_keys_,
            .q4_scale_after = q4_scale_after_ ? 1 : 0};
  }
  void set_decode_tuning(const cuda::DecodeTuning& t) override {
    if (t.fusion > 2 || t.fusion_max_tokens > cuda::GEMV_MAX_TOKENS || t.gemv_depth == 0 || t.gemv_depth > 2 ||
        t.attn_cluster > 2 || t.q4_scale_after > 1 ||
        (t.attn_split_keys > 0 && (t.attn_split_keys < 32 || t.attn_split_keys > 1024)))
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("decode tuning: fusion {} (0, 1 or 2), fusion_max_tokens {} (<= {}), gemv_depth {} "
                              "(1 or 2), attn_cluster {} (0, 1 or 2), attn_split_keys {} (0 or 32..1024), "
                              "q4_scale_after {} (0 or 1)",
                              t.fusion, t.fusion_max_tokens, cuda::GEMV_MAX_TOKENS, t.gemv_depth, t.attn_cluster,
                              t.attn_split_keys, t.q4_scale_after));
    std::lock_guard<std::mutex> lock(mu_);  // not while a forward uses the graphs
    cu(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_->get())), "decode tuning");
    for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
    graphs_.clear();
    warmed_.clear();
    last_graph_ = nullptr;
    if (t.fusion >= 0) fuse_ = t.fusion;
    if (t.fusion_max_tokens >= 0) fuse_max_tokens_ = t.fusion_max_tokens;
    if (t.gemv_depth >= 0) gemv_depth_ = t.gemv_depth;
    if (t.attn_cluster >= 0) attn_cluster_ = t.attn_cluster;
    if (t.q4_scale_after >= 0) q4_scale_after_ = t.q4_scale_after == 1;
    if (t.attn_split_keys >= 0) attn_split_keys_ = t.attn_split_keys;
  }
  double time_graph_replay(int reps) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!last_graph_ || reps < 1) return -1.0;
    auto s = static_cast<cudaStream_t>(stream_->get());
    cudaEvent_t ev[2] = {nullptr, nullptr};
    cu(cudaEventCreate(&ev[0]), "cudaEventCreate");
    const cudaError_t e1 = cudaEventCreate(&ev[1]);
    float ms = 0.0f;
    cudaError_t e = e1;
    if (e == cudaSuccess) e = cudaEventRecord(ev[0], s);
    for (int i = 0; i < reps && e == cudaSuccess; ++i) e = cudaGraphLaunch(last_graph_, s);
    if (e == cudaSuccess) e = cudaEventRecord(ev[1], s);
    if (e == cudaSuccess) e = cudaEventSynchronize(ev[1]);
    if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, ev[0], ev[1]);
    cudaEventDestroy(ev[0]);
    if (ev[1]) cudaEventDestroy(ev[1]);
    cu(e, "graph replay timing");
    return double(ms) / reps;
  }

  std::unique_ptr<KVStorage> make_kv_storage(const KVGeometry& g) override {
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
    cu(cudaSetDevice(dev_), "cudaSetDevice");
    return std::make_unique<CudaKVStorage>(g, stream_);
  }

  void forward(const ForwardPlan& plan, KVStorage& kv_base, Logits& out, const std::atomic<bool>* cancel) override {
    auto& kv = dynamic_cast<CudaKVStorage&>(kv_base);
    std::lock_guard<std::mutex> lock(mu_);  // workspaces are shared by every caller of the model
    if (plan.tokens.empty()) return;
    const int R = compute(plan, kv, cancel);
    auto s = static_cast<cudaStream_t>(stream_->get());
    // Logits of the rows that asked for them (the first chunk is already in logits_).
    float* dst = out.mutable_data();
    const std::size_t V = std::size_t(cfg_.vocab_size);
    for (int c0 = 0; c0 < R; c0 += kLogitChunk) {
      const int rows = std::min(kLogitChunk, R - c0);
      if (c0 > 0) project(last_step_, c0, rows);
      cu(cudaMemcpyAsync(dst + std::size_t(c0) * V, logits_.get(), std::size_t(rows) * V * 4, cudaMemcpyDeviceToHost, s),
         "logits download");
    }
    cu(cudaStreamSynchronize(s), "forward");
  }

  bool can_sample(std::span<const SamplerParams> rows) const noexcept override {
    if (rows.empty() || rows.size() > std::size_t(kMaxSampleRows)) return false;
    return std::none_of(rows.begin(), rows.end(), [](const SamplerParams& p) {
      return p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
    });
  }

  void forward_sample(const ForwardPlan& plan, KVStorage& kv_base, std::span<const SamplerParams> rows,
                      std::span<const std::uint64_t> counters, std::span<Sampled> out,
                      const std::atomic<bool>* cancel) override {
    auto& kv = dynamic_cast<CudaKVStorage&>(kv_base);
    std::lock_guard<std::mutex> lock(mu_);
    if (plan.tokens.empty()) return;
    const int R = compute(plan, kv, cancel);  // R <= kMaxSampleRows <= kLogitChunk: all in logits_
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
    sampler_->sample(logits_.as<float>(), R, rs.data(), tokens.data(), logprobs.data());
    for (std::size_t i = 0; i < rows.size(); ++i) out[i] = {tokens[i], logprobs[i]};
  }

 private:
  /// Upload the plan and run every layer (eagerly or by graph replay); the first
  /// kLogitChunk logits rows end up in logits_ (not yet synchronised). Returns the number of
  /// logits rows. Caller holds mu_.
  int compute(const ForwardPlan& plan, CudaKVStorage& kv, const std::atomic<bool>* cancel) {
    const int T = int(plan.tokens.size());
    if (plan.tokens.size() > std::size_t(kMaxTokens))
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("a CUDA forward step takes at most {} tokens; this batch has {}", kMaxTokens, plan.tokens.size()));
    if (plan.block_ids.size() > std::size_t(kMaxBlockIds))
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("the step's block tables hold {} blocks, more than the {} the CUDA backend was sized for",
                              plan.block_ids.size(), kMaxBlockIds));
    if (cancel && cancel->load(std::memory_order_relaxed)) throw Error(ErrorCode::Cancelled, "forward cancelled");
    cu(cudaSetDevice(dev_), "cudaSetDevice");
    auto s = static_cast<cudaStream_t>(stream_->get());

    // Which sequences have a single new token (decode) and which a chunk (prefill).
    const int S = int(plan.block_indptr.size()) - 1;
    std::vector<int> per_seq(static_cast<std::size_t>(std::max(S, 0)), 0);
    for (int t = 0; t < T; ++t) ++per_seq[std::size_t(plan.seq_of[std::size_t(t)])];
    const bool all_decode = std::all_of(per_seq.begin(), per_seq.end(), [](int c) { return c == 1; });
    const int R = int(plan.logit_rows.size());
    const bool graph = graphs_on_ && all_decode && T <= kMaxGraphTokens;
    int n = T;
    if (graph) {
      n = 1;
      while (n < T) n *= 2;
    }

    // Pack the plan.
    std::vector<int> dec, pf, tiles;
    if (dt_ == DType::F32 || all_decode) {
      for (int t = 0; t < n; ++t) dec.push_back(t);
    } else {
      std::vector<std::vector<int>> chunk(static_cast<std::size_t>(S));
      for (int t = 0; t < T; ++t) {
        const int sq = plan.seq_of[std::size_t(t)];
        if (per_seq[std::size_t(sq)] == 1) dec.push_back(t);
        else chunk[std::size_t(sq)].push_back(t);
      }
      for (auto& c : chunk)
        for (std::size_t i = 0; i < c.size(); i += cuda::prefill_tile()) {
          tiles.push_back(int(pf.size()));
          tiles.push_back(int(std::min<std::size_t>(cuda::prefill_tile(), c.size() - i)));
          tiles.push_back(0);
          for (std::size_t j = i; j < std::min(c.size(), i + cuda::prefill_tile()); ++j) pf.push_back(c[j]);
        }
    }
    const int n_tiles = int(tiles.size() / 3);
    const PlanLayout lay = graph ? PlanLayout(kMaxGraphTokens, 1) : PlanLayout(n, n_tiles);
    char* h = static_cast<char*>(plan_host_.get());
    auto i32 = [&](std::size_t off) { return reinterpret_cast<std::int32_t*>(h + off); };
    for (int t = 0; t < n; ++t) {
      const bool real = t < T;
      i32(lay.tokens)[t] = real ? plan.tokens[std::size_t(t)] : 0;
      i32(lay.positions)[t] = real ? plan.positions[std::size_t(t)] : 0;
      i32(lay.kv_len)[t] = real ? plan.positions[std::size_t(t)] + 1 : 0;
      i32(lay.bt_off)[t] = real ? plan.block_indptr[std::size_t(plan.seq_of[std::size_t(t)])] : 0;
      reinterpret_cast<std::int64_t*>(h + lay.slots)[t] = real ? plan.slots[std::size_t(t)] : -1;
    }
    std::copy(dec.begin(), dec.end(), i32(lay.dec_list));
    std::copy(pf.begin(), pf.end(), i32(lay.pf_list));
    std::copy(tiles.begin(), tiles.end(), i32(lay.tiles));
    const int rows_run = graph ? n : R;  // a graph always projects its whole bucket
    for (int r = 0; r < rows_run; ++r) i32(lay.logit_rows)[r] = r < R ? plan.logit_rows[std::size_t(r)] : 0;
    std::copy(plan.block_ids.begin(), plan.block_ids.end(), i32(lay.block_ids));
    const std::size_t bytes = lay.block_ids + plan.block_ids.size() * 4;
    cuda::DeviceBuffer& dplan = graph ? graph_plan_dev_ : plan_dev_;
    cu(cudaMemcpyAsync(dplan.get(), h, bytes, cudaMemcpyHostToDevice, s), "plan upload");

    Step st;
    st.n = n;
    st.n_dec = int(dec.size());
    st.n_tiles = n_tiles;
    st.rows = rows_run;
    // Split-KV count from the longest decode context, rounded up to a power of two so a
    // captured graph (keyed by it) serves a whole range of context lengths.
    int max_kv = 1;
    for (int t : dec)
      if (t < T) max_kv = std::max(max_kv, plan.positions[std::size_t(t)] + 1);
    int kv_bucket = 1;
    while (kv_bucket < max_kv) kv_bucket *= 2;
    st.splits = cuda::decode_attention_splits(st.n_dec, cfg_.n_kv_heads, n_sms_, kv_bucket, attn_split_keys_);
    char* d = static_cast<char*>(dplan.get());
    auto d32 = [&](std::size_t off) { return reinterpret_cast<std::int32_t*>(d + off); };
    st.tokens = d32(lay.tokens);
    st.positions = d32(lay.positions);
    st.kv_len = d32(lay.kv_len);
    st.bt_off = d32(lay.bt_off);
    st.dec_list = d32(lay.dec_list);
    st.pf_list = d32(lay.pf_list);
    st.tiles = d32(lay.tiles);
    st.logit_rows = d32(lay.logit_rows);
    st.block_ids = d32(lay.block_ids);
    st.slots = reinterpret_cast<const std::int64_t*>(d + lay.slots);
    st.block_size = plan.block_size;
    // int8 K/V are written by rope_kv (the fused QKV epilogue writes 16-bit K/V only).
    st.fused = fused_step(st.n) && !kv.geometry().int8;

    // The pool's address and layout (int8 pools lay out, and run, differently: a freed pool's
    // address may come back as a pool of the other precision).
    const auto key =
        std::make_tuple(n, kv.k(0), kv.geometry().num_blocks, plan.block_size, st.splits, kv.geometry().int8);
    if (graph && !graphs_.count(key) && warmed_.insert(key).second) {
      // The first step of a bucket runs eagerly (same padded plan, same results): kernels are
      // loaded lazily and cuBLAS picks and sets up its kernels on first use, and none of that
      // should happen inside a stream capture. The bucket's next step is captured.
      run(st, kv, cancel);
      last_graph_ = nullptr;
    } else if (graph) {
      auto it = graphs_.find(key);
      if (it == graphs_.end()) {
        cu(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
        cudaGraph_t g = nullptr;
        try {
          run(st, kv, nullptr);
        } catch (...) {
          cudaStreamEndCapture(s, &g);
          if (g) cudaGraphDestroy(g);
          throw;
        }
        cu(cudaStreamEndCapture(s, &g), "cudaStreamEndCapture");
        cudaGraphExec_t exec = nullptr;
        cudaError_t e = cudaGraphInstantiate(&exec, g, 0);
        cudaGraphDestroy(g);
        cu(e, "cudaGraphInstantiate");
        it = graphs_.emplace(key, exec).first;
      }
      cu(cudaGraphLaunch(it->second, s), "cudaGraphLaunch");
      last_graph_ = it->second;
    } else {
      run(st, kv, cancel);
      profile_collect(st.n);
      last_graph_ = nullptr;
    }

    last_step_ = st;
    return R;
  }

  struct Step {
    int n = 0, n_dec = 0, n_tiles = 0, rows = 0, splits = 1, block_size = 16;
    bool fused = false;  ///< fused_step(n): norms, RoPE and residual adds inside the GEMVs
    const std::int32_t *tokens, *positions, *kv_len, *bt_off, *dec_list, *pf_list, *tiles, *logit_rows, *block_ids;
    const std::int64_t* slots;
  };

  void matmul(const void* x, const Mat& w, void* y, bool y_f32, int n) {
    if (w.quant) {
      void* s = stream_->get();
      if (n > qgemv_max_tokens(w.fmt) && std::size_t(w.rows) * std::size_t(w.cols) * dtype_size(dt_) <= deq_.size()) {
        ck(cuda::dequantize_q(dt_, w.qview(), deq_.get(), w.rows, w.cols, s), "dequantize");
        blas_->gemm(dt_, x, deq_.get(), y, y_f32, n, w.rows, w.cols);
        return;
      }
      // Decode, small batches, and the embedding-sized LM head (not worth a scratch copy):
      // GEMVs of up to GEMV_MAX_TOKENS tokens each.
      const std::size_t xs = std::size_t(w.cols) * dtype_size(dt_), ys = std::size_t(w.rows) * (y_f32 ? 4 : dtype_size(dt_));
      for (int t0 = 0; t0 < n; t0 += cuda::GEMV_MAX_TOKENS)
        ck(cuda::gemv_q(dt_, w.qview(), static_cast<const char*>(x) + std::size_t(t0) * xs,
                        static_cast<char*>(y) + std::size_t(t0) * ys, y_f32, std::min(cuda::GEMV_MAX_TOKENS, n - t0),
                        w.rows, w.cols, s, quant_extras()),
           "gemv (quantized)");
      return;
    }
    if (n <= cuda::GEMV_MAX_TOKENS)
      ck(cuda::gemv(dt_, w.ptr(), x, y, y_f32, n, w.rows, w.cols, stream_->get()), "gemv");
    else
      blas_->gemm(dt_, x, w.ptr(), y, y_f32, n, w.rows, w.cols);
  }

  /// Up to how many tokens a quantized matmul runs as GEMVs of GEMV_MAX_TOKENS tokens, each
  /// reading the quantized matrix once, rather than dequantizing it into deq_ for cuBLAS
  /// (which reads the quantized bytes, writes and reads 2 bytes per weight: ~4.6 bytes per
  /// weight for Q4, ~5.1 for Q8_0). k GEMV groups read k * 0.56 (Q4) or k * 1.06 (Q8_0)
  /// bytes per weight, so groups win in bytes up to ~64 (Q4) / ~32 (Q8_0) tokens; the
  /// defaults, 32 and 16, leave room for the GEMV's dequantization instructions.
  /// VIREO_QGEMV_MAX_TOKENS overrides both (8: dequantize for every step above the GEMV's).
  int qgemv_max_tokens(cuda::QFormat f) const noexcept {
    if (qgemv_max_env_ > 0) return qgemv_max_env_;
    return f == cuda::QFormat::Q8_0 ? 16 : 32;
  }

  /// Final norm of logit rows [c0, c0 + rows) (adding the last layer's FFN output) and the
  /// vocab projection into logits_.
  void project(const Step& st, int c0, int rows) {
    // A fused step has already added the last FFN output into the residual stream.
    ck(cuda::rmsnorm(dt_, st.fused ? nullptr : tmp_.get(), resid_.as<float>(), output_norm_.as<float>(), xn_.get(),
                     st.logit_rows + c0, rows, cfg_.d_model, cfg_.rms_eps, stream_->get()),
       "final rmsnorm");
    matmul(xn_.get(), output_.ptr() ? output_ : tok_embd_, logits_.get(), true, rows);
  }

  /// Whether a step of n tokens runs the fused decode path. Mode 1 (VIREO_DECODE_FUSION=1):
  /// RMSNorm folded into the QKV and gate/up GEMVs, RoPE + KV write into the QKV GEMV's
  /// epilogue, the residual adds into the Wo and down GEMVs' epilogues: 5 kernels per layer
  /// instead of 8. Mode 2 keeps the FFN RMSNorm a separate kernel (6 per layer).
  /// Default: mode 2 for batch-1 steps only. H100, Llama-3.1-8B bf16, context 512 (2026-11-26
  /// runs): batch 1 6.05 ms (mode 2) / 6.83 ms (mode 1) / 6.64 ms (unfused), and 5.97 / 6.18
  /// (mode 2 / unfused) in a later run. A mode 3 that had the last Wo CTA write the FFN norm
  /// (commit 3b12741, removed) took 6.48 ms against 6.10 for mode 2 in the same run: the
  /// gate/up CTAs' prefetch then no longer overlaps an HBM-idle kernel. At batch 8 mode 1 took
  /// 10.38 ms and mode 2 6.98 ms against 6.49 unfused, so larger steps stay unfused unless
  /// VIREO_DECODE_FUSION=1 or 2 asks for every step of up to GEMV_MAX_TOKENS tokens
  /// (VIREO_DECODE_FUSION=0: never).
  /// A mode 4 (commit 12cb228, removed) folded the FFN RMSNorm into a persistent gate/up GEMV
  /// (one wave of CTAs looping over the tiles, each normalizing once): H100, 8B batch 1,
  /// 6.93 ms against 5.66 for mode 2 in one process (2026-11-27); probably because one wave of
  /// 396 CTAs keeps too few loads in flight for the 235 MB gate/up matrix (not profiled).
  bool fused_step(int n) const noexcept {
    const int d = cfg_.d_model, qd = cfg_.n_heads * cfg_.head_dim;
    // Quantized layer matrices fuse too (same kernel, quantized weight load): cols % 32 == 0.
    const bool q_ok = !layer_quant_ || (d % 32 == 0 && qd % 32 == 0 && cfg_.d_ff % 32 == 0);
    return fuse_ != 0 && n <= fuse_max_tokens_ && q_ok && cuda::gemv_fused_supported(dt_, n, d, true) && cuda::gemv_fused_supported(dt_, n, qd, false) &&
           cuda::gemv_fused_supported(dt_, n, cfg_.d_ff, false) && cfg_.head_dim % 16 == 0;
  }

  /// Extras of an unfused quantized GEMV: the decode setting q4_scale_after.
  cuda::GemvExtras quant_extras() const noexcept {
    cuda::GemvExtras ex;
    ex.q4_scale_after = q4_scale_after_;
    return ex;
  }

  /// One fused decode GEMV (cuda::gemv_fused) over a 16-bit or a quantized matrix.
  cuda::Status fused(cuda::GemvEpilogue epi, bool norm, const Mat& w, const void* x, void* y, int n, int rows,
                     const cuda::GemvExtras& ex) {
    if (w.quant) {
      cuda::GemvExtras qex = ex;
      qex.q4_scale_after = q4_scale_after_;
      return cuda::gemv_fused(dt_, epi, norm, w.qview(), x, y, n, rows, w.cols, qex, stream_->get());
    }
    return cuda::gemv_fused(dt_, epi, norm, w.ptr(), x, y, n, rows, w.cols, ex, stream_->get());
  }

  /// Every kernel of one step, on stream_ (possibly under graph capture).
  void run(const Step& st, CudaKVStorage& kv, const std::atomic<bool>* cancel) {
    void* s = stream_->get();
    const int d = cfg_.d_model, nh = cfg_.n_heads, nkv = cfg_.n_kv_heads, hd = cfg_.head_dim;
    mark(nullptr);
    if (tok_embd_.quant)
      ck(cuda::embed_q(dt_, tok_embd_.qview(), st.tokens, resid_.as<float>(), st.n, d, s), "embed (quantized)");
    else
      ck(cuda::embed(dt_, tok_embd_.ptr(), st.tokens, resid_.as<float>(), st.n, d, s), "embed");
    mark("embed");
    for (int l = 0; l < cfg_.n_layers; ++l) {
      if (cancel && cancel->load(std::memory_order_relaxed)) throw Error(ErrorCode::Cancelled, "forward cancelled");
      const Layer& L = layers_[std::size_t(l)];
      cuda::RopeKVParams rp;
      rp.qkv = qkv_.get();
      rp.bias = L.bqkv.as<float>();
      rp.inv_freq = inv_freq_.as<float>();
      rp.q_out = q_.get();
      rp.k_cache = kv.k(l);
      rp.v_cache = kv.v(l);
      rp.k_scale = kv.k_scale(l);  // int8 K/V: quantized per row as they are written
      rp.v_scale = kv.v_scale(l);
      rp.positions = st.positions;
      rp.slots = st.slots;
      rp.n = st.n;
      rp.n_heads = nh;
      rp.n_kv_heads = nkv;
      rp.head_dim = hd;
      if (st.fused) {
        // The residual stream is already complete (the last GEMV added into it).
        cuda::GemvExtras ex;
        ex.resid = resid_.as<float>();
        ex.norm_w = L.attn_norm.as<float>();
        ex.eps = cfg_.rms_eps;
        ex.rope = rp;
        ck(fused(cuda::GemvEpilogue::RopeKV, true, L.wqkv, nullptr, nullptr, st.n, L.wqkv.rows, ex),
           "fused attn norm + qkv + rope");
        mark("norm+qkv+rope_kv");
      } else {
        // The previous layer's FFN output (tmp_) joins the residual here.
        ck(cuda::rmsnorm(dt_, l ? tmp_.get() : nullptr, resid_.as<float>(), L.attn_norm.as<float>(), xn_.get(), nullptr,
                         st.n, d, cfg_.rms_eps, s),
           "attn rmsnorm");
        mark("attn_norm");
        matmul(xn_.get(), L.wqkv, qkv_.get(), false, st.n);
        mark("qkv");
        ck(cuda::rope_kv(dt_, rp, s), "rope_kv");
        mark("rope_kv");
      }
      cuda::AttentionParams ap;
      ap.q = q_.get();
      ap.k_cache = kv.k(l);
      ap.v_cache = kv.v(l);
      ap.k_scale = kv.k_scale(l);
      ap.v_scale = kv.v_scale(l);
      ap.out = attn_.get();
      ap.kv_len = st.kv_len;
      ap.bt_off = st.bt_off;
      ap.block_ids = st.block_ids;
      ap.n_heads = nh;
      ap.n_kv_heads = nkv;
      ap.head_dim = hd;
      ap.block_size = st.block_size;
      ap.scale = 1.0f / std::sqrt(float(hd));
      // The cluster merge (AttentionParams::cluster_merge) pays off for steps of several
      // decode tokens only: H100, 2026-11-27, in one process each: batch 8 -0.8% (8B), -1.7%
      // (1B), -6% (SmolLM2 shape) per step; batch 1 +1.7% (8B) and +16% (SmolLM2: 16-CTA
      // clusters).
      ap.cluster_merge = attn_cluster_ == 1 || (attn_cluster_ == 2 && st.n_dec > 1);
      ck(cuda::decode_attention(dt_, ap, st.dec_list, st.n_dec, st.splits, attn_ws_.as<float>(), s), "decode attention");
      ck(cuda::prefill_attention(dt_, ap, st.pf_list, st.tiles, st.n_tiles, s), "prefill attention");
      mark("attention");
      if (st.fused) {
        // Wo follows decode attention, which hardly touches HBM: with PDL its CTAs are
        // resident early, and its first wave pulls its whole slice of Wo into L2 (within
        // 32 MiB; an 8B model's Wo is 32 MiB) while attention runs. H100, 8B batch 1: 6.06 ms
        // per token against 6.10 with one chunk, and 5.99 ms together with the attention
        // warm-up and 64-key splits; a confirmation run gave 5.97 against 5.99 for all three
        // against none: within noise, never slower. PDL itself is worth ~2% (6.10 ms with
        // VIREO_PDL=0). VIREO_WO_PREFETCH=k sets the depth.
        cuda::GemvExtras wo_ex;
        wo_ex.depth = gemv_depth_;
        wo_ex.prefetch_chunks =
            wo_prefetch_ >= 0 ? wo_prefetch_ : cuda::gemv_slice_prefetch_chunks(L.wo.rows, L.wo.cols, std::size_t(32) << 20);
        ck(fused(cuda::GemvEpilogue::Add, false, L.wo, attn_.get(), resid_.get(), st.n, L.wo.rows, wo_ex),
           "fused wo + residual");
        mark("wo+residual");
        cuda::GemvExtras ex;
        if (fuse_ == 1) {
          ex.resid = resid_.as<float>();
          ex.norm_w = L.ffn_norm.as<float>();
          ex.eps = cfg_.rms_eps;
          ck(fused(cuda::GemvEpilogue::SwiGLU, true, L.wgu, nullptr, h_.get(), st.n, cfg_.d_ff, ex),
             "fused ffn norm + gate/up + swiglu");
          mark("norm+gate_up+swiglu");
        } else {
          // Level 2: the gate/up GEMV has ~5x the CTAs of the QKV one, and each CTA of a fused
          // norm re-reads the residual and norm weights from L2; a separate RMSNorm (the
          // residual is already complete: no delta) may cost less.
          ck(cuda::rmsnorm(dt_, nullptr, resid_.as<float>(), L.ffn_norm.as<float>(), xn_.get(), nullptr, st.n, d,
                           cfg_.rms_eps, s),
             "ffn rmsnorm");
          mark("ffn_norm");
          ck(fused(cuda::GemvEpilogue::SwiGLU, false, L.wgu, xn_.get(), h_.get(), st.n, cfg_.d_ff, ex),
             "gate/up + swiglu");
          mark("gate_up+swiglu");
        }
        cuda::GemvExtras down_ex;
        down_ex.depth = gemv_depth_;
        ck(fused(cuda::GemvEpilogue::Add, false, L.wdown, h_.get(), resid_.get(), st.n, L.wdown.rows, down_ex),
           "fused down + residual");
        mark("down+residual");
        continue;
      }
      matmul(attn_.get(), L.wo, tmp_.get(), false, st.n);
      mark("wo");
      ck(cuda::rmsnorm(dt_, tmp_.get(), resid_.as<float>(), L.ffn_norm.as<float>(), xn_.get(), nullptr, st.n, d,
                       cfg_.rms_eps, s),
         "ffn rmsnorm");
      mark("ffn_norm");
      if (st.n <= cuda::GEMV_MAX_TOKENS) {
        // Decode: gate/up GEMV and SwiGLU in one kernel (no gu_ round trip, one launch less).
        if (L.wgu.quant)
          ck(cuda::gemv_swiglu_q(dt_, L.wgu.qview(), xn_.get(), h_.get(), st.n, cfg_.d_ff, L.wgu.cols, s, quant_extras()),
             "gemv_swiglu (quantized)");
        else
          ck(cuda::gemv_swiglu(dt_, L.wgu.ptr(), xn_.get(), h_.get(), st.n, cfg_.d_ff, L.wgu.cols, s), "gemv_swiglu");
      } else {
        matmul(xn_.get(), L.wgu, gu_.get(), false, st.n);
        ck(cuda::swiglu(dt_, gu_.get(), h_.get(), st.n, cfg_.d_ff, s), "swiglu");
      }
      mark("gate_up+swiglu");
      matmul(h_.get(), L.wdown, tmp_.get(), false, st.n);
      mark("down");
    }
    if (st.rows > 0) project(st, 0, std::min(st.rows, kLogitChunk));
    mark("final_norm+lm_head");
  }

  // ---- VIREO_CUDA_PROFILE=1: where an eager step's GPU time goes ----------------------------
  // CUDA graphs are off and an event is recorded after every stage of run(); the events break
  // the overlap of programmatic dependent launch, so the stages add up to a little more than
  // an unprofiled step. Totals per stage (summed over layers and steps) go to stderr when the
  // backend is destroyed. Not for production: every step synchronizes.
  void mark(const char* stage) {
    if (!profile_on_) return;
    if (!stage) prof_marks_.clear();
    if (prof_events_.size() <= prof_marks_.size()) {
      cudaEvent_t e = nullptr;
      cu(cudaEventCreate(&e), "cudaEventCreate");
      prof_events_.push_back(e);
    }
    cu(cudaEventRecord(prof_events_[prof_marks_.size()], static_cast<cudaStream_t>(stream_->get())), "cudaEventRecord");
    prof_marks_.push_back(stage ? stage : "");
  }
  void profile_collect(int n_tokens) {
    if (!profile_on_ || prof_marks_.size() < 2) return;
    cu(cudaEventSynchronize(prof_events_[prof_marks_.size() - 1]), "profile sync");
    Profile& pr = prof_[n_tokens];
    for (std::size_t i = 1; i < prof_marks_.size(); ++i) {
      float ms = 0.0f;
      cu(cudaEventElapsedTime(&ms, prof_events_[i - 1], prof_events_[i]), "cudaEventElapsedTime");
      auto it = std::find_if(pr.stages.begin(), pr.stages.end(), [&](const auto& e) { return e.first == prof_marks_[i]; });
      if (it == pr.stages.end()) pr.stages.emplace_back(prof_marks_[i], double(ms));
      else it->second += ms;
    }
    ++pr.steps;
    prof_marks_.clear();
  }
  void profile_report() const {
    for (const auto& [n, pr] : prof_) {
      double total = 0;
      for (const auto& e : pr.stages) total += e.second;
      std::fprintf(stderr, "vireo cuda profile: %d eager steps of %d tokens, %.3f ms per step\n", pr.steps, n,
                   total / pr.steps);
      for (const auto& e : pr.stages)
        std::fprintf(stderr, "  %-20s %9.3f ms/step  %5.1f%%\n", e.first.c_str(), e.second / pr.steps,
                     100.0 * e.second / total);
    }
  }

  /// Stack the matrices (same column count) row-wise, dequantize, convert to dt_, upload; with
  /// gpu_quantized, matrices whose parts share a Q8_0 / Q4_0 / Q4_1 type stay quantized.
  Mat upload(std::initializer_list<const WeightView*> parts) {
    if (keep_quant_) {
      cuda::QFormat f{};
      const WeightView* p0 = *parts.begin();
      bool same = p0 && *p0 && cuda::quant_format(p0->type, &f) && p0->cols % 32 == 0;
      for (const WeightView* p : parts) same = same && p && *p && p->type == p0->type && p->cols == p0->cols;
      if (same) return upload_quant(parts, f);
    }
    Mat m;
    m.cols = int((*parts.begin())->cols);
    for (const WeightView* p : parts) {
      if (!*p) throw Error(ErrorCode::InvalidModel, "a weight matrix the CUDA backend needs is missing");
      if (p->cols != m.cols)
        throw Error(ErrorCode::InvalidModel, fmt::format("stacked matrices have {} and {} columns", m.cols, p->cols));
      m.rows += int(p->rows);
    }
    const std::size_t es = dtype_size(dt_), row_bytes = std::size_t(m.cols) * es;
    m.buf = cuda::DeviceBuffer(row_bytes * std::size_t(m.rows));
    weight_bytes_ += m.buf.size();
    // Rows are converted in chunks of ~64 MiB of output, each chunk split over the host's
    // cores (an 8B model has 8e9 weights to dequantize and convert), then uploaded.
    const std::size_t chunk_rows = std::max<std::size_t>(1, (std::size_t(64) << 20) / row_bytes);
    std::vector<std::pair<const WeightView*, std::int64_t>> row_of;  // global row -> (part, row)
    row_of.reserve(std::size_t(m.rows));
    for (const WeightView* p : parts)
      for (std::int64_t r = 0; r < p->rows; ++r) row_of.emplace_back(p, r);
    std::vector<char> staging(std::min(chunk_rows, row_of.size()) * row_bytes);
    cpu::ThreadPool pool(int(std::max(1u, std::thread::hardware_concurrency())));
    for (std::size_t c0 = 0; c0 < row_of.size(); c0 += chunk_rows) {
      const std::size_t n = std::min(row_of.size(), c0 + chunk_rows) - c0;
      pool.parallel_for(std::int64_t(n), [&](std::int64_t i0, std::int64_t i1) {
        std::vector<float> f(static_cast<std::size_t>(m.cols));
        for (std::int64_t i = i0; i < i1; ++i) {
          const auto [p, r] = row_of[c0 + std::size_t(i)];
          gguf::dequantize(p->type, p->row(r), f.data(), f.size());
          cuda::convert_from_f32(dt_, f.data(), staging.data() + std::size_t(i) * row_bytes, f.size());
        }
      });
      m.buf.upload(staging.data(), n * row_bytes, c0 * row_bytes);
    }
    return m;
  }

  /// The GGUF blocks of the parts, stacked row-wise, split into quants / scales / minimums.
  Mat upload_quant(std::initializer_list<const WeightView*> parts, cuda::QFormat f) {
    Mat m;
    m.quant = true;
    m.fmt = f;
    m.cols = int((*parts.begin())->cols);
    for (const WeightView* p : parts) m.rows += int(p->rows);
    const std::size_t nb = std::size_t(m.cols) / 32, qb = std::size_t(cuda::quant_block_bytes(f));
    const bool has_min = cuda::quant_has_min(f);
    m.buf = cuda::DeviceBuffer(std::size_t(m.rows) * nb * qb);
    m.scales = cuda::DeviceBuffer(std::size_t(m.rows) * nb * 2);
    if (has_min) m.mins = cuda::DeviceBuffer(std::size_t(m.rows) * nb * 2);
    weight_bytes_ += m.buf.size() + m.scales.size() + m.mins.size();
    const std::int64_t chunk_rows = std::max<std::int64_t>(1, std::int64_t((std::size_t(64) << 20) / (nb * qb)));
    std::vector<std::uint8_t> qs;
    std::vector<std::uint16_t> d, mn;
    std::int64_t row0 = 0;  // first row of the current part in the stacked matrix
    for (const WeightView* p : parts) {
      for (std::int64_t r = 0; r < p->rows; r += chunk_rows) {
        const std::int64_t n = std::min(chunk_rows, p->rows - r);
        qs.resize(std::size_t(n) * nb * qb);
        d.resize(std::size_t(n) * nb);
        mn.resize(has_min ? std::size_t(n) * nb : 0);
        cuda::repack_quant_rows(p->type, p->row(r), n, m.cols, qs.data(), d.data(), has_min ? mn.data() : nullptr);
        const std::size_t at = std::size_t(row0 + r) * nb;
        m.buf.upload(qs.data(), qs.size(), at * qb);
        m.scales.upload(d.data(), d.size() * 2, at * 2);
        if (has_min) m.mins.upload(mn.data(), mn.size() * 2, at * 2);
      }
      row0 += p->rows;
    }
    return m;
  }

  cuda::DeviceBuffer upload_f32(const WeightView& v, int n) {
    if (!v || v.rows * v.cols != n)
      throw Error(ErrorCode::InvalidModel, fmt::format("norm weight has {} elements, expected {}", v.rows * v.cols, n));
    std::vector<float> f(static_cast<std::size_t>(n));
    gguf::dequantize(v.type, v.data, f.data(), f.size());
    cuda::DeviceBuffer b(f.size() * 4);
    b.upload(f.data(), f.size() * 4);
    weight_bytes_ += b.size();
    return b;
  }

  ModelConfig cfg_;
  int dev_;
  DType dt_;
  int n_sms_ = 1;
  std::size_t weight_bytes_ = 0;
  std::shared_ptr<cuda::Stream> stream_;
  std::unique_ptr<cuda::Blas> blas_;
  Mat tok_embd_, output_;
  cuda::DeviceBuffer output_norm_, inv_freq_;
  std::vector<Layer> layers_;
  cuda::DeviceBuffer resid_, xn_, qkv_, q_, attn_, tmp_, gu_, h_, logits_, attn_ws_;
  std::size_t plan_bytes_ = 0, graph_plan_bytes_ = 0;
  cuda::DeviceBuffer plan_dev_, graph_plan_dev_;
  cuda::PinnedBuffer plan_host_;
  std::mutex mu_;
  Step last_step_{};  // the step compute() ran, for projecting further logits chunks
  std::unique_ptr<cuda::GpuSampler> sampler_;
  bool graphs_on_ = true;
  bool profile_on_ = false;  ///< VIREO_CUDA_PROFILE=1 (see mark())
  int fuse_ = 2;             ///< fused decode mode 1 or 2 (see fused_step()); 0 = off
  int wo_prefetch_ = -1;     ///< VIREO_WO_PREFETCH: the fused Wo GEMV's prefetch depth (< 0: its whole slice)
  /// The fused Wo and down GEMVs keep two weight chunks per warp in flight (their grids have
  /// <= 2 CTAs per SM at batch 1, so the 128 registers cost no occupancy); VIREO_GEMV_DEPTH=1
  /// keeps one. H100, 2026-11-27, medians of 5 interleaved rounds, 8B batch 1:
  /// 5.625 against 5.663 ms per step, then in two later runs (fresh machines) +0.56%
  /// and -0.51%; SmolLM2 shape -0.8 to -1.8%; batch 8 unchanged; BM_gemv_fused 4096x4096 12.9 against
  /// 16.3 us, 4096x14336 39.4 against 45.7 us (weights streamed from HBM).
  int gemv_depth_ = 2;
  /// Decode attention's splits merge inside a thread-block cluster: 0 never, 1 always, 2 (the
  /// default) for steps of more than one decode token (VIREO_ATTN_CLUSTER; see run()).
  int attn_cluster_ = 2;
  /// VIREO_Q4_SCALE_AFTER=1: Q4_0 GEMVs apply each block's scale after the MMA
  /// (GemvExtras::q4_scale_after). Written 2026-11-27 without a GPU; off until measured.
  bool q4_scale_after_ = false;
  /// Fewest keys per split-KV split (0: VIREO_ATTN_SPLIT_KEYS, default 128; DecodeTuning).
  int attn_split_keys_ = 0;
  int fuse_max_tokens_ = 1;  ///< largest step fused: 1 by default, GEMV_MAX_TOKENS when VIREO_DECODE_FUSION is set
  int qgemv_max_env_ = [] {  ///< VIREO_QGEMV_MAX_TOKENS (0: per-format default)
    const char* e = std::getenv("VIREO_QGEMV_MAX_TOKENS");
    return e ? std::max(0, std::atoi(e)) : 0;
  }();
  bool keep_quant_ = false;  ///< ModelOptions::gpu_quantized (16-bit compute types only)
  bool layer_quant_ = false; ///< a layer matrix stayed quantized (needs cols % 32 to fuse)
  cuda::DeviceBuffer deq_;   ///< dequantized layer matrix for cuBLAS steps (quantized models)
  std::vector<cudaEvent_t> prof_events_;
  std::vector<std::string> prof_marks_;
  struct Profile {
    std::vector<std::pair<std::string, double>> stages;  ///< ms summed over steps, in run() order
    int steps = 0;
  };
  std::map<int, Profile> prof_;  ///< by tokens per step (padded to the graph bucket)
  /// bucket, KV pool, blocks, block size, splits, int8 K/V
  using GraphKey = std::tuple<int, void*, std::int64_t, int, int, bool>;
  std::map<GraphKey, cudaGraphExec_t> graphs_;
  cudaGraphExec_t last_graph_ = nullptr;  ///< the graph the last step replayed (owned by graphs_), or none
  std::set<GraphKey> warmed_;  ///< buckets run once eagerly
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const ModelConfig& cfg, const Weights& w, int device_index, DType dtype,
                                           void* stream, bool quantized) {
  return std::make_unique<CudaBackend>(cfg, w, device_index, dtype, stream, quantized);
}

}  // namespace vireo::detail
