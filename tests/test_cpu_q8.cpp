// ModelOptions::cpu_quantize_activations: decode matmuls over 8-bit activations (cpu/q8_dot).
//
// * quantize_acts: per 32-block scale max|x| / 127, every value within half a step, the
//   largest one a full step, all-zero and non-finite blocks handled.
// * q8_matmul against a double-precision dot of the dequantized weights with the
//   dequantized activations (q * d): the integer arithmetic must be exact, so only fp32
//   rounding separates them.
// * Whole models against the fp32 reference path: a random Q4_1 model's decode logits move
//   by a bounded fraction, a batched decode equals the separate ones, and on the real
//   SmolLM2 the greedy choices along the reference's continuation stay the same.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <random>
#include <vector>

#include "cpu/q8_dot.hpp"
#include "cpu/thread_pool.hpp"
#include "kv_int8_checks.hpp"
#include "test_util.hpp"
#include "vireo/batch.hpp"
#include "vireo/error.hpp"
#include "vireo/gguf.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/model.hpp"
#include "vireo/tokenizer.hpp"

using namespace vireo;

namespace {

// The logits of `prompt` (prefill, last row) and then of each token of `next` decoded one at
// a time, with or without 8-bit activations.
std::vector<std::vector<float>> decode_rows(const Model& m, const std::vector<Token>& prompt,
                                            const std::vector<Token>& next) {
  return test::kv_logit_rows(m, prompt, next, KVPrecision::Model);
}

}  // namespace

TEST_CASE("quantize_acts: block scale max|x| / 127, values within half a step", "[cpu][ops]") {
  std::mt19937 rng(7);
  const std::int64_t T = 3, n = 128;  // 4 blocks per row
  auto x = test::normal_vec(std::size_t(T * n), rng, 2.0f);
  std::fill_n(x.begin() + 32, 32, 0.0f);                            // row 0 block 1: all zero
  x[std::size_t(n + 70)] = std::numeric_limits<float>::quiet_NaN();  // row 1 block 2: NaN
  x[std::size_t(2 * n + 5)] = INFINITY;                              // row 2 block 0: Inf
  cpu::Q8Acts a;
  cpu::quantize_acts(x.data(), T, n, a);
  REQUIRE(a.T == T);
  REQUIRE(a.n == n);
  for (std::int64_t blk = 0; blk < T * n / 32; ++blk) {
    const float* v = x.data() + blk * 32;
    const std::int8_t* q = a.q.data() + blk * 32;
    const float d = a.d[std::size_t(blk)];
    INFO("block " << blk);
    if (blk == 1) {
      CHECK(d == 0.0f);
      CHECK(a.s[std::size_t(blk)] == 0.0f);
      CHECK(std::all_of(q, q + 32, [](std::int8_t v) { return v == 0; }));
      continue;
    }
    if (blk == 6 || blk == 8) {
      CHECK(std::isnan(d));
      continue;
    }
    float amax = 0.0f;
    int qmax = 0, qsum = 0;
    for (int j = 0; j < 32; ++j) {
      amax = std::max(amax, std::fabs(v[j]));
      qmax = std::max(qmax, std::abs(int(q[j])));
      qsum += q[j];
    }
    CHECK(d == amax / 127.0f);
    CHECK(qmax == 127);
    for (int j = 0; j < 32; ++j) CHECK(std::fabs(v[j] - q[j] * d) <= 0.5f * d * (1.0f + 1e-5f));
    CHECK(a.s[std::size_t(blk)] == Approx(d * qsum).epsilon(1e-6));
  }
}

TEST_CASE("q8_matmul equals a double-precision dot of the dequantized weights and activations", "[cpu][ops]") {
  std::mt19937 rng(13);
  cpu::ThreadPool pool(2);
  // 96 columns: 3 blocks (the unpaired last block); 320: 10; the K-quants 256 and 512 (one
  // and two super-blocks). T up to 9: every token group. Random blocks (scales in a
  // realistic range), so the read-only types are covered and Q8_0 weights reach -128.
  struct Case {
    gguf::TensorType type;
    std::int64_t cols;
  };
  std::vector<Case> cases;
  for (auto t : {gguf::TensorType::Q8_0, gguf::TensorType::Q4_0, gguf::TensorType::Q4_1, gguf::TensorType::Q5_0,
                 gguf::TensorType::Q5_1, gguf::TensorType::IQ4_NL})
    for (std::int64_t c : {96, 320}) cases.push_back({t, c});
  for (auto t : {gguf::TensorType::Q3_K, gguf::TensorType::Q4_K, gguf::TensorType::Q5_K, gguf::TensorType::Q6_K,
                 gguf::TensorType::IQ4_XS})
    for (std::int64_t c : {256, 512}) cases.push_back({t, c});
  for (const Case& cs : cases) {
    const gguf::TensorType type = cs.type;
    const std::int64_t cols = cs.cols, rows = 37;
    const std::size_t rb = gguf::row_bytes(type, std::uint64_t(cols));
    const std::vector<std::byte> wq = test::random_blocks(type, std::uint64_t(rows * cols), rng);
    REQUIRE(wq.size() == rb * std::size_t(rows));
    const detail::WeightView w{type, wq.data(), rows, cols};
    for (std::int64_t T = 1; T <= 9; ++T) {
      auto x = test::normal_vec(std::size_t(T * cols), rng);
      cpu::Q8Acts a;
      cpu::quantize_acts(x.data(), T, cols, a);
      std::vector<float> y(std::size_t(T * rows), NAN);
      cpu::q8_matmul(w, a, y.data(), pool);
      // The activations the kernel multiplies: q * d, exact in double.
      std::vector<double> xq(x.size());
      for (std::size_t i = 0; i < x.size(); ++i) xq[i] = double(a.q[i]) * a.d[i / 32];
      test::check_matmul(w, xq, T, y, "q8_matmul, cols=" + std::to_string(cols));
    }
  }
  // Weights it has no integer kernel for, or activations of another width, are refused.
  std::vector<float> wf(64 * 4, 0.5f);
  const detail::WeightView wf32{gguf::TensorType::F32, reinterpret_cast<const std::byte*>(wf.data()), 4, 64};
  cpu::Q8Acts a;
  std::vector<float> x(64, 1.0f), y(4);
  cpu::quantize_acts(x.data(), 1, 64, a);
  CHECK_THROWS_AS(cpu::q8_matmul(wf32, a, y.data(), pool), Error);
  std::vector<std::byte> q2(gguf::row_bytes(gguf::TensorType::Q2_K, 256) * 4);
  const detail::WeightView wq2{gguf::TensorType::Q2_K, q2.data(), 4, 256};
  cpu::quantize_acts(std::vector<float>(256, 1.0f).data(), 1, 256, a);
  CHECK_THROWS_AS(cpu::q8_matmul(wq2, a, y.data(), pool), Error);
}

