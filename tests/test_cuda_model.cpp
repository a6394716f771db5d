// [cuda] The whole model on the GPU against the CPU reference backend.
//
// * Random Llama-shaped models (head_dim 64, GQA 2, Q8_0 / F32 weights): prefill + decode
//   logits of the CUDA backend in fp32 mode vs the CPU backend, and in bf16 / fp16; tiny
//   GGUF models of the read-only types (Q5_0, Q5_1, K-quants) likewise.
// * A mixed batch (a prefill chunk of one sequence + decode tokens of others) equals the
//   same sequences run separately.
// * Decode steps replayed from CUDA graphs give bit-identical logits to the eager kernels.
// * The real SmolLM2-135M: fp32 greedy continuation identical to the CPU's; bf16
//   last-position logits within a tolerance (justified at the test).
// Every test is marked skipped and returns when no GPU is present (VIREO_REQUIRE_GPU).
#include <catch2/catch.hpp>

#ifdef VIREO_WITH_CUDA
#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "../cuda/cuda_api.hpp"
#include "../cuda/cuda_backend.hpp"
#include "model/model_impl.hpp"
#include "test_util.hpp"
#include "model/access.hpp"
#include "tiny_gguf.hpp"
#include "vireo/batch.hpp"
#include "vireo/error.hpp"
#include "vireo/gguf.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/model.hpp"
#include "vireo/sampler.hpp"

using namespace vireo;

namespace {

ModelConfig gpu_config() { return test::model_shape(3, 256, 4, 2, 64, 512, 333, 1024); }

/// Prefill `prompt` (all logits), then `n_decode` greedy steps; every logits row in order.
std::vector<std::vector<float>> run(const Model& m, const std::vector<Token>& prompt, int n_decode) {
  KVCache cache(m, {.num_blocks = 64});
  SeqId s = cache.add_sequence();
  Batch b;
  b.add(s, prompt, All);
  std::vector<std::vector<float>> rows;
  Logits lg;
  for (int i = 0; i <= n_decode; ++i) {
    m.forward(b, cache, lg);
    for (std::size_t r = 0; r < lg.rows(); ++r) rows.emplace_back(lg.row(r).begin(), lg.row(r).end());
    auto last = lg.row(lg.rows() - 1);
    const Token t = Token(std::max_element(last.begin(), last.end()) - last.begin());
    b.clear();
    b.add(s, t, true);
  }
  return rows;
}

using test::rel_err;

const std::vector<Token> kPrompt = {1, 5, 9, 200, 17, 17, 3, 99, 100, 101, 250, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                    16, 330, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36};

cuda::BackendControls& controls(const Model& m) {
  auto* c = dynamic_cast<cuda::BackendControls*>(vireo::detail::Access::model(m).backend.get());
  REQUIRE(c != nullptr);
  return *c;
}

}  // namespace

TEST_CASE("cuda forward matches the CPU backend on a random model", "[cuda][model]") {
  VIREO_REQUIRE_GPU();
  for (auto wt : {gguf::TensorType::F32, gguf::TensorType::Q8_0}) {
    const Model cpu = Model::random(gpu_config(), 11, {.n_threads = 2}, wt);
    const auto ref = run(cpu, kPrompt, 6);
    // fp32 mode: the same arithmetic up to summation order (cuBLAS / GEMV / split-KV).
    const Model g32 = Model::random(gpu_config(), 11, {.device = Device::cuda(), .dtype = DType::F32}, wt);
    CHECK(g32.device().kind == DeviceKind::CUDA);
    CHECK(rel_err(run(g32, kPrompt, 6), ref) < 1e-4);
    // 16-bit: weights, activations and K/V rounded to 8 (bf16) / 11 (fp16) significant bits
    // over 3 layers of random weights; 3% of the largest logit bounds that with room.
    for (DType dt : {DType::BF16, DType::F16}) {
      const Model g = Model::random(gpu_config(), 11, {.device = Device::cuda(), .dtype = dt}, wt);
      INFO("dtype " << to_string(dt));
      CHECK(rel_err(run(g, kPrompt, 6), ref) < 3e-2);
    }
    // The decode setting switched on one loaded model: the unfused step against the fused
    // default (batch-1 steps run the fused GEMVs).
    const Model g = Model::random(gpu_config(), 11, {.device = Device::cuda(), .dtype = DType::BF16}, wt);
    const auto base = run(g, kPrompt, 6);
    const cuda::DecodeTuning loaded = controls(g).decode_tuning();
    CHECK(loaded.fusion == 1);
    controls(g).set_decode_tuning({.fusion = 0});
    CHECK(controls(g).decode_tuning().fusion == 0);
    const auto unfused = run(g, kPrompt, 6);
    CHECK(rel_err(unfused, ref) < 3e-2);
    // The same bf16 weights: only a rounding of an intermediate may differ from the default.
    CHECK(rel_err(unfused, base) < 2e-2);
    CHECK_THROWS_AS(controls(g).set_decode_tuning({.fusion = 2}), Error);
    controls(g).set_decode_tuning(loaded);
    // The environment sets the same field when a backend is built.
    ::setenv("VIREO_DECODE_FUSION", "0", 1);
    const Model e = Model::random(gpu_config(), 11, {.device = Device::cuda(), .dtype = DType::BF16}, wt);
    ::unsetenv("VIREO_DECODE_FUSION");
    CHECK(controls(e).decode_tuning().fusion == 0);
  }
}

