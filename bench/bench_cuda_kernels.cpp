// CUDA kernel benchmarks (Google Benchmark, manual timing from CUDA events around each
// launch, on a dedicated stream). Byte counters are the compulsory DRAM traffic of the op
// (weights / KV read once, activations read and written once), so the reported bytes_per_second
// is the achieved bandwidth to compare with the HBM peak (H100 SXM ~3.35 TB/s, H200 ~4.8 TB/s);
// FLOP counters are reported as TFLOP/s ("flops" rate counter). Without a GPU every benchmark
// reports an error instead of timing.
#include <benchmark/benchmark.h>

#ifdef VIREO_WITH_CUDA
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "cuda_api.hpp"
#include "quant_weights.hpp"
#include "vireo/device.hpp"

namespace {

// The card and the commit in the JSON's context (bench/results/ files must say both):
// VIREO_COMMIT is exported by scripts/gpu-check.sh from the commit the binaries were built at.
const bool kContextAdded = [] {
  const char* commit = std::getenv("VIREO_COMMIT");
  benchmark::AddCustomContext("vireo_commit", commit ? commit : "unknown");
  std::string why;
  benchmark::AddCustomContext("gpu", vireo::Device::cuda_device_count(&why) > 0 ? vireo::Device::cuda(0).name()
                                                                                 : "none (" + why + ")");
  return true;
}();

namespace vc = vireo::cuda;
using vireo::DType;

bool gpu_or_skip(benchmark::State& state) {
  std::string why;
  if (vc::device_count(&why) > 0) return true;
  state.SkipWithError(("no CUDA device: " + why).c_str());
  return false;
}

/// Random 16-bit (bf16) contents: speed does not depend on the values, NaN-free is enough.
/// A 64K-value random pool is tiled over the buffer: drawing every value of a 117M-element
/// weight with mt19937 took seconds per benchmark run, and Google Benchmark runs each case
/// several times.
std::vector<vc::DeviceBuffer> random_bf16_copies(std::size_t n, std::uint32_t seed, int copies) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<std::uint16_t> pool(std::size_t(1) << 16);
  for (auto& x : pool) x = vc::float_to_bf16(u(rng));
  std::vector<std::uint16_t> h(n);
  for (std::size_t i = 0; i < n; i += pool.size())
    std::copy_n(pool.begin(), std::min(pool.size(), n - i), h.begin() + std::ptrdiff_t(i));
  std::vector<vc::DeviceBuffer> bs;
  for (int c = 0; c < copies; ++c) {
    bs.emplace_back(std::max<std::size_t>(n * 2, 16));
    bs.back().upload(h.data(), n * 2);
  }
  return bs;
}
vc::DeviceBuffer random_bf16(std::size_t n, std::uint32_t seed) { return std::move(random_bf16_copies(n, seed, 1)[0]); }

/// Copies of a weight of `bytes` that time_loop_hbm cycles through: together at least 192 MiB,
/// ~4x an H100's 50 MB L2 (and > 2x an H200's 60 MB), so every launch streams its weight
/// from HBM as in a decode step; 2 to 64.
int hbm_copies(std::size_t bytes) {
  const std::size_t want = (std::size_t(192) << 20) / std::max<std::size_t>(bytes, 1) + 1;
  return int(std::clamp<std::size_t>(want, 2, 64));
}
template <typename U>
vc::DeviceBuffer upload(const std::vector<U>& v) {
  vc::DeviceBuffer b(std::max<std::size_t>(v.size() * sizeof(U), 16));
  b.upload(v.data(), v.size() * sizeof(U));
  return b;
}

