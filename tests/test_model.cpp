// Model tests on the CPU backend: golden logits and greedy continuations of the real
// SmolLM2-135M-Instruct against HF transformers (tests/fixtures/model_golden.txt, made by
// scripts/golden/make_model_fixtures.py), batched forward == separate forwards, and bad
// input (token ids, unknown sequences, a full cache) giving an Error with the cache intact.
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>

#include "golden_cases.hpp"
#include "test_util.hpp"
#include "vireo/vireo.hpp"

using namespace vireo;

namespace {

using test::GoldenCase;
std::vector<GoldenCase> load_golden() { return test::load_golden_cases("model_golden.txt"); }

const Model& smollm() {
  static Model m = Model::load(test::model_path());
  return m;
}

std::vector<Token> greedy(const Model& m, std::span<const Token> prompt, int n) {
  return test::greedy_tokens(m, prompt, n);
}

ModelConfig tiny_config() { return test::model_shape(2, 64, 4, 2, 16, 96, 101, 512); }

}  // namespace

TEST_CASE("SmolLM2 last-position logits match HF transformers", "[golden][model]") {
  REQUIRE(std::filesystem::exists(test::model_path()));
  const auto cases = load_golden();
  REQUIRE(cases.size() >= 4);
  for (const auto& c : cases) {
    KVCache cache(smollm(), {.num_blocks = std::int64_t(c.ids.size()) / 16 + 2});
    Batch b;
    b.add(cache.add_sequence(), c.ids, Last);
    Logits lg = smollm().forward(b, cache);
    REQUIRE(lg.rows() == 1);
    double max_err = 0;
    for (auto [i, ref] : c.logits) max_err = std::max(max_err, std::abs(double(lg.row(0)[std::size_t(i)]) - ref));
    INFO("prompt: " << c.prompt << " max |logit - ref| = " << max_err);
    // Both sides compute in fp32 from the same dequantized weights; they differ only in
    // summation order (AVX2 8-lane FMA dot products vs PyTorch's GEMM blocking) through
    // 30 layers; measured max error is 1.4e-5..3.7e-5 over the 5 prompts (x86-64 AVX2).
    // Logits are O(10): 5e-4 absolute (~5e-5 relative) leaves 10x headroom for another
    // summation order, and is far below what a real model error (wrong RoPE pairing,
    // norm eps, GQA mapping, a dequantization slip) produces, which is O(0.1..1).
    CHECK(max_err < 5e-4);
  }
  // One prompt of more than 1,000 tokens: RoPE and attention far from position 0.
  CHECK(std::any_of(cases.begin(), cases.end(), [](const GoldenCase& c) { return c.ids.size() >= 1000; }));
}

TEST_CASE("SmolLM2 greedy continuations match HF transformers", "[golden][model]") {
  const auto cases = load_golden();
  for (const auto& c : cases) {
    INFO("prompt: " << c.prompt);
    CHECK(greedy(smollm(), c.ids, int(c.greedy.size())) == c.greedy);
  }
}

TEST_CASE("a batched forward of several sequences equals their separate forwards", "[cpu][model]") {
  Model m = Model::random(tiny_config(), 7, {.n_threads = 2}, gguf::TensorType::Q8_0);
  const std::vector<std::vector<Token>> prompts = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18},
                                                   {40, 41},
                                                   {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 99, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3}};
  // Separate: each prompt alone, all logits.
  std::vector<std::vector<float>> ref;
  for (const auto& p : prompts) {
    KVCache c(m, {.num_blocks = 16, .block_size = 4});
    Batch b;
    b.add(c.add_sequence(), p, All);
    Logits lg = m.forward(b, c);
    for (std::size_t r = 0; r < lg.rows(); ++r) ref.emplace_back(lg.row(r).begin(), lg.row(r).end());
  }
  // Together, in two steps with the sequences interleaved: first chunk of each, then the rest.
  KVCache c(m, {.num_blocks = 32, .block_size = 4});
  std::vector<SeqId> ids;
  for (std::size_t i = 0; i < prompts.size(); ++i) ids.push_back(c.add_sequence());
  std::vector<std::vector<std::vector<float>>> got(prompts.size());
  for (int step = 0; step < 2; ++step) {
    Batch b;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      std::size_t half = prompts[i].size() / 2;
      auto part = step == 0 ? std::span(prompts[i]).first(half) : std::span(prompts[i]).subspan(half);
      b.add(ids[i], part, All);
    }
    Logits lg = m.forward(b, c);
    for (std::size_t r = 0; r < lg.rows(); ++r) {
      std::size_t i = std::size_t(std::find(ids.begin(), ids.end(), lg.seq(r)) - ids.begin());
      got[i].emplace_back(lg.row(r).begin(), lg.row(r).end());
    }
  }
  std::size_t k = 0;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    REQUIRE(got[i].size() == prompts[i].size());
    for (std::size_t t = 0; t < got[i].size(); ++t, ++k) {
      double err = 0;
      for (std::size_t v = 0; v < ref[k].size(); ++v) err = std::max(err, double(std::abs(got[i][t][v] - ref[k][v])));
      INFO("seq " << i << " token " << t);
      CHECK(err < 1e-4);  // same arithmetic, different thread split of rows only
    }
  }
}