TEST_CASE("8-bit activations on a random Q4_1 model stay close to the fp32 path", "[cpu][model]") {
  const ModelConfig cfg = test::model_shape(3, 128, 4, 2, 32, 256, 400, 512);
  const Model ref_m = Model::random(cfg, 21, {.n_threads = 2}, gguf::TensorType::Q4_1);
  const Model q8_m = Model::random(cfg, 21, {.n_threads = 2, .cpu_quantize_activations = true}, gguf::TensorType::Q4_1);
  const auto& prompt = test::kInt8Prompt;  // 20 tokens: the prefill takes the fp32 path
  const auto& next = test::kInt8Next;
  const auto ref = decode_rows(ref_m, prompt, next), q8 = decode_rows(q8_m, prompt, next);
  // The prefill rows are the same arithmetic on both models.
  for (std::size_t r = 0; r < prompt.size(); ++r) REQUIRE(test::max_abs_diff(q8[r], ref[r]) == 0.0);
  // Decode rows: each activation moves by at most max|block| / 254 (0.4% of the block's
  // largest value) before every matmul; through 3 layers the logits move by a similar
  // fraction. 3% of the largest logit leaves room and still catches a wrong scale, a
  // misplaced block or a lost offset term (errors of the order of the logits themselves).
  std::vector<std::vector<float>> ref_dec(ref.begin() + std::ptrdiff_t(prompt.size()), ref.end());
  std::vector<std::vector<float>> q8_dec(q8.begin() + std::ptrdiff_t(prompt.size()), q8.end());
  const double e = test::rel_err(q8_dec, ref_dec);
  INFO("8-bit activations: max logit error / max logit = " << e);
  CHECK(e > 0.0);  // the integer path really ran
  CHECK(e < 3e-2);

  // A batched decode step equals the separate ones: each token's activations are quantized
  // on their own, and each output is the same sum in the same order.
  KVCache c(q8_m, {.num_blocks = 64, .block_size = 8});
  const SeqId s0 = c.add_sequence(), s1 = c.add_sequence();
  Batch b;
  b.add(s0, prompt, Last);
  b.add(s1, std::vector<Token>(prompt.begin(), prompt.begin() + 12), Last);  // > 8 tokens alone too: fp32 prefill
  q8_m.forward(b, c);
  b.clear();
  b.add(s0, Token(42), true);
  b.add(s1, Token(7), true);
  const Logits both = q8_m.forward(b, c);
  for (int which = 0; which < 2; ++which) {
    KVCache one(q8_m, {.num_blocks = 64, .block_size = 8});
    const SeqId s = one.add_sequence();
    Batch bb;
    bb.add(s, which == 0 ? prompt : std::vector<Token>(prompt.begin(), prompt.begin() + 12), Last);
    q8_m.forward(bb, one);
    bb.clear();
    bb.add(s, Token(which == 0 ? 42 : 7), true);
    const Logits alone = q8_m.forward(bb, one);
    INFO("sequence " << which);
    CHECK(test::max_abs_diff(both.row(std::size_t(which)), alone.row(0)) <= 1e-4);
  }
}

TEST_CASE("8-bit activations on the real SmolLM2 keep the fp32 path's greedy choices", "[golden][model]") {
  test::require_model();
  const Model ref_m = Model::load(test::model_path(), {.n_threads = 2});
  const Model q8_m = Model::load(test::model_path(), {.n_threads = 2, .cpu_quantize_activations = true});
  const std::vector<Token> prompt =
      ref_m.tokenizer().encode("The capital of France is Paris. The capital of Italy is Rome. The capital of Spain is");
  // The fp32 path's own greedy continuation, fed to both.
  const std::vector<Token> next = test::greedy_continuation(ref_m, prompt, 16);
  const auto ref = decode_rows(ref_m, prompt, next), q8 = decode_rows(q8_m, prompt, next);
  const std::size_t same = test::greedy_agreement(q8, prompt.size(), next);
  INFO("8-bit activations pick the fp32 path's greedy token at " << same << " of " << next.size() << " steps");
  CHECK(same == next.size());
  std::vector<std::vector<float>> ref_dec(ref.begin() + std::ptrdiff_t(prompt.size()), ref.end());
  std::vector<std::vector<float>> q8_dec(q8.begin() + std::ptrdiff_t(prompt.size()), q8.end());
  const double e = test::rel_err(q8_dec, ref_dec);
  INFO("SmolLM2 8-bit activations: max logit error / max logit = " << e);
  CHECK(e > 0.0);
  CHECK(e < 5e-2);
}