/// Time each launch with CUDA events. A launch or CUDA failure (vireo::Error) marks this
/// benchmark as failed instead of escaping: Google Benchmark does not catch exceptions, so one
/// bad kernel would otherwise abort every benchmark after it.
template <typename F>
void time_loop(benchmark::State& state, vc::Stream& stream, F&& launch) {
  try {
    vc::EventTimer timer;
    for (int i = 0; i < 3; ++i) launch();  // warm-up
    stream.synchronize();
    for (auto _ : state) {
      timer.start(stream.get());
      launch();
      state.SetIterationTime(double(timer.stop(stream.get())) / 1e3);
    }
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

/// Decode-GEMV timing as a decode step sees it: batches of kBatch launches back to back
/// between two events (the launch latency amortized, as under a CUDA graph; with PDL each
/// launch's prologue overlaps the previous one as in the model), launch(c) running on weight
/// copy c of `copies` in turn, so no launch finds its weights in L2. The time reported is per
/// launch. (Until 2026-11-26 the GEMV benchmarks timed one launch on one weight: launch
/// latency included, and a weight of <= 50 MB served from L2 after the first launch.)
template <typename F>
void time_loop_hbm(benchmark::State& state, vc::Stream& stream, int copies, F&& launch) {
  constexpr int kBatch = 8;
  try {
    vc::EventTimer timer;
    for (int c = 0; c < copies; ++c) launch(c);  // warm-up
    stream.synchronize();
    int next = 0;
    for (auto _ : state) {
      timer.start(stream.get());
      for (int k = 0; k < kBatch; ++k) launch(next++ % copies);
      state.SetIterationTime(double(timer.stop(stream.get())) / 1e3 / kBatch);
    }
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// Decode GEMV, bf16: args (rows, cols, tokens). Llama-3-8B shapes: 4096x4096 (Wo), 28672x4096
// (gate+up), 4096x14336 (down); 576-wide SmolLM2.
void BM_gemv_bf16(benchmark::State& state) {
  if (!gpu_or_skip(state)) return;
  const int rows = int(state.range(0)), cols = int(state.range(1)), n = int(state.range(2));
  vc::Stream stream;
  const int copies = hbm_copies(std::size_t(rows) * cols * 2);
  auto w = random_bf16_copies(std::size_t(rows) * cols, 1, copies);
  auto x = random_bf16(std::size_t(n) * cols, 2);
  vc::DeviceBuffer y(std::size_t(n) * rows * 2);
  time_loop_hbm(state, stream, copies, [&](int c) {
    vc::check(vc::gemv(DType::BF16, w[std::size_t(c)].get(), x.get(), y.get(), false, n, rows, cols, stream.get()), "gemv");
  });
  state.SetBytesProcessed(state.iterations() * (std::int64_t(rows) * cols * 2 + std::int64_t(n) * (cols + rows) * 2));
  state.counters["flops"] = benchmark::Counter(double(state.iterations()) * 2.0 * rows * cols * n, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_gemv_bf16)->Args({4096, 4096, 1})->Args({6144, 4096, 1})->Args({28672, 4096, 1})->Args({4096, 14336, 1})
    ->Args({128256, 4096, 1})->Args({4096, 4096, 8})->Args({28672, 4096, 8})->Args({4096, 14336, 8})
    ->Args({1728, 576, 1})->Args({49152, 576, 1})->Args({32768, 8192, 1})->UseManualTime()->Unit(benchmark::kMicrosecond);

// Fused gate/up GEMV + SwiGLU (decode FFN), bf16: args (ff, cols, tokens). Llama-3-8B: 14336 x 4096
// (a [28672, 4096] stacked matrix). Compare with BM_gemv_bf16/28672/4096 + a swiglu launch.
void BM_gemv_swiglu_bf16(benchmark::State& state) {
  if (!gpu_or_skip(state)) return;
  const int ff = int(state.range(0)), cols = int(state.range(1)), n = int(state.range(2));
  vc::Stream stream;
  const int copies = hbm_copies(std::size_t(2) * ff * cols * 2);
  auto w = random_bf16_copies(std::size_t(2) * ff * cols, 1, copies);
  auto x = random_bf16(std::size_t(n) * cols, 2);
  vc::DeviceBuffer h(std::size_t(n) * ff * 2);
  time_loop_hbm(state, stream, copies, [&](int c) {
    vc::check(vc::gemv_swiglu(DType::BF16, w[std::size_t(c)].get(), x.get(), h.get(), n, ff, cols, stream.get()),
              "gemv_swiglu");
  });
  state.SetBytesProcessed(state.iterations() * (std::int64_t(2) * ff * cols * 2 + std::int64_t(n) * (cols + ff) * 2));
  state.counters["flops"] = benchmark::Counter(double(state.iterations()) * 4.0 * ff * cols * n, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_gemv_swiglu_bf16)->Args({14336, 4096, 1})->Args({14336, 4096, 8})->Args({1536, 576, 1})
    ->UseManualTime()->Unit(benchmark::kMicrosecond);

// The fused decode GEMVs of the batch-1 step, bf16, weights from HBM: args (kind, rows, cols,
// depth). Kind 0: Add epilogue (Wo, down: y is the fp32 residual) with `depth` weight chunks
// per warp in flight (GemvExtras::depth; H100 2026-11-27: 4096x4096 12.9 us at depth 2
// against 16.3 at 1, 4096x14336 39.4 against 45.7); kind 1: norm + gate/up + SwiGLU (rows =
// ff; fused mode 1; depth unused), against BM_gemv_swiglu_bf16 plus BM_rmsnorm/1/4096 for
// mode 2.
void BM_gemv_fused(benchmark::State& state) {
  if (!gpu_or_skip(state)) return;
  const int kind = int(state.range(0)), rows = int(state.range(1)), cols = int(state.range(2));
  const int wrows = kind == 1 ? 2 * rows : rows;
  vc::Stream stream;
  const int copies = hbm_copies(std::size_t(wrows) * cols * 2);
  auto w = random_bf16_copies(std::size_t(wrows) * cols, 1, copies);
  auto x = random_bf16(std::size_t(cols), 2);
  vc::DeviceBuffer resid(std::size_t(std::max(rows, cols)) * 4), y(std::size_t(rows) * 2);
  resid.fill_bytes(0);
  const vc::DeviceBuffer norm_w = upload(std::vector<float>(std::size_t(cols), 1.0f));
  vc::GemvExtras ex;
  if (kind == 0) {
    ex.depth = int(state.range(3));
  } else {
    ex.resid = resid.as<float>();
    ex.norm_w = norm_w.as<float>();
    ex.eps = 1e-5f;
  }
  time_loop_hbm(state, stream, copies, [&](int c) {
    const vc::Status st =
        kind == 0 ? vc::gemv_fused(DType::BF16, vc::GemvEpilogue::Add, false, w[std::size_t(c)].get(), x.get(),
                                   resid.get(), 1, rows, cols, ex, stream.get())
                  : vc::gemv_fused(DType::BF16, vc::GemvEpilogue::SwiGLU, true, w[std::size_t(c)].get(), nullptr,
                                   y.get(), 1, rows, cols, ex, stream.get());
    vc::check(st, "gemv_fused");
  });
  state.SetBytesProcessed(state.iterations() * std::int64_t(wrows) * cols * 2);
}
BENCHMARK(BM_gemv_fused)->Args({0, 4096, 4096, 1})->Args({0, 4096, 4096, 2})->Args({0, 4096, 14336, 1})
    ->Args({0, 4096, 14336, 2})->Args({1, 14336, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);

// Decode GEMV over quantized weights kept in their GGUF blocks (ModelOptions::gpu_quantized),
// bf16 activations: args (format: 0 Q8_0, 1 Q4_0, 2 Q4_1; rows; cols; tokens). Bytes are the
// quantized matrix (quants + fp16 scales / minimums) plus x and y: read bytes_per_second
// against BM_gemv_bf16's, the time against its time (a Q4 matrix is ~3.5x fewer bytes).
void BM_gemv_q(benchmark::State& state) {
  if (!gpu_or_skip(state)) return;
  const auto fmt = vc::QFormat(state.range(0));
  const int rows = int(state.range(1)), cols = int(state.range(2)), n = int(state.range(3));
  vc::Stream stream;
  const std::size_t blocks = std::size_t(rows) * std::size_t(cols / 32);
  // Any bytes are valid quants (a 64 KiB random pool tiled over the matrix, as random_bf16
  // does); scales / minimums fp16 0.01 (0x211F) keep the sums finite.
  std::vector<std::uint8_t> qs(blocks * std::size_t(vc::quant_block_bytes(fmt))), pool(std::size_t(1) << 16);
  std::mt19937 rng(7);
  for (auto& b : pool) b = std::uint8_t(rng());
  for (std::size_t i = 0; i < qs.size(); i += pool.size())
    std::copy_n(pool.begin(), std::min(pool.size(), qs.size() - i), qs.begin() + std::ptrdiff_t(i));
  const std::vector<std::uint16_t> sc(blocks, 0x211F);
  auto x = random_bf16(std::size_t(n) * cols, 2);
  vc::DeviceBuffer y(std::size_t(n) * rows * 2);
  // Quantized matrices are 2-4x smaller than bf16 ones: the whole matrix (quants, scales,
  // minimums) is copied hbm_copies times, each launch reading the next copy.
  const int copies = hbm_copies(qs.size() + sc.size() * 4);
  std::vector<vc::DeviceBuffer> cqs, cd, cm;
  std::vector<vc::QuantView> views;
  for (int c = 0; c < copies; ++c) {
    cqs.emplace_back(qs.size());
    cd.emplace_back(sc.size() * 2);
    cm.emplace_back(sc.size() * 2);
    cqs.back().upload(qs.data(), qs.size());
    cd.back().upload(sc.data(), sc.size() * 2);
    cm.back().upload(sc.data(), sc.size() * 2);
    vc::QuantView v;
    v.fmt = fmt;
    v.qs = cqs.back().as<std::uint8_t>();
    v.d = cd.back().as<std::uint16_t>();
    v.m = cm.back().as<std::uint16_t>();
    views.push_back(v);
  }
  time_loop_hbm(state, stream, copies, [&](int c) {
    vc::check(vc::gemv_q(DType::BF16, views[std::size_t(c)], x.get(), y.get(), false, n, rows, cols, stream.get()),
              "gemv_q");
  });
  const std::int64_t wbytes = std::int64_t(blocks) * (vc::quant_block_bytes(fmt) + (vc::quant_has_min(fmt) ? 4 : 2));
  state.SetBytesProcessed(state.iterations() * (wbytes + std::int64_t(n) * (cols + rows) * 2));
}
BENCHMARK(BM_gemv_q)->Args({1, 4096, 4096, 1})->Args({1, 6144, 4096, 1})->Args({1, 28672, 4096, 1})
    ->Args({1, 4096, 14336, 1})->Args({1, 128256, 4096, 1})->Args({0, 28672, 4096, 1})
    ->Args({2, 28672, 4096, 1})->Args({1, 28672, 4096, 8})->Args({2, 1728, 576, 1})
    ->UseManualTime()->Unit(benchmark::kMicrosecond);

// GEMM through cuBLAS, bf16 in / fp32 accumulate: args (tokens, rows, cols). Prefill shapes
// (compute-bound: read the TFLOP/s) and batched-decode shapes at 16 and 64 tokens, Llama-3-8B
// Wqkv / gate+up / down / LM head (memory-bound: read bytes_per_second against the GEMV's).
void BM_gemm_bf16(benchmark::State& state) {
  if (!gpu_or_skip(state)) return;
  const int T = int(state.range(0)), rows = int(state.range(1)), cols = int(state.range(2));
  vc::Stream stream;
  vc::Blas blas(stream.get());
  auto w = random_bf16(std::size_t(rows) * cols, 1), x = random_bf16(std::size_t(T) * cols, 2);
  vc::DeviceBuffer y(std::size_t(T) * rows * 2);
  time_loop(state, stream, [&] { blas.gemm(DType::BF16, x.get(), w.get(), y.get(), false, T, rows, cols); });
  state.SetBytesProcessed(state.iterations() * (std::int64_t(rows) * cols + std::int64_t(T) * (cols + rows)) * 2);
  state.counters["flops"] = benchmark::Counter(double(state.iterations()) * 2.0 * T * rows * cols, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_gemm_bf16)->Args({2048, 4096, 4096})->Args({2048, 28672, 4096})->Args({512, 4096, 14336})
    ->Args({64, 6144, 4096})->Args({64, 28672, 4096})->Args({64, 4096, 14336})->Args({64, 128256, 4096})
    ->Args({16, 6144, 4096})->Args({16, 28672, 4096})->Args({16, 4096, 14336})->Args({16, 128256, 4096})
    ->UseManualTime()->Unit(benchmark::kMicrosecond);

// Fused residual add + RMSNorm, bf16 out: args (rows, cols).
void BM_rmsnorm(benchmark::State& state) {
  if (!gpu_or_skip(state)) return;
  const int rows = int(state.range(0)), cols = int(state.range(1));
  vc::Stream stream;
  auto delta = random_bf16(std::size_t(rows) * cols, 3);
  vc::DeviceBuffer resid(std::size_t(rows) * cols * 4), y(std::size_t(rows) * cols * 2);
  std::vector<float> w(std::size_t(cols), 1.0f);
  auto dw = upload(w);
  resid.fill_bytes(0);
  time_loop(state, stream, [&] {
    vc::check(vc::rmsnorm(DType::BF16, delta.get(), resid.as<float>(), dw.as<float>(), y.get(), nullptr, rows, cols, 1e-5f,
                          stream.get()),
              "rmsnorm");
  });
  // delta read (2 B), residual read + written (8 B), output written (2 B) per element.
  state.SetBytesProcessed(state.iterations() * std::int64_t(rows) * cols * 12);
}
BENCHMARK(BM_rmsnorm)->Args({1, 4096})->Args({8, 4096})->Args({64, 4096})->Args({2048, 4096})->Args({2048, 576})
    ->UseManualTime()->Unit(benchmark::kMicrosecond);

/// A paged cache holding `batch` sequences of `ctx` tokens each (bf16, block size 16).
struct PagedCache {
  vc::DeviceBuffer k, v, kv_len, bt_off, block_ids, list;
  PagedCache(int batch, int ctx, int nkv, int hd, int q_per_seq) {
    const int bs = 16, blocks_per_seq = (ctx + bs - 1) / bs;
    const std::size_t slots = std::size_t(batch) * blocks_per_seq * bs;
    k = random_bf16(slots * nkv * hd, 4);
    v = random_bf16(slots * nkv * hd, 5);
    std::vector<std::int32_t> ids(std::size_t(batch) * blocks_per_seq), len, off, lst;
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), std::mt19937(6));
    for (int s = 0; s < batch; ++s)
      for (int i = ctx - q_per_seq; i < ctx; ++i) {
        lst.push_back(std::int32_t(len.size()));
        len.push_back(i + 1);
        off.push_back(s * blocks_per_seq);
      }
    kv_len = upload(len);
    bt_off = upload(off);
    block_ids = upload(ids);
    list = upload(lst);
  }
  vc::AttentionParams params(const void* q, void* out, int nh, int nkv, int hd) const {
    vc::AttentionParams p;
    p.q = q;
    p.out = out;
    p.k_cache = k.get();
    p.v_cache = v.get();
    p.kv_len = kv_len.as<std::int32_t>();
    p.bt_off = bt_off.as<std::int32_t>();
    p.block_ids = block_ids.as<std::int32_t>();
    p.n_heads = nh;
    p.n_kv_heads = nkv;
    p.head_dim = hd;
    p.block_size = 16;
    p.scale = 1.0f / std::sqrt(float(hd));
    return p;
  }
};

// Split-KV decode attention, Llama-3-8B heads (32 q / 8 kv, hd 128): args (batch, context,
// int8 K/V, splits merged in a thread-block cluster: AttentionParams::cluster_merge). int8 (KVPrecision::Int8): the bf16 pool's first half read as int8 rows, one
// fp32 scale per row; bytes are hd + 4 per row instead of 2 hd.
void BM_decode_attention(benchmark::State& state) {
  if (!gpu_or_skip(state)) return;
  const int batch = int(state.range(0)), ctx = int(state.range(1)), nh = 32, nkv = 8, hd = 128;
  const bool kv8 = state.range(2) != 0;
  vc::Stream stream;
  PagedCache cache(batch, ctx, nkv, hd, 1);
  auto q = random_bf16(std::size_t(batch) * nh * hd, 7);
  vc::DeviceBuffer out(std::size_t(batch) * nh * hd * 2);
  const int sms = 132;  // H100 SXM; the split heuristic only needs the order of magnitude
  const int splits = vc::decode_attention_splits(batch, nkv, sms, ctx);
  vc::DeviceBuffer ws(std::max<std::size_t>(vc::decode_attention_workspace_floats(batch, nh, hd, splits), 1) * 4);
  ws.fill_bytes(0);
  auto p = cache.params(q.get(), out.get(), nh, nkv, hd);
  const std::size_t rows = cache.k.size() / 2 / hd;  // slots x KV heads
  const vc::DeviceBuffer scales = upload(std::vector<float>(rows, 1.0f / 64));
  if (kv8) p.k_scale = p.v_scale = scales.as<float>();
  p.cluster_merge = state.range(3) != 0;
  time_loop(state, stream, [&] {
    vc::check(vc::decode_attention(DType::BF16, p, cache.list.as<std::int32_t>(), batch, splits, ws.as<float>(), stream.get()),
              "decode attention");
  });
  // K and V of every context token, each KV head read once for its GQA group.
  const std::int64_t row_bytes = kv8 ? hd + 4 : hd * 2;
  state.SetBytesProcessed(state.iterations() * std::int64_t(batch) * ctx * nkv * row_bytes * 2);
  state.counters["splits"] = splits;
}
BENCHMARK(BM_decode_attention)->Args({1, 513, 0, 0})->Args({1, 513, 0, 1})->Args({1, 4096, 0, 0})
    ->Args({1, 4096, 0, 1})->Args({1, 32768, 0, 0})->Args({16, 4096, 0, 0})->Args({64, 2048, 0, 0})
    ->Args({1, 32768, 1, 0})->Args({16, 4096, 1, 0})->Args({64, 2048, 1, 0})->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// Tensor-core prefill attention, one causal sequence of `len` tokens, 32 q / 8 kv heads, hd 128.
void BM_prefill_attention(benchmark::State& state) {
  if (!gpu_or_skip(state)) return;
  const int len = int(state.range(0)), nh = 32, nkv = 8, hd = 128;
  vc::Stream stream;
  PagedCache cache(1, len, nkv, hd, len);
  auto q = random_bf16(std::size_t(len) * nh * hd, 8);
  vc::DeviceBuffer out(std::size_t(len) * nh * hd * 2);
  std::vector<std::int32_t> tiles;
  for (int t = 0; t < len; t += vc::prefill_tile()) tiles.insert(tiles.end(), {t, std::min(vc::prefill_tile(), len - t), 0});
  auto dtiles = upload(tiles);
  const auto p = cache.params(q.get(), out.get(), nh, nkv, hd);
  time_loop(state, stream, [&] {
    vc::check(vc::prefill_attention(DType::BF16, p, cache.list.as<std::int32_t>(), dtiles.as<std::int32_t>(),
                                    int(tiles.size() / 3), stream.get()),
              "prefill attention");
  });
  // Causal: QK^T and PV over ~len^2/2 pairs, 2 FLOPs per multiply-add, per head.
  state.counters["flops"] =
      benchmark::Counter(double(state.iterations()) * 4.0 * nh * hd * double(len) * len / 2.0, benchmark::Counter::kIsRate);
  state.SetBytesProcessed(state.iterations() * (std::int64_t(len) * nh * hd * 2 * 2 + std::int64_t(len) * nkv * hd * 2 * 2));
}
BENCHMARK(BM_prefill_attention)->Arg(512)->Arg(2048)->Arg(8192)->UseManualTime()->Unit(benchmark::kMicrosecond);

// Whether programmatic dependent launch overlaps two kernels here (vc::pdl_probe): the time
// is the probe's wall time; the counters say how early the dependent kernel started.
void BM_pdl_probe(benchmark::State& state) {
  if (!gpu_or_skip(state)) return;
  const bool graph = state.range(0) != 0;
  double early = 0, after = 0;
  for (auto _ : state) {
    const vc::Status st = vc::pdl_probe(graph, &early, &after);
    if (st != 0) {
      state.SkipWithError("pdl_probe failed");
      return;
    }
  }
  state.counters["started_before_primary_end_us"] = early;
  state.counters["wait_returned_after_end_us"] = after;
  state.counters["pdl_enabled"] = vc::pdl_enabled() ? 1 : 0;
}
BENCHMARK(BM_pdl_probe)->Arg(0)->Arg(1)->Iterations(3)->Unit(benchmark::kMicrosecond);

}  // namespace
#endif  // VIREO_WITH_CUDA