TEST_CASE("cuda converts Q5_0, Q5_1 and K-quant models at load like the CPU reads them", "[cuda][model]") {
  VIREO_REQUIRE_GPU();
  // The read-only types reach the GPU through gguf::dequantize at load (checked against
  // gguf-py in test_quant.cpp). Tiny GGUF models of each (d = 256, head_dim 64, d_ff 512:
  // whole 256-element super-blocks); fp32 mode against the CPU like the random-model test.
  const std::vector<Token> prompt = {'T', 'h', 'e', ' ', 'c', 'a', 'p', 'i', 't', 'a', 'l', ' ', 'o', 'f'};
  for (gguf::TensorType t : {gguf::TensorType::Q5_0, gguf::TensorType::Q5_1, gguf::TensorType::IQ4_NL, gguf::TensorType::IQ4_XS, gguf::TensorType::Q2_K,
                             gguf::TensorType::Q3_K, gguf::TensorType::Q4_K, gguf::TensorType::Q5_K,
                             gguf::TensorType::Q6_K}) {
    INFO(gguf::to_string(t));
    test::TinySpec spec{.layers = 2, .d = 256, .heads = 4, .kv = 2, .ff = 512};
    spec.mat_type = t;
    const auto path = test::write_tmp(test::tiny_gguf(spec), std::string("cuda-") + gguf::to_string(t));
    const Model cpu = Model::load(path, {.n_threads = 2});
    const auto ref = run(cpu, prompt, 4);
    const Model g32 = Model::load(path, {.device = Device::cuda(), .dtype = DType::F32});
    CHECK(rel_err(run(g32, prompt, 4), ref) < 1e-4);
    // bf16: the prefill rows only (greedy decode on bf16 logits may pick other tokens). Not
    // yet measured on a GPU: 5% of the largest logit, where a wrong conversion is ~100%.
    const Model g16 = Model::load(path, {.device = Device::cuda(), .dtype = DType::BF16});
    const std::vector<std::vector<float>> ref_prefill(ref.begin(), ref.begin() + std::ptrdiff_t(prompt.size()));
    CHECK(rel_err(run(g16, prompt, 0), ref_prefill) < 5e-2);
    std::filesystem::remove(path);
  }
}

TEST_CASE("cuda mixed batch equals the sequences run separately", "[cuda][model]") {
  VIREO_REQUIRE_GPU();
  for (DType dt : {DType::F32, DType::BF16}) {
    const Model m = Model::random(gpu_config(), 5, {.device = Device::cuda(), .dtype = dt}, gguf::TensorType::Q8_0);
    const std::vector<Token> a(kPrompt.begin(), kPrompt.begin() + 30), b = {3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19},
                             c = {300, 301};
    // Separate: a's chunk alone; b and c prefilled then one decode token each.
    KVCache cache(m, {.num_blocks = 64});
    const SeqId sa = cache.add_sequence(), sb = cache.add_sequence(), sc = cache.add_sequence();
    Batch batch;
    Logits lg;
    batch.add(sb, b, Want::None);
    batch.add(sc, c, Want::None);
    m.forward(batch, cache, lg);
    std::vector<std::vector<float>> sep;
    for (auto [s, toks] : {std::pair{sa, a}, std::pair{sb, std::vector<Token>{42}}, std::pair{sc, std::vector<Token>{43}}}) {
      // Run on a fork so the mixed run below starts from the same state.
      const SeqId f = cache.fork(s);
      batch.clear();
      batch.add(f, toks, Last);
      m.forward(batch, cache, lg);
      sep.emplace_back(lg.row(0).begin(), lg.row(0).end());
      cache.remove(f);
    }
    // Mixed: decode token of b, a's whole chunk, decode token of c, in one step.
    batch.clear();
    batch.add(sb, Token(42), true);
    batch.add(sa, a, Last);
    batch.add(sc, Token(43), true);
    m.forward(batch, cache, lg);
    REQUIRE(lg.rows() == 3);
    const std::vector<std::vector<float>> mixed = {{lg.row(1).begin(), lg.row(1).end()},
                                                   {lg.row(0).begin(), lg.row(0).end()},
                                                   {lg.row(2).begin(), lg.row(2).end()}};
    // Different kernels (GEMV vs cuBLAS, decode vs prefill attention) sum in different orders.
    INFO("dtype " << to_string(dt));
    CHECK(rel_err(mixed, sep) < (dt == DType::F32 ? 1e-4 : 2e-2));
  }
}

