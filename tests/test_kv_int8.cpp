// KVPrecision::Int8 (CPU backend): K / V rows stored as int8 with one fp32 scale each.
//
// * quantize_kv_row: the scale is max|x| / 127, every value is reconstructed within half a
//   step, the largest one exactly, zero rows and non-finite rows are handled.
// * CpuKVStorage with int8: block copy and the host round trip (swap) move values and scales.
// * KVCache sizing: (head_dim + 4) bytes per row, so a byte budget holds ~3.8x the tokens.
// * Against the plain fp32-KV path (the correctness ladder's rung 3): a random model's logits
//   stay close, a batched forward still equals the separate ones bit for bit, swap and fork
//   leave the logits bit-identical, and on the real SmolLM2 the greedy continuation and the
//   logits stay within bounds justified below.
// (The CUDA backend's int8 path is checked against this one in test_cuda_kv_int8.cpp.)
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <random>
#include <vector>

#include "cpu/ops.hpp"
#include "kv/kv_storage.hpp"
#include "kv_int8_checks.hpp"
#include "test_util.hpp"
#include "vireo/batch.hpp"
#include "vireo/error.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/model.hpp"
#include "vireo/tokenizer.hpp"

using namespace vireo;

namespace {

using test::kv_logit_rows;
using test::max_abs_diff;
using test::rel_err;

const std::vector<Token>& kPrompt = test::kInt8Prompt;
const std::vector<Token>& kNext = test::kInt8Next;

}  // namespace

TEST_CASE("int8 KV rows: scale max|x| / 127, values within half a step", "[cpu][kv]") {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  std::vector<float> x(64);
  std::vector<std::int8_t> q(64);
  for (int it = 0; it < 50; ++it) {
    for (auto& v : x) v = u(rng);
    float scale = -1.0f;
    cpu::quantize_kv_row(x.data(), 64, q.data(), &scale);
    float amax = 0.0f;
    std::size_t at = 0;
    for (std::size_t i = 0; i < x.size(); ++i)
      if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), at = i;
    CHECK(scale == amax / 127.0f);
    CHECK(std::abs(int(q[at])) == 127);  // the largest value is a full-scale step
    for (std::size_t i = 0; i < x.size(); ++i) {
      REQUIRE(q[i] >= -127);
      REQUIRE(std::fabs(float(q[i]) * scale - x[i]) <= 0.5f * scale * (1.0f + 1e-5f));
    }
  }
  std::vector<float> zeros(16, 0.0f);
  float scale = -1.0f;
  cpu::quantize_kv_row(zeros.data(), 16, q.data(), &scale);
  CHECK(scale == 0.0f);
  CHECK(std::all_of(q.begin(), q.begin() + 16, [](std::int8_t v) { return v == 0; }));
  zeros[3] = std::numeric_limits<float>::infinity();
  cpu::quantize_kv_row(zeros.data(), 16, q.data(), &scale);
  CHECK(std::isnan(scale));  // poisoned rows stay visible downstream
}

TEST_CASE("int8 CpuKVStorage: block copy and the host round trip carry values and scales", "[cpu][kv]") {
  detail::KVGeometry g;
  g.n_layers = 2;
  g.n_kv_heads = 3;
  g.head_dim = 8;
  g.block_size = 4;
  g.num_blocks = 5;
  g.int8 = true;
  detail::CpuKVStorage s(g);
  CHECK(s.k(0) == nullptr);
  const std::size_t n = g.block_elems(), r = std::size_t(g.block_size) * g.n_kv_heads;
  for (int l = 0; l < g.n_layers; ++l)
    for (std::int64_t b = 0; b < g.num_blocks; ++b) {
      for (std::size_t e = 0; e < n; ++e) {
        s.k8(l)[std::size_t(b) * n + e] = std::int8_t((l * 37 + b * 11 + std::int64_t(e)) % 255 - 127);
        s.v8(l)[std::size_t(b) * n + e] = std::int8_t((l * 53 + b * 7 + std::int64_t(e) * 3) % 255 - 127);
      }
      for (std::size_t e = 0; e < r; ++e) {
        s.k_scale(l)[std::size_t(b) * r + e] = float(l * 1000 + b * 100) + float(e);
        s.v_scale(l)[std::size_t(b) * r + e] = -float(l * 1000 + b * 100) - float(e);
      }
    }
  auto same_block = [&](std::int32_t a, std::int32_t b) {
    for (int l = 0; l < g.n_layers; ++l) {
      if (!std::equal(s.k8(l) + a * n, s.k8(l) + (a + 1) * n, s.k8(l) + b * n)) return false;
      if (!std::equal(s.v8(l) + a * n, s.v8(l) + (a + 1) * n, s.v8(l) + b * n)) return false;
      if (!std::equal(s.k_scale(l) + a * r, s.k_scale(l) + (a + 1) * r, s.k_scale(l) + b * r)) return false;
      if (!std::equal(s.v_scale(l) + a * r, s.v_scale(l) + (a + 1) * r, s.v_scale(l) + b * r)) return false;
    }
    return true;
  };
  CHECK_FALSE(same_block(1, 3));
  s.copy_block(1, 3);
  CHECK(same_block(1, 3));
  std::vector<unsigned char> host(g.bytes_per_block());
  CHECK(host.size() == std::size_t(g.n_layers) * 2 * (n + r * sizeof(float)));
  s.read_block(2, host.data());
  s.write_block(4, host.data());
  CHECK(same_block(2, 4));
  CHECK_FALSE(same_block(2, 0));
}

