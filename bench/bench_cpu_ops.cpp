// Google Benchmark of the CPU backend's hot ops (src/cpu/ops.hpp, src/cpu/quant_dot.hpp):
//   BM_matmul_decode   cpu::matmul, T = 1, W [8192, 2048] (Llama-3.2-1B gate/up) per weight type
//   BM_matmul_prefill  cpu::matmul, T = 64, W [2048, 2048] (Llama-3.2-1B q/o) per weight type
//   BM_matmul_prefill_long  cpu::matmul, T = 512, W [576, 1536] (SmolLM2-135M down projection)
//   BM_q8_matmul_decode_batch  cpu::q8_matmul (8-bit activations), T = 1-8, W [8192, 2048]
//   BM_quant_dot       cpu::quant_dot over every row of W [8192, 2048], one thread (the fused
//                      decode kernel alone, no thread pool)
//   BM_attention_decode   cpu::attention, one query token over ctx cached positions
//   BM_attention_prefill  cpu::attention, 64 query tokens at positions ctx-64 .. ctx-1
// Counters: bytes_per_second = bytes the op must move (weights as stored + activations in
// and out; for attention the K and V read), "FLOP/s" = 2 * multiply-adds. The weights of the
// matmul benchmarks are several copies of the matrix totalling >= 256 MiB, cycled so that each
// iteration reads a matrix that is not in the last-level cache (decode reads DRAM, as in a
// real forward pass). Attention uses Llama-3.2-1B heads (32 query, 8 KV, head_dim 64) and a
// shuffled block table (paged KV, 16 tokens per block).
// Run: build-bench/bench/vireo-kernel-bench --benchmark_filter=matmul (see bench/README.md).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "cpu/ops.hpp"
#include "cpu/q8_dot.hpp"
#include "cpu/quant_dot.hpp"
#include "cpu/thread_pool.hpp"
#include "model/weights.hpp"
#include "vireo/gguf.hpp"