TEST_CASE("cuda graph replay of decode steps equals eager decode", "[cuda][model]") {
  VIREO_REQUIRE_GPU();
  const Model m = Model::random(gpu_config(), 9, {.device = Device::cuda(), .dtype = DType::BF16}, gguf::TensorType::Q8_0);
  auto decode_run = [&](bool graphs) {
    controls(m).set_graphs_enabled(graphs);
    KVCache cache(m, {.num_blocks = 128});
    std::vector<SeqId> seqs;
    Batch b;
    Logits lg;
    for (int i = 0; i < 3; ++i) {  // 3 sequences: bucket 4, one padding token
      seqs.push_back(cache.add_sequence());
      b.add(seqs.back(), std::vector<Token>(kPrompt.begin() + i, kPrompt.begin() + 10 + 7 * i), Want::None);
    }
    m.forward(b, cache, lg);
    std::vector<std::vector<float>> rows;
    for (int step = 0; step < 20; ++step) {  // crosses a 16-token block boundary
      b.clear();
      for (std::size_t i = 0; i < seqs.size(); ++i) b.add(seqs[i], Token((step * 7 + int(i)) % 333), i != 1);
      m.forward(b, cache, lg);
      for (std::size_t r = 0; r < lg.rows(); ++r) rows.emplace_back(lg.row(r).begin(), lg.row(r).end());
      // Replaying the last step's graph (the benchmark's GPU-only step time) redoes that step
      // exactly: the K/V rows it rewrites hold what they held, so later steps see no change.
      if (step == 10) {
        const double ms = controls(m).time_graph_replay(3);
        if (graphs) CHECK(ms > 0.0);
        else CHECK(ms < 0.0);  // eager steps have no graph to replay
      }
    }
    return rows;
  };
  const auto eager = decode_run(false);
  const int before = controls(m).graphs_captured();
  const auto replay = decode_run(true);
  CHECK(controls(m).graphs_captured() > before);
  CHECK(rel_err(replay, eager) == 0.0);  // the same kernels with the same inputs
}

TEST_CASE("cuda forward rejects a step larger than its workspaces", "[cuda][model]") {
  VIREO_REQUIRE_GPU();
  ModelConfig cfg = gpu_config();
  cfg.context_length = 8192;  // so that the model's own context check does not fire first
  const Model m = Model::random(cfg, 3, {.device = Device::cuda(), .dtype = DType::BF16}, gguf::TensorType::Q8_0);
  const int max = controls(m).max_tokens();
  REQUIRE(max + 1 <= cfg.context_length);
  KVCache cache(m, {.num_blocks = (max + 64) / 16 + 8});
  const SeqId s = cache.add_sequence();
  Batch b;
  std::vector<Token> many(std::size_t(max + 1), 1);
  b.add(s, many, Last);
  CHECK_THROWS_AS(m.forward(b, cache), Error);
  CHECK(cache.length(s) == 0);
}