TEST_CASE("an int8 KV cache holds ~3.8x the tokens of an fp32 one in the same memory", "[cpu][kv]") {
  const Model m = Model::random(test::model_shape(2, 128, 4, 2, 64, 256, 101, 512), 5, {.n_threads = 1});
  const std::size_t budget = std::size_t(8) << 20;
  const KVCache f32(m, {.memory_budget_bytes = budget});
  const KVCache i8(m, {.memory_budget_bytes = budget, .precision = KVPrecision::Int8});
  CHECK(f32.precision() == KVPrecision::Model);
  CHECK(i8.precision() == KVPrecision::Int8);
  // 2 (K, V) x 2 layers x 2 KV heads x (64 int8 + a 4-byte scale) against 64 floats.
  CHECK(i8.bytes_per_token() == 2u * 2 * 2 * (64 + 4));
  CHECK(f32.bytes_per_token() == 2u * 2 * 2 * 64 * 4);
  CHECK(double(i8.capacity_tokens()) >= 3.7 * double(f32.capacity_tokens()));
}

TEST_CASE("int8 KV against the fp32 path on a random model", "[cpu][kv][model]") {
  const ModelConfig cfg = test::model_shape(3, 128, 4, 2, 32, 256, 400, 512);
  const Model m = Model::random(cfg, 21, {.n_threads = 2});
  const auto ref = kv_logit_rows(m, kPrompt, kNext, KVPrecision::Model), q8 = kv_logit_rows(m, kPrompt, kNext, KVPrecision::Int8);
  // Each K / V value moves by at most half a step, max|row| / 254 (0.4% of the row's
  // largest value); through 3 layers of random weights the logits move by a similar
  // fraction (measured 1.2% here on x86-64). 3% of the largest logit leaves room and still
  // catches a wrong scale or a misplaced row (errors of the order of the logits themselves:
  // a greedy decode that had diverged gave 86%).
  const double e = rel_err(q8, ref);
  INFO("int8 KV: max logit error / max logit = " << e);
  CHECK(e > 0.0);  // the int8 path really ran
  CHECK(e < 3e-2);

  // Batched = separate: a row's quantization depends on that row alone. (The fp32 path
  // matches to 1e-4 there, from the matmul's thread split; a K / V value that lands on the
  // other side of a rounding boundary moves by one int8 step, hence the looser bound.) Fork
  // and swap out / in keep the int8 state exactly.
  test::check_int8_cache_ops(m, 1e-2f, 1e-4f, 1e-2f);
}

TEST_CASE("int8 KV on the real SmolLM2 stays close to the fp32 path", "[golden][kv]") {
  test::require_model();
  const Model m = Model::load(test::model_path(), {.n_threads = 2});
  const std::vector<Token> prompt =
      m.tokenizer().encode("The capital of France is Paris. The capital of Italy is Rome. The capital of Spain is");
  // The fp32 path's own greedy continuation, fed to both; the int8 cache's greedy choices
  // along it.
  const std::vector<Token> next = test::greedy_continuation(m, prompt, 16);
  const auto ref = kv_logit_rows(m, prompt, next, KVPrecision::Model), q8 = kv_logit_rows(m, prompt, next, KVPrecision::Int8);
  const std::size_t same = test::greedy_agreement(q8, prompt.size(), next);
  INFO("int8 KV picks the fp32 path's greedy token at " << same << " of " << next.size() << " steps");
  CHECK(same == next.size());
  // Logits: each stored K / V value is within max|row| / 254 of its fp32 value; attention
  // averages those errors over the context, and 30 layers add them up roughly independently.
  // Measured on x86-64: 2.1% of the largest logit, and the same greedy token at all 16
  // steps. The 5% bound leaves room for another summation order and stays far below what a
  // misplaced row or a wrong scale does (tens of percent).
  const double e = rel_err(q8, ref);
  INFO("SmolLM2 int8 KV: max logit error / max logit = " << e);
  CHECK(e < 5e-2);
}