TEST_CASE("bad input to forward throws and leaves the cache as it was", "[cpu][model]") {
  Model m = Model::random(tiny_config(), 3, {.n_threads = 1}, gguf::TensorType::F32);
  KVCache c(m, {.num_blocks = 2, .block_size = 4});
  SeqId s = c.add_sequence();
  Batch b;
  b.add(s, {1, 2, 3}, Last);
  m.forward(b, c);
  REQUIRE(c.length(s) == 3);

  Batch bad;
  bad.add(s, {5, 101}, Last);
  CHECK_THROWS_MATCHES(m.forward(bad, c), Error, Catch::Matchers::Predicate<Error>([](const Error& e) {
                         return e.code() == ErrorCode::InvalidArgument && std::string(e.what()).find("101") != std::string::npos;
                       }));
  bad.clear();
  bad.add(s, {-1}, Last);
  CHECK_THROWS_AS(m.forward(bad, c), Error);
  bad.clear();
  bad.add(s + 100, {1}, Last);
  CHECK_THROWS_AS(m.forward(bad, c), Error);
  CHECK(c.length(s) == 3);

  // 3 + 6 tokens need 3 blocks of 4; the pool has 2: CacheFull, nothing appended.
  Batch big;
  big.add(s, {1, 2, 3, 4, 5, 6}, Last);
  try {
    m.forward(big, c);
    FAIL("expected CacheFull");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::CacheFull);
  }
  CHECK(c.length(s) == 3);
  // The cache still works and gives the same logits as a fresh run of the same tokens.
  Batch one;
  one.add(s, {4}, Last);
  Logits a = m.forward(one, c);
  KVCache fresh(m, {.num_blocks = 2, .block_size = 4});
  Batch all;
  all.add(fresh.add_sequence(), {1, 2, 3, 4}, Last);
  Logits r = m.forward(all, fresh);
  for (int v = 0; v < 101; ++v) CHECK(a.row(0)[v] == Approx(r.row(0)[v]).margin(1e-5));
}

TEST_CASE("a cancelled forward throws Cancelled and rolls the cache back", "[cpu][model]") {
  std::atomic<bool> cancel{false};
  ModelOptions o;
  o.n_threads = 1;
  o.cancel = &cancel;
  Model m = Model::random(tiny_config(), 9, o, gguf::TensorType::F32);
  KVCache c(m, {.num_blocks = 8, .block_size = 4});
  SeqId s = c.add_sequence();
  Batch b;
  b.add(s, {1, 2, 3, 4, 5}, Last);
  Logits before = m.forward(b, c);
  REQUIRE(c.length(s) == 5);
  cancel = true;
  Batch more;
  more.add(s, {6, 7, 8, 9}, Last);  // fills block 2 (would be registered for prefix reuse)
  try {
    m.forward(more, c);
    FAIL("expected Cancelled");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::Cancelled);
  }
  CHECK(c.length(s) == 5);
  CHECK(c.stats().blocks_used == 2);
  cancel = false;
  // A new sequence with the same 9-token prompt must not reuse the never-computed block.
  std::int64_t reused = -1;
  SeqId s2 = c.add_sequence(std::vector<Token>{1, 2, 3, 4, 5, 6, 7, 8, 9}, &reused);
  CHECK(reused == 4);  // only the first block, which was really computed
  c.remove(s2);
}

TEST_CASE("forward_sample equals forward + Sampler::sample per row, and rolls back on error", "[cpu][model]") {
  Model m = Model::random(tiny_config(), 21, {.n_threads = 2}, gguf::TensorType::Q8_0);
  const std::vector<Token> p0 = {3, 4, 5, 6, 7}, p1 = {9, 9, 8};
  SamplerParams sp0{.temperature = 0.9f, .top_k = 20, .seed = 5};
  SamplerParams sp1{.temperature = 0.0f, .repetition_penalty = 1.3f};
  // Reference: plain forward, then each row with its own sampler.
  KVCache ca(m, {.num_blocks = 16, .block_size = 4});
  SeqId a0 = ca.add_sequence(), a1 = ca.add_sequence();
  Batch b;
  b.add(a0, p0, Last);
  b.add(a1, p1, Last);
  Sampler r0(sp0), r1(sp1);
  Logits lg = m.forward(b, ca);
  Sampled e0 = r0.sample(lg.row(0), p0), e1 = r1.sample(lg.row(1), p1);

  KVCache cb(m, {.num_blocks = 16, .block_size = 4});
  SeqId b0 = cb.add_sequence(), b1 = cb.add_sequence();
  Batch bb;
  bb.add(b0, p0, Last);
  bb.add(b1, p1, Last);
  Sampler s0(sp0), s1(sp1);
  Sampler* samplers[] = {&s0, &s1};
  std::span<const Token> hist[] = {p0, p1};
  auto got = m.forward_sample(bb, cb, samplers, hist);
  REQUIRE(got.size() == 2);
  CHECK(got[0].token == e0.token);
  CHECK(got[0].logprob == Approx(e0.logprob));
  CHECK(got[1].token == e1.token);
  CHECK(s0.counter() == r0.counter());
  CHECK(s1.counter() == r1.counter());
  CHECK(cb.length(b0) == 5);

  // Wrong sampler count: InvalidArgument, nothing changes.
  Batch one;
  one.add(b0, got[0].token, true);
  CHECK_THROWS_AS(m.forward_sample(one, cb, samplers, {}), Error);
  CHECK(cb.length(b0) == 5);
  // A history token outside the vocabulary makes the penalised sampler throw after the
  // step ran: the step is rolled back and the stream does not advance.
  Batch two;
  two.add(b0, got[0].token, true);
  two.add(b1, got[1].token, true);
  const std::vector<Token> bad = {1, 500};
  std::span<const Token> hist2[] = {p0, bad};
  const auto c0 = s0.counter();
  CHECK_THROWS_AS(m.forward_sample(two, cb, samplers, hist2), Error);
  CHECK(cb.length(b0) == 5);
  CHECK(cb.length(b1) == 3);
  CHECK(s0.counter() == c0);
}