TEST_CASE("cuda SmolLM2: fp32 greedy equals the CPU, bf16 logits within tolerance", "[cuda][model][slow]") {
  VIREO_REQUIRE_GPU();
  test::require_model();
  const Model cpu = Model::load(test::model_path());
  const std::vector<Token> prompt = cpu.tokenizer().encode("The capital of France is Paris. The capital of Italy is");
  auto greedy = [&](const Model& m, int n, std::vector<float>* first_logits) {
    KVCache cache(m, {.num_blocks = 32});
    const SeqId s = cache.add_sequence();
    Batch b;
    b.add(s, prompt, Last);
    Logits lg;
    std::vector<Token> out;
    for (int i = 0; i < n; ++i) {
      m.forward(b, cache, lg);
      auto r = lg.row(0);
      if (i == 0 && first_logits) first_logits->assign(r.begin(), r.end());
      out.push_back(Token(std::max_element(r.begin(), r.end()) - r.begin()));
      b.clear();
      b.add(s, out.back(), true);
    }
    return out;
  };
  std::vector<float> ref_logits, bf_logits;
  const auto ref = greedy(cpu, 24, &ref_logits);
  {
    const Model g = Model::load(test::model_path(), {.device = Device::cuda(), .dtype = DType::F32});
    CHECK(greedy(g, 24, nullptr) == ref);
  }
  const Model g = Model::load(test::model_path(), {.device = Device::cuda(), .dtype = DType::BF16});
  const auto bf = greedy(g, 1, &bf_logits);
  // The Q4_1 matrices kept quantized on the GPU: the same bf16 weights reach the tensor cores,
  // so the logits match the converted model's up to summation order.
  std::vector<float> native_logits;
  {
    const Model gq =
        Model::load(test::model_path(), {.device = Device::cuda(), .dtype = DType::BF16, .gpu_quantized = true});
    CHECK(gq.weight_bytes() < g.weight_bytes() / 2);
    const auto nq = greedy(gq, 1, &native_logits);
    CHECK(nq[0] == ref[0]);
  }
  // Tolerance: bf16 keeps 8 significant bits, a relative rounding of 2^-9 ~ 0.2% for every
  // stored weight, activation and K/V value (the residual stream stays fp32). Through 30
  // layers with ~7 rounded tensors each, independent errors add up to about
  // sqrt(210) * 0.2% ~ 3% of the activation scale. We bound the RMS logit error by 5% of the
  // RMS of the reference logits and require the same argmax. (It passed on an H100 on
  // 2026-11-26; the errors are now printed on every run, so the next run records them.)
  double se = 0, sr = 0;
  for (std::size_t i = 0; i < ref_logits.size(); ++i) {
    REQUIRE(!std::isnan(bf_logits[i]));
    se += (double(bf_logits[i]) - ref_logits[i]) * (double(bf_logits[i]) - ref_logits[i]);
    sr += double(ref_logits[i]) * ref_logits[i];
  }
  const double rms_rel = std::sqrt(se / sr);
  double sq = 0;
  for (std::size_t i = 0; i < ref_logits.size(); ++i)
    sq += (double(native_logits[i]) - ref_logits[i]) * (double(native_logits[i]) - ref_logits[i]);
  const double rms_native = std::sqrt(sq / sr);
  WARN("SmolLM2 bf16 RMS logit error / RMS of the CPU logits: " << rms_rel << " (converted weights), " << rms_native
                                                                 << " (quantized weights kept)");
  CHECK(rms_rel < 0.05);
  CHECK(rms_native < 0.05);
  CHECK(bf[0] == ref[0]);
}


TEST_CASE("cuda forward_sample samples on the GPU like the host path", "[cuda][model]") {
  VIREO_REQUIRE_GPU();
  // fp32 mode, so the GPU logits equal the CPU's up to summation order and the draws
  // (same Philox counters) pick the same tokens unless a cut-off lands on a near-tie.
  const Model cpu = Model::random(gpu_config(), 17, {.n_threads = 2}, gguf::TensorType::Q8_0);
  const Model gpu = Model::random(gpu_config(), 17, {.device = Device::cuda(), .dtype = DType::F32},
                                  gguf::TensorType::Q8_0);
  const std::vector<SamplerParams> params = {{.temperature = 0.0f},
                                             {.temperature = 0.8f, .top_k = 40, .seed = 3},
                                             {.temperature = 1.0f, .top_p = 0.9f, .seed = 4},
                                             {.temperature = 1.2f, .min_p = 0.05f, .seed = 5}};
  auto decode = [&](const Model& m) {
    KVCache cache(m, {.num_blocks = 64});
    std::vector<SeqId> seqs;
    std::vector<Sampler> samplers;
    for (std::size_t i = 0; i < params.size(); ++i) {
      seqs.push_back(cache.add_sequence());
      samplers.emplace_back(params[i]);
    }
    std::vector<Sampler*> ptrs;
    for (auto& s : samplers) ptrs.push_back(&s);
    Batch b;
    for (std::size_t i = 0; i < seqs.size(); ++i)
      b.add(seqs[i], std::vector<Token>(kPrompt.begin(), kPrompt.begin() + 5 + std::ptrdiff_t(i)), Want::Last);
    std::vector<std::vector<Token>> out(seqs.size());
    for (int step = 0; step < 12; ++step) {
      auto got = m.forward_sample(b, cache, ptrs);
      b.clear();
      for (std::size_t i = 0; i < seqs.size(); ++i) {
        REQUIRE(got[i].token >= 0);
        REQUIRE(std::isfinite(got[i].logprob));
        out[i].push_back(got[i].token);
        b.add(seqs[i], got[i].token, true);
      }
    }
    for (auto& s : samplers) CHECK(s.counter() == 12);
    return out;
  };
  const auto ref = decode(cpu), got = decode(gpu);
  for (std::size_t i = 0; i < params.size(); ++i) {
    INFO("row " << i);
    CHECK(got[i] == ref[i]);
  }
}