namespace {

using vireo::gguf::TensorType;

int n_threads() { return int(std::max(1u, std::thread::hardware_concurrency())); }

vireo::cpu::ThreadPool& pool() {
  static vireo::cpu::ThreadPool p(n_threads());
  return p;
}

std::vector<float> random_floats(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

/// Copies of one random [rows, cols] matrix stored as `type`, enough of them to total at
/// least 256 MiB (at least 2), so cycling through them defeats the last-level cache. The types
/// vireo reads but cannot quantize (Q5_*, IQ4_*, K-quants) get blocks of 0x11 bytes (every fp16
/// field 0x1111, ~6.8e-4): the values do not change the speed.
struct Matrices {
  std::vector<std::vector<std::byte>> copies;
  std::vector<vireo::detail::WeightView> views;
  std::size_t bytes_each = 0;

  Matrices(TensorType type, std::int64_t rows, std::int64_t cols) {
    const std::size_t row_bytes = vireo::gguf::row_bytes(type, std::uint64_t(cols));
    bytes_each = row_bytes * std::size_t(rows);
    std::vector<std::byte> m(bytes_each);
    const auto src = random_floats(std::size_t(cols), 11);
    std::vector<float> row(static_cast<std::size_t>(cols));
    const bool quantizable = vireo::gguf::block_elements(type) == 1 || type == TensorType::Q8_0 ||
                             type == TensorType::Q4_0 || type == TensorType::Q4_1;
    for (std::int64_t r = 0; r < rows && quantizable; ++r) {
      // A rotated random row per row: cheap to make, and every row differs.
      std::rotate_copy(src.begin(), src.begin() + (r * 37) % cols, src.end(), row.begin());
      vireo::gguf::quantize(type, row.data(), m.data() + std::size_t(r) * row_bytes, std::size_t(cols));
    }
    if (!quantizable) std::fill(m.begin(), m.end(), std::byte{0x11});
    const std::size_t n = std::max<std::size_t>(2, ((std::size_t(256) << 20) + bytes_each - 1) / bytes_each);
    copies.assign(n, m);
    for (auto& c : copies) views.push_back({type, c.data(), rows, cols});
  }
};

// q8: the activations quantized to 8 bits (inside the timed loop, as a decode step does once
// per activation matrix) and cpu::q8_matmul instead of cpu::matmul.
void run_matmul(benchmark::State& state, TensorType type, std::int64_t rows, std::int64_t cols, std::int64_t T,
                bool q8 = false) {
  Matrices w(type, rows, cols);
  const auto x = random_floats(std::size_t(T * cols), 5);
  std::vector<float> y(static_cast<std::size_t>(T * rows));
  vireo::cpu::Q8Acts qa;
  std::size_t i = 0;
  for (auto _ : state) {
    if (q8) {
      vireo::cpu::quantize_acts(x.data(), T, cols, qa);
      vireo::cpu::q8_matmul(w.views[i], qa, y.data(), pool());
    } else {
      vireo::cpu::matmul(w.views[i], x.data(), T, y.data(), pool());
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    i = (i + 1) % w.views.size();
  }
  const double bytes = double(w.bytes_each) + double(T * (cols + rows)) * sizeof(float);
  const double flops = 2.0 * double(rows) * double(cols) * double(T);
  state.SetBytesProcessed(std::int64_t(bytes * double(state.iterations())));
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = pool().size();
  state.SetLabel(vireo::gguf::to_string(type));
}

void BM_matmul_decode(benchmark::State& state) {
  run_matmul(state, TensorType(state.range(0)), 8192, 2048, 1);
}
void BM_matmul_prefill(benchmark::State& state) {
  run_matmul(state, TensorType(state.range(0)), 2048, 2048, 64);
}

// A decode step of a continuous batch: T tokens through the same [8192, 2048] matrix. The
// weights are read once per step whatever T, so time / T is what batching buys on the CPU.
void BM_matmul_decode_batch(benchmark::State& state) {
  run_matmul(state, TensorType(state.range(0)), 8192, 2048, state.range(1));
  state.counters["tokens/s"] = benchmark::Counter(double(state.range(1)), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_matmul_decode_batch)
    ->ArgsProduct({{std::int64_t(TensorType::Q8_0), std::int64_t(TensorType::Q4_1)}, {1, 2, 4, 8, 16, 32}})
    ->ArgNames({"type", "T"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The same steps over 8-bit activations (ModelOptions::cpu_quantize_activations).
void BM_q8_matmul_decode_batch(benchmark::State& state) {
  run_matmul(state, TensorType(state.range(0)), 8192, 2048, state.range(1), true);
  state.counters["tokens/s"] = benchmark::Counter(double(state.range(1)), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_q8_matmul_decode_batch)
    ->ArgsProduct({{std::int64_t(TensorType::Q8_0), std::int64_t(TensorType::Q4_0), std::int64_t(TensorType::Q4_1)},
                   {1, 2, 4, 8}})
    ->ArgNames({"type", "T"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void weight_types(benchmark::internal::Benchmark* b) {
  for (TensorType t : {TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q8_0, TensorType::Q4_0,
                       TensorType::Q4_1})
    b->Arg(std::int64_t(t));
}
BENCHMARK(BM_matmul_decode)->Apply(weight_types)->ArgName("type")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_matmul_prefill)->Apply(weight_types)->ArgName("type")->UseRealTime()->Unit(benchmark::kMillisecond);

// A long prompt through SmolLM2-135M's FFN down projection [576, 1536]: T = 512, where the
// per-panel dequantization is amortized over many tokens (the prefill of vireo-bench).
void BM_matmul_prefill_long(benchmark::State& state) {
  run_matmul(state, TensorType(state.range(0)), 576, 1536, 512);
}
BENCHMARK(BM_matmul_prefill_long)
    ->Arg(std::int64_t(TensorType::F32))
    ->Arg(std::int64_t(TensorType::Q8_0))
    ->Arg(std::int64_t(TensorType::Q4_1))
    ->ArgName("type")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The fused quantized dot alone on one thread: its per-core streaming rate.
void BM_quant_dot(benchmark::State& state) {
  const TensorType type = TensorType(state.range(0));
  constexpr std::int64_t rows = 8192, cols = 2048;
  Matrices w(type, rows, cols);
  const auto x = random_floats(std::size_t(cols), 5);
  std::vector<float> sums(static_cast<std::size_t>(cols / 32));
  vireo::cpu::block_sums(x.data(), cols, sums.data());
  const std::size_t stride = w.views[0].row_stride();
  std::size_t i = 0;
  for (auto _ : state) {
    float acc = 0.0f;
    const std::byte* m = w.views[i].data;
    for (std::int64_t r = 0; r < rows; ++r)
      acc += vireo::cpu::quant_dot(type, m + std::size_t(r) * stride, x.data(), sums.data(), cols);
    benchmark::DoNotOptimize(acc);
    i = (i + 1) % w.views.size();
  }
  state.SetBytesProcessed(std::int64_t(double(w.bytes_each) * double(state.iterations())));
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * double(rows) * double(cols), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(vireo::gguf::to_string(type));
}
BENCHMARK(BM_quant_dot)
    ->Arg(std::int64_t(TensorType::Q8_0))
    ->Arg(std::int64_t(TensorType::Q4_0))
    ->Arg(std::int64_t(TensorType::Q4_1))
    ->Arg(std::int64_t(TensorType::IQ4_NL))
    ->Arg(std::int64_t(TensorType::IQ4_XS))
    ->Arg(std::int64_t(TensorType::Q4_K))
    ->Arg(std::int64_t(TensorType::Q6_K))
    ->ArgName("type")
    ->Unit(benchmark::kMillisecond);

// Paged attention of T query tokens of one sequence whose last position is ctx - 1.
void run_attention(benchmark::State& state, std::int64_t T) {
  const std::int64_t ctx = state.range(0);
  constexpr int nh = 32, nkv = 8, hd = 64, bs = 16;
  const std::int64_t n_blocks = (ctx + bs - 1) / bs;
  const auto k = random_floats(std::size_t(n_blocks * bs * nkv * hd), 1);
  const auto v = random_floats(std::size_t(n_blocks * bs * nkv * hd), 2);
  const auto q = random_floats(std::size_t(T * nh * hd), 3);
  std::vector<float> out(static_cast<std::size_t>(T * nh * hd));
  std::vector<std::int32_t> block_ids(static_cast<std::size_t>(n_blocks));
  std::iota(block_ids.begin(), block_ids.end(), 0);
  std::shuffle(block_ids.begin(), block_ids.end(), std::mt19937(4));
  std::vector<std::int32_t> pos(static_cast<std::size_t>(T)), seq_of(static_cast<std::size_t>(T), 0);
  for (std::int64_t t = 0; t < T; ++t) pos[std::size_t(t)] = std::int32_t(ctx - T + t);
  const std::int32_t indptr[2] = {0, std::int32_t(n_blocks)};
  vireo::cpu::AttentionArgs a{q.data(), k.data(), v.data(), out.data(), T, nh, nkv, hd, bs,
                              pos.data(), seq_of.data(), indptr, block_ids.data()};
  for (auto _ : state) {
    vireo::cpu::attention(a, pool());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  // Each query head reads its group's K and V rows of every visible position; the bytes
  // counted are one read of the visible K and V (what a kernel sharing a KV head across its
  // group must move), the FLOPs are QK^T + PV over the visible positions of every token.
  double keys = 0;
  for (auto p : pos) keys += double(p) + 1.0;
  const double bytes = double(ctx) * nkv * hd * 2.0 * sizeof(float);
  const double flops = 2.0 * 2.0 * keys * nh * hd;
  state.SetBytesProcessed(std::int64_t(bytes * double(state.iterations())));
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}
void BM_attention_decode(benchmark::State& state) { run_attention(state, 1); }
void BM_attention_prefill(benchmark::State& state) { run_attention(state, 64); }
BENCHMARK(BM_attention_decode)->Arg(128)->Arg(512)->Arg(2048)->ArgName("ctx")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_attention_prefill)->Arg(64)->Arg(512)->Arg(2048)->ArgName("ctx")->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