TEST_CASE("cuda decode allocates nothing per step; a KV pool beyond the card fails cleanly", "[cuda][model]") {
  VIREO_REQUIRE_GPU();
  const Model m = Model::random(gpu_config(), 13, {.device = Device::cuda(), .dtype = DType::BF16},
                                gguf::TensorType::Q8_0);
  // 1 TiB of K/V (44.7M blocks of 24 KiB): more than any card holds. The device allocation
  // fails with OutOfMemory naming cudaMalloc and the size, and the model stays usable.
  try {
    KVCache huge(m, {.memory_budget_bytes = std::size_t(1) << 40, .prefix_caching = false});
    FAIL("a 1 TiB KV cache was allocated");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.code() == ErrorCode::OutOfMemory);
    CHECK(std::string(e.what()).find("cudaMalloc") != std::string::npos);
  }

  KVCache cache(m, {.num_blocks = 64});
  Sampler greedy({.temperature = 0.0f}), warm({.temperature = 0.9f, .top_p = 0.9f, .seed = 1});
  std::vector<Sampler*> samplers = {&greedy, &warm};
  // Two sequences, a prefill and 24 decode steps (forward and forward_sample alternating,
  // crossing a 16-token block and a power-of-two context, so new graphs and split counts
  // come up). The first two passes warm up and capture every graph (a bucket's first step
  // runs eagerly, its second is captured); the third, with the same lengths on the same
  // pool, must not allocate device or pinned memory.
  auto pass = [&] {
    const SeqId a = cache.add_sequence(), b = cache.add_sequence();
    Batch batch;
    batch.add(a, std::vector<Token>(kPrompt.begin(), kPrompt.begin() + 9), Last);
    batch.add(b, std::vector<Token>(kPrompt.begin() + 3, kPrompt.begin() + 20), Last);
    Logits lg;
    m.forward(batch, cache, lg);
    for (int step = 0; step < 24; ++step) {
      batch.clear();
      batch.add(a, Token((7 * step) % 333), true);
      batch.add(b, Token((7 * step + 1) % 333), true);
      if (step % 2 == 0) m.forward(batch, cache, lg);
      else REQUIRE(m.forward_sample(batch, cache, samplers).size() == 2);
    }
    cache.remove(a);
    cache.remove(b);
  };
  pass();
  pass();
  const std::uint64_t allocs = cuda::allocation_count();
  const std::size_t free_before = cuda::device_free_bytes();
  pass();
  CHECK(cuda::allocation_count() == allocs);
  CHECK(cuda::device_free_bytes() == free_before);
}


TEST_CASE("cuda model runs on a caller's stream", "[cuda][model]") {
  VIREO_REQUIRE_GPU();
  const cuda::Stream mine;  // a non-blocking stream the caller owns
  const ModelConfig cfg = gpu_config();
  const Model own = Model::random(cfg, 21, {.device = Device::cuda(), .dtype = DType::BF16}, gguf::TensorType::Q8_0);
  const Model on_mine = Model::random(
      cfg, 21, {.device = Device::cuda(), .dtype = DType::BF16, .cuda_stream = mine.get()}, gguf::TensorType::Q8_0);
  CHECK(on_mine.cuda_stream() == mine.get());
  CHECK(own.cuda_stream() != nullptr);
  CHECK(own.cuda_stream() != mine.get());
  const auto ref = run(own, kPrompt, 6);
  // The same kernels on the same inputs, decode steps captured into graphs on the caller's
  // stream: identical logits.
  CHECK(rel_err(run(on_mine, kPrompt, 6), ref) == 0.0);
  CHECK(controls(on_mine).graphs_captured() > 0);
  // The legacy default stream cannot be captured: the same steps run eagerly on it.
  const Model legacy = Model::random(
      cfg, 21, {.device = Device::cuda(), .dtype = DType::BF16, .cuda_stream = cuda::legacy_stream()},
      gguf::TensorType::Q8_0);
  CHECK(legacy.cuda_stream() == cuda::legacy_stream());
  CHECK(rel_err(run(legacy, kPrompt, 6), ref) == 0.0);
  CHECK(controls(legacy).graphs_captured() == 0);
}

#endif  // VIREO_WITH_CUDA
