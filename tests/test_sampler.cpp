// Tests for the Philox generator and vireo::Sampler.
//
// The expected distributions are computed here from the definition (logit bias -> penalties -> temperature
// -> full stable sort -> top-k -> softmax -> top-p -> min-p -> renormalise), in double, with no
// code shared with src/sampling. Statistical tests use fixed seeds and sample counts, so they
// are deterministic; the chi-square threshold is the p = 0.001 critical value for the degrees
// of freedom, and a token outside the kept set must never be drawn.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "sampling/philox.hpp"
#include "vireo/error.hpp"
#include "vireo/sampler.hpp"

using vireo::Sampled;
using vireo::Sampler;
using vireo::SamplerParams;
using vireo::Token;

namespace {

constexpr float NEG_INF = -std::numeric_limits<float>::infinity();

// Chi-square critical values at p = 0.001 for 1..30 degrees of freedom (standard tables).
constexpr double CHI2_CRIT_0001[31] = {0,      10.828, 13.816, 16.266, 18.467, 20.515, 22.458,
                                       24.322, 26.124, 27.877, 29.588, 31.264, 32.909, 34.528,
                                       36.123, 37.697, 39.252, 40.790, 42.312, 43.820, 45.315,
                                       46.797, 48.268, 49.728, 51.179, 52.620, 54.052, 55.476,
                                       56.892, 58.301, 59.703};

struct Kept {
  int id;
  double prob;
};

// The intended distribution, written straight from the definition: kept tokens in
// descending-probability order (ties to the lower id) with their final probabilities.
std::vector<Kept> reference(const std::vector<float>& logits, const std::vector<Token>& history,
                            const SamplerParams& p) {
  std::vector<double> l(logits.begin(), logits.end());
  for (auto [t, b] : p.logit_bias) l[std::size_t(t)] += b;
  std::size_t start = 0;
  if (p.penalty_last_n >= 0 && history.size() > std::size_t(p.penalty_last_n))
    start = history.size() - std::size_t(p.penalty_last_n);
  std::map<int, int> counts;
  for (std::size_t i = start; i < history.size(); ++i) counts[history[i]]++;
  for (auto [t, c] : counts) {
    double v = l[t];
    v = v > 0 ? v / p.repetition_penalty : v * p.repetition_penalty;
    l[t] = v - p.presence_penalty - double(p.frequency_penalty) * c;
  }
  std::vector<int> ids;
  for (int i = 0; i < int(l.size()); ++i)
    if (l[i] != -INFINITY) ids.push_back(i);
  std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) { return l[a] > l[b]; });
  if (p.top_k > 0 && std::size_t(p.top_k) < ids.size()) ids.resize(std::size_t(p.top_k));
  const double mx = l[ids[0]] / p.temperature;
  std::vector<double> w;
  double z = 0;
  for (int id : ids) {
    w.push_back(std::exp(l[id] / p.temperature - mx));
    z += w.back();
  }
  std::size_t keep = ids.size();
  if (p.top_p < 1.0f) {
    double cum = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      cum += w[i] / z;
      if (cum >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  const double pmax = w[0] / z;
  std::size_t keep_min = keep;
  for (std::size_t i = 0; i < keep; ++i)
    if (w[i] / z < p.min_p * pmax) {
      keep_min = i;
      break;
    }
  keep = std::max<std::size_t>(1, keep_min);
  double zk = 0;
  for (std::size_t i = 0; i < keep; ++i) zk += w[i];
  std::vector<Kept> out;
  for (std::size_t i = 0; i < keep; ++i) out.push_back({ids[i], w[i] / zk});
  return out;
}

// Pearson chi-square of token counts (n draws) against a reference distribution: the
// statistic, its p = 0.001 critical value, and the draws that fell outside the kept set.
struct Verdict {
  double chi2 = 0, crit = 0;
  int outside = 0;
  bool pass() const { return outside == 0 && chi2 < crit; }
};
Verdict chi_square(const std::vector<Kept>& ref, std::map<int, int> counts, int n) {
  REQUIRE(ref.size() >= 2);
  REQUIRE(ref.size() <= 31);
  Verdict v;
  int seen = 0;
  for (const auto& k : ref) {
    const double expected = k.prob * n;
    REQUIRE(expected >= 5.0);  // the test's own design constraint for a valid chi-square
    const int observed = counts.count(k.id) ? counts[k.id] : 0;
    seen += observed;
    v.chi2 += (observed - expected) * (observed - expected) / expected;
  }
  v.outside = n - seen;
  v.crit = CHI2_CRIT_0001[ref.size() - 1];
  return v;
}

// Draws `n` tokens, checks none falls outside the kept set and that the chi-square statistic
// against the reference is below the p = 0.001 critical value. Returns the statistic.
double check_distribution(const std::vector<float>& logits, const std::vector<Token>& history,
                          const SamplerParams& params, int n) {
  const auto ref = reference(logits, history, params);
  std::map<int, int> counts;
  Sampler s(params);
  for (int i = 0; i < n; ++i) counts[s.sample(logits, history).token]++;
  const Verdict v = chi_square(ref, counts, n);
  CHECK(v.outside == 0);  // zero samples outside the kept set
  INFO("chi2 = " << v.chi2 << ", df = " << ref.size() - 1 << ", critical = " << v.crit);
  CHECK(v.chi2 < v.crit);
  return v.chi2;
}

// n draws from `dist` (a deliberately wrong distribution) by the sampler's own rule: walk
// the list with u = uniform01(seed, i). The counts a sampler with that bug would produce.
std::map<int, int> draws_from(const std::vector<Kept>& dist, std::uint64_t seed, int n) {
  std::map<int, int> counts;
  for (int i = 0; i < n; ++i) {
    const double u = vireo::uniform01(seed, std::uint64_t(i));
    double cum = 0;
    int pick = dist.back().id;
    for (const auto& k : dist) {
      cum += k.prob;
      if (cum > u) {
        pick = k.id;
        break;
      }
    }
    counts[pick]++;
  }
  return counts;
}

std::vector<Kept> renormalised(std::vector<Kept> d) {
  double z = 0;
  for (const auto& k : d) z += k.prob;
  for (auto& k : d) k.prob /= z;
  return d;
}

std::vector<float> random_logits(std::size_t n, std::uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace

TEST_CASE("Philox-4x32-10 matches the Random123 known-answer vectors", "[cpu][sampler]") {
  // Random123 tests/kat_vectors, "philox4x32 10" lines (also used by TensorFlow's
  // philox_random test): counter, key -> output.
  using vireo::detail::Philox4x32;
  using vireo::detail::philox4x32_10;
  auto r = philox4x32_10(Philox4x32{{0, 0, 0, 0}}, 0, 0);
  CHECK(r.v[0] == 0x6627e8d5u);
  CHECK(r.v[1] == 0xe169c58du);
  CHECK(r.v[2] == 0xbc57ac4cu);
  CHECK(r.v[3] == 0x9b00dbd8u);
  r = philox4x32_10(Philox4x32{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu,
                    0xffffffffu);
  CHECK(r.v[0] == 0x408f276du);
  CHECK(r.v[1] == 0x41c83b0eu);
  CHECK(r.v[2] == 0xa20bc7c6u);
  CHECK(r.v[3] == 0x6d5451fdu);
  r = philox4x32_10(Philox4x32{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u,
                    0x299f31d0u);
  CHECK(r.v[0] == 0xd16cfe09u);
  CHECK(r.v[1] == 0x94fdccebu);
  CHECK(r.v[2] == 0x5001e420u);
  CHECK(r.v[3] == 0x24126ea1u);
}

TEST_CASE("uniform01 takes the top 24 bits of the first Philox word", "[cpu][sampler]") {
  // (seed 0, counter 0) is the all-zero KAT block, first word 0x6627e8d5.
  CHECK(vireo::uniform01(0, 0) == float(0x6627e8) / 16777216.0f);
  // seed = 0xffffffff'ffffffff with counter (0xffffffff, 0xffffffff, 0, 0) is not a KAT, but
  // determinism and range are: same inputs, same bits; always in [0, 1).
  double sum = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const float u = vireo::uniform01(12345, std::uint64_t(i));
    REQUIRE(u >= 0.0f);
    REQUIRE(u < 1.0f);
    sum += u;
  }
  CHECK(std::abs(sum / n - 0.5) < 0.005);  // sd of the mean is 0.00065
  CHECK(vireo::uniform01(7, 1ull << 40) == vireo::uniform01(7, 1ull << 40));
  CHECK(vireo::uniform01(7, 1ull << 40) != vireo::uniform01(7, (1ull << 40) + 1));
  CHECK(vireo::uniform01(7, 3) != vireo::uniform01(8, 3));
}

TEST_CASE("greedy sampling is argmax with ties to the lowest id", "[cpu][sampler]") {
  auto logits = random_logits(1000, 1, 2.0f);
  const float top = *std::max_element(logits.begin(), logits.end()) + 1.0f;
  logits[300] = top;  // the unique maximum, then a tie at a higher id that must lose
  logits[800] = top;
  const int argmax = 300;
  const auto mx = logits.begin() + argmax;
  Sampler s({.temperature = 0.0f, .seed = 3});
  const Sampled r = s.sample(logits);
  CHECK(r.token == argmax);
  double z = 0;
  for (float v : logits) z += std::exp(double(v) - *mx);
  CHECK(r.logprob == Approx(-std::log(z)).margin(1e-5));
  CHECK(s.counter() == 1);
  // A negative temperature is greedy too, and so is every repeat.
  Sampler s2({.temperature = -1.0f});
  for (int i = 0; i < 5; ++i) CHECK(s2.sample(logits).token == argmax);
}

TEST_CASE("sampling is reproducible from the seed and differs across seeds", "[cpu][sampler]") {
  const auto logits = random_logits(500, 2, 0.5f);  // flat: many plausible tokens
  SamplerParams p{.temperature = 1.0f, .seed = 42};
  Sampler a(p), b(p);
  std::vector<Token> ta, tb, tc;
  for (int i = 0; i < 200; ++i) {
    ta.push_back(a.sample(logits).token);
    tb.push_back(b.sample(logits).token);
  }
  CHECK(ta == tb);
  p.seed = 43;
  Sampler c(p);
  for (int i = 0; i < 200; ++i) tc.push_back(c.sample(logits).token);
  CHECK(ta != tc);
  const auto distinct = std::set<Token>(ta.begin(), ta.end()).size();
  CHECK(distinct > 50);
  // reseed() restarts the stream.
  a.reseed(42);
  CHECK(a.counter() == 0);
  CHECK(a.sample(logits).token == ta[0]);
}

TEST_CASE("temperature sampling follows softmax(logits / T)", "[cpu][sampler]") {
  const std::vector<float> logits = {1.0f, 2.5f, 0.2f, -0.5f, 1.8f, 3.0f, 0.0f, 2.0f};
  check_distribution(logits, {}, {.temperature = 0.7f, .seed = 11}, 20000);
  check_distribution(logits, {}, {.temperature = 2.0f, .seed = 12}, 20000);
}

TEST_CASE("top-k keeps the k largest logits", "[cpu][sampler]") {
  // Ids 3, 7, 1 hold the three largest logits; 5 and 9 tie for the fourth (5 wins: lower id).
  std::vector<float> logits = {0.1f, 2.0f, -1.0f, 2.6f, 0.3f, 1.2f, 0.0f, 2.2f, -0.4f, 1.2f};
  SamplerParams p{.temperature = 1.0f, .top_k = 4, .seed = 5};
  const auto ref = reference(logits, {}, p);
  REQUIRE(ref.size() == 4);
  CHECK(ref[0].id == 3);
  CHECK(ref[3].id == 5);  // stable sort: 5 before 9
  check_distribution(logits, {}, p, 20000);
  {  // the tie at 1.2 for the fourth place: 5 and 9 tie, 5 wins
    Sampler s(p);
    for (int i = 0; i < 5000; ++i) REQUIRE(s.sample(logits).token != 9);
  }
  p.top_k = 5;  // both tied tokens kept
  REQUIRE(reference(logits, {}, p).size() == 5);
  check_distribution(logits, {}, p, 20000);
  p.top_k = 1000;  // larger than the vocabulary: no truncation
  CHECK(reference(logits, {}, p).size() == logits.size());
  check_distribution(logits, {}, p, 20000);
}

TEST_CASE("top-p keeps the smallest prefix reaching the mass", "[cpu][sampler]") {
  // Probabilities (T = 1) of log-weights: 0.40, 0.25, 0.15, 0.10, 0.05, 0.05. top_p = 0.8 keeps
  // 0.40 + 0.25 + 0.15 = 0.80 >= 0.75 at the third token (0.65 < 0.75 at the second).
  const std::vector<float> logits = {std::log(0.10f), std::log(0.40f), std::log(0.05f),
                                     std::log(0.25f), std::log(0.05f), std::log(0.15f)};
  SamplerParams p{.temperature = 1.0f, .top_p = 0.75f, .seed = 9};
  auto ref = reference(logits, {}, p);
  REQUIRE(ref.size() == 3);
  CHECK(ref[0].prob == Approx(0.40 / 0.80));
  check_distribution(logits, {}, p, 20000);
  p.top_p = 0.9f;  // keeps four
  REQUIRE(reference(logits, {}, p).size() == 4);
  check_distribution(logits, {}, p, 20000);
  // A larger vocabulary exercises the lazily grown sorted prefix.
  const auto big = random_logits(4096, 7, 1.0f);
  auto peaked = big;
  for (int i = 0; i < 8; ++i) peaked[std::size_t(i) * 500] = 9.0f - 0.3f * float(i);
  check_distribution(peaked, {}, {.temperature = 1.0f, .top_p = 0.6f, .seed = 2}, 8000);
}

TEST_CASE("min-p keeps tokens with p >= min_p * p_max", "[cpu][sampler]") {
  const std::vector<float> logits = {0.0f, -0.5f, -1.0f, -2.0f, -2.2f, -4.0f, -6.0f};
  // exp(-2.0) = 0.135 >= 0.12, exp(-2.2) = 0.111 < 0.12: keeps ids 0..3.
  SamplerParams p{.temperature = 1.0f, .min_p = 0.12f, .seed = 21};
  REQUIRE(reference(logits, {}, p).size() == 4);
  check_distribution(logits, {}, p, 20000);
  // min_p applies after temperature: at T = 2 the ratios are exp(l / 2).
  p.temperature = 2.0f;
  p.min_p = 0.3f;  // exp(-1.0) = 0.37 kept (id 3), exp(-1.1) = 0.33 kept (id 4), exp(-2) dropped
  REQUIRE(reference(logits, {}, p).size() == 5);
  check_distribution(logits, {}, p, 20000);
}

TEST_CASE("combined truncation and penalties follow the reference", "[cpu][sampler]") {
  const std::vector<float> logits = {1.5f, 0.2f, 2.4f, -0.3f, 1.9f, 0.8f, 2.1f, -1.0f, 1.1f, 0.5f};
  const std::vector<Token> history = {2, 2, 6, 0, 9, 2};
  SamplerParams p{.temperature = 1.3f,
                  .top_k = 7,
                  .top_p = 0.92f,
                  .min_p = 0.05f,
                  .repetition_penalty = 1.3f,
                  .presence_penalty = 0.2f,
                  .frequency_penalty = 0.1f,
                  .penalty_last_n = 5,
                  .seed = 77};
  check_distribution(logits, history, p, 20000);
}

TEST_CASE("penalties shift exactly the logits of the penalty window", "[cpu][sampler]") {
  const std::vector<float> logits = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 1.0f};
  // Window (last 4) = {0, 1, 0, 4}; token 5 is outside it.
  const std::vector<Token> history = {5, 0, 1, 0, 4};
  SamplerParams p{.temperature = 1.0f,
                  .repetition_penalty = 2.0f,
                  .presence_penalty = 0.5f,
                  .frequency_penalty = 0.25f,
                  .penalty_last_n = 4,
                  .seed = 4};
  // By hand: 0: 2/2 - 0.5 - 2*0.25 = 0; 1: -1*2 - 0.5 - 0.25 = -2.75; 4: -2*2 - 0.5 - 0.25 = -4.75.
  const std::vector<double> pen = {0.0, -2.75, 0.5, 3.0, -4.75, 1.0};
  double z = 0;
  for (double v : pen) z += std::exp(v);
  Sampler s(p);
  std::set<Token> drawn;
  for (int i = 0; i < 400; ++i) {
    const Sampled r = s.sample(logits, history);
    REQUIRE(r.token >= 0);
    REQUIRE(r.token < 6);
    // With no truncation the logprob is the log softmax of the penalised logits.
    REQUIRE(r.logprob == Approx(pen[std::size_t(r.token)] - std::log(z)).margin(1e-5));
    drawn.insert(r.token);
  }
  CHECK(drawn.size() >= 5);  // every entry but the tiny -4.75 is checked above
  check_distribution(logits, history, p, 20000);

  // The penalty can move the argmax: token 3 repeated enough falls behind token 0.
  const std::vector<Token> rep3 = {3, 3, 3, 3};
  Sampler g({.temperature = 0.0f, .frequency_penalty = 0.5f});
  CHECK(g.sample(logits).token == 3);
  CHECK(g.sample(logits, rep3).token == 0);  // 3 - 4 * 0.5 = 1 < 2
  // penalty_last_n = 0 disables the penalties; -1 uses the whole history.
  Sampler g0({.temperature = 0.0f, .frequency_penalty = 0.5f, .penalty_last_n = 0});
  CHECK(g0.sample(logits, rep3).token == 3);
  const std::vector<Token> old3 = {3, 3, 3, 3, 1, 1};
  Sampler g2({.temperature = 0.0f, .frequency_penalty = 0.5f, .penalty_last_n = 2});
  CHECK(g2.sample(logits, old3).token == 3);
  Sampler gall({.temperature = 0.0f, .frequency_penalty = 0.5f, .penalty_last_n = -1});
  CHECK(gall.sample(logits, old3).token == 0);
  // Greedy logprob is the log softmax of the penalised logits.
  Sampler gp({.temperature = 0.0f,
              .repetition_penalty = 2.0f,
              .presence_penalty = 0.5f,
              .frequency_penalty = 0.25f,
              .penalty_last_n = 4});
  const Sampled r = gp.sample(logits, history);
  CHECK(r.token == 3);
  CHECK(r.logprob == Approx(3.0 - std::log(z)).margin(1e-5));
}

TEST_CASE("the logit bias is added before the penalties and can ban a token", "[cpu][sampler]") {
  const std::vector<float> logits = {1.5f, 0.2f, 2.4f, -0.3f, 1.9f, 0.8f, 2.1f, -1.0f, 1.1f, 0.5f};
  const std::vector<Token> history = {2, 2, 6, 0, 9, 2};
  // Token 2 is biased down and penalised, 7 pushed up, 4 banned, 9 biased twice (they add).
  SamplerParams p{.temperature = 0.9f,
                  .top_k = 8,
                  .repetition_penalty = 1.3f,
                  .presence_penalty = 0.2f,
                  .penalty_last_n = 5,
                  .seed = 5,
                  .logit_bias = {{2, -1.0f}, {7, 3.5f}, {4, NEG_INF}, {9, 0.5f}, {9, 0.25f}}};
  check_distribution(logits, history, p, 20000);
  Sampler s(p);
  for (int i = 0; i < 2000; ++i) REQUIRE(s.sample(logits, history).token != 4);
  // Greedy follows the biased logits: 7 becomes the argmax (-1 + 3.5 = 2.5 > 2.4).
  Sampler g({.temperature = 0.0f, .logit_bias = {{7, 3.5f}}});
  CHECK(g.sample(logits).token == 7);
  CHECK(g.host_only());
  CHECK_FALSE(Sampler({.temperature = 0.0f}).host_only());
  // Refused: NaN / +inf bias, a negative token (at construction), a token beyond the row
  // (when sampling; the stream does not advance).
  CHECK_THROWS_AS(Sampler({.logit_bias = {{1, std::nanf("")}}}), vireo::Error);
  CHECK_THROWS_AS(Sampler({.logit_bias = {{1, -NEG_INF}}}), vireo::Error);
  CHECK_THROWS_AS(Sampler({.logit_bias = {{-1, 1.0f}}}), vireo::Error);
  Sampler far({.logit_bias = {{10, 1.0f}}});
  CHECK_THROWS_AS(far.sample(logits), vireo::Error);
  CHECK(far.counter() == 0);
  // Banning every token leaves nothing to draw.
  SamplerParams all{.temperature = 0.0f};
  for (Token t = 0; t < 10; ++t) all.logit_bias.emplace_back(t, NEG_INF);
  Sampler none(all);
  CHECK_THROWS_AS(none.sample(logits), vireo::Error);
}

TEST_CASE("sampled token and logprob agree with the reference draw", "[cpu][sampler]") {
  // For each draw the reference walks its kept list with the same u = uniform01(seed, counter)
  // and must land on the same token; the logprob must be the log of its probability.
  std::mt19937 rng(99);
  int draws = 0;
  for (int cfg = 0; cfg < 60; ++cfg) {
    const std::size_t vocab = cfg % 10 == 0 ? 49152 : 300;
    auto logits = random_logits(vocab, std::uint32_t(cfg), cfg % 3 == 0 ? 3.0f : 1.0f);
    if (cfg % 4 == 1)
      for (std::size_t i = 0; i < vocab; i += 7) logits[i] = NEG_INF;  // masked tokens
    std::vector<Token> history;
    for (int i = 0; i < 20; ++i) history.push_back(Token(rng() % vocab));
    SamplerParams p;
    p.seed = rng();
    p.temperature = 0.5f + float(cfg % 5) * 0.3f;
    p.top_k = cfg % 3 == 0 ? 0 : int(1 + rng() % 50);
    p.top_p = cfg % 2 == 0 ? 1.0f : 0.5f + 0.1f * float(cfg % 5);
    p.min_p = cfg % 5 == 2 ? 0.05f : 0.0f;
    if (vocab == 49152 && p.top_k == 0) p.top_k = 40;  // keep the big case fast
    p.repetition_penalty = cfg % 4 == 3 ? 1.2f : 1.0f;
    p.presence_penalty = cfg % 6 == 5 ? 0.3f : 0.0f;
    p.frequency_penalty = cfg % 7 == 6 ? 0.2f : 0.0f;
    const auto ref = reference(logits, history, p);
    Sampler s(p);
    for (int d = 0; d < 20; ++d) {
      const double u = vireo::uniform01(p.seed, s.counter());
      double cum = 0;
      std::size_t pick = ref.size() - 1;
      for (std::size_t i = 0; i < ref.size(); ++i) {
        cum += ref[i].prob;
        if (cum > u) {
          pick = i;
          break;
        }
      }
      const Sampled r = s.sample(logits, history);
      INFO("config " << cfg << " draw " << d << " u " << u);
      REQUIRE(r.token == ref[pick].id);
      REQUIRE(r.logprob == Approx(std::log(ref[pick].prob)).margin(1e-4));
      ++draws;
    }
  }
  CHECK(draws == 1200);
}

TEST_CASE("masked (-inf) tokens are never drawn and tiny temperatures stay finite",
          "[cpu][sampler]") {
  std::vector<float> logits(64, NEG_INF);
  logits[10] = 0.5f;
  logits[20] = 0.0f;
  logits[30] = -0.5f;
  Sampler s({.temperature = 1.0f, .seed = 1});
  std::set<Token> seen;
  for (int i = 0; i < 2000; ++i) seen.insert(s.sample(logits).token);
  CHECK(seen == std::set<Token>{10, 20, 30});
  // T = 1e-30: (l - max) / T underflows to -inf for everything but the max; no NaN, no +inf.
  Sampler cold({.temperature = 1e-30f, .seed = 1});
  for (int i = 0; i < 50; ++i) {
    const Sampled r = cold.sample(logits);
    CHECK(r.token == 10);
    CHECK(r.logprob == 0.0f);
  }
}

TEST_CASE("invalid sampler inputs throw InvalidArgument and leave the sampler unchanged",
          "[cpu][sampler]") {
  auto throws_invalid = [](auto&& f, const char* needle) {
    try {
      f();
    } catch (const vireo::Error& e) {
      CHECK(e.code() == vireo::ErrorCode::InvalidArgument);
      CHECK_THAT(e.what(), Catch::Contains(needle));
      return;
    }
    FAIL("no vireo::Error thrown, expected one mentioning " << needle);
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  throws_invalid([&] { Sampler s({.temperature = nan}); }, "temperature");
  throws_invalid([&] { Sampler s({.top_p = 0.0f}); }, "top_p = 0");
  throws_invalid([&] { Sampler s({.top_p = 1.5f}); }, "top_p = 1.5");
  throws_invalid([&] { Sampler s({.top_p = nan}); }, "top_p");
  throws_invalid([&] { Sampler s({.min_p = -0.1f}); }, "min_p = -0.1");
  throws_invalid([&] { Sampler s({.min_p = 1.5f}); }, "min_p = 1.5");
  throws_invalid([&] { Sampler s({.top_k = -3}); }, "top_k = -3");
  throws_invalid([&] { Sampler s({.repetition_penalty = 0.0f}); }, "repetition_penalty");
  throws_invalid([&] { Sampler s({.penalty_last_n = -2}); }, "penalty_last_n = -2");

  Sampler s({.temperature = 0.8f, .seed = 5});
  const std::vector<float> good = {0.1f, 0.2f, 0.3f};
  s.sample(good);
  REQUIRE(s.counter() == 1);
  throws_invalid([&] { s.sample(std::span<const float>{}); }, "empty");
  throws_invalid([&] { s.sample(std::vector<float>{0.1f, nan, 0.3f}); }, "token 1");
  throws_invalid(
      [&] { s.sample(std::vector<float>{0.1f, std::numeric_limits<float>::infinity()}); },
      "inf");
  throws_invalid([&] { s.sample(std::vector<float>{NEG_INF, NEG_INF}); }, "-inf");
  const std::vector<Token> bad_hi = {0, 3};
  throws_invalid([&] { s.sample(good, bad_hi); }, "token 3");
  const std::vector<Token> bad_lo = {-1};
  throws_invalid([&] { s.sample(good, bad_lo); }, "token -1");
  // Failed calls did not advance the stream: the next draw is the one a fresh sampler makes
  // as its second.
  CHECK(s.counter() == 1);
  Sampler fresh({.temperature = 0.8f, .seed = 5});
  fresh.sample(good);
  CHECK(s.sample(good).token == fresh.sample(good).token);
}

// Negative controls: the chi-square check above must reject samplers with the bugs it is
// meant to catch. Each broken variant is a distribution a buggy sampler would draw from,
// sampled with the same counter-based stream and the same draw count as the real tests.
TEST_CASE("negative controls: the distribution check rejects broken samplers", "[cpu][sampler]") {
  const int n = 20000;
  const std::vector<float> logits = {1.5f, 0.2f, 2.4f, -0.3f, 1.9f, 0.8f, 2.1f, -1.0f, 1.1f, 0.5f};
  const std::vector<Token> history = {2, 2, 6, 0, 9, 2};
  SamplerParams p{.temperature = 1.3f,
                  .top_k = 7,
                  .top_p = 0.92f,
                  .min_p = 0.05f,
                  .repetition_penalty = 1.3f,
                  .presence_penalty = 0.2f,
                  .frequency_penalty = 0.1f,
                  .penalty_last_n = 5,
                  .seed = 77};
  const auto ref = reference(logits, history, p);
  REQUIRE(ref.size() >= 4);
  // The control of the controls: the correct distribution, drawn the same way, passes.
  CHECK(chi_square(ref, draws_from(ref, p.seed, n), n).pass());

  SECTION("top-p drops the boundary token") {
    auto broken = ref;
    broken.pop_back();
    const Verdict v = chi_square(ref, draws_from(renormalised(broken), p.seed, n), n);
    INFO("chi2 " << v.chi2 << " critical " << v.crit);
    CHECK_FALSE(v.pass());
  }
  SECTION("top-p keeps one token too many") {
    auto wide = p;
    wide.top_p = 1.0f;
    wide.min_p = 0.0f;
    const auto all = reference(logits, history, wide);
    REQUIRE(all.size() > ref.size());
    auto broken = ref;
    broken.push_back({all[ref.size()].id, all[ref.size()].prob});
    const Verdict v = chi_square(ref, draws_from(renormalised(broken), p.seed, n), n);
    CHECK(v.outside > 0);
    CHECK_FALSE(v.pass());
  }
  SECTION("no renormalisation after truncation: the cut mass lands on the last kept token") {
    auto wide = p;
    wide.top_p = 1.0f;
    wide.min_p = 0.0f;
    const auto all = reference(logits, history, wide);
    auto broken = ref;
    double kept = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
      broken[i].prob = all[i].prob;
      kept += all[i].prob;
    }
    broken.back().prob += 1.0 - kept;
    const Verdict v = chi_square(ref, draws_from(broken, p.seed, n), n);
    INFO("chi2 " << v.chi2 << " critical " << v.crit);
    CHECK_FALSE(v.pass());
  }
  SECTION("temperature multiplies instead of divides") {
    auto bad = p;
    bad.temperature = 1.0f / p.temperature;
    const Verdict v = chi_square(ref, draws_from(reference(logits, history, bad), p.seed, n), n);
    INFO("chi2 " << v.chi2 << " critical " << v.crit);
    CHECK_FALSE(v.pass());
  }
  SECTION("penalties over the whole history instead of the last penalty_last_n tokens") {
    auto bad = p;
    bad.penalty_last_n = -1;
    const Verdict v = chi_square(ref, draws_from(reference(logits, history, bad), p.seed, n), n);
    INFO("chi2 " << v.chi2 << " critical " << v.crit);
    CHECK_FALSE(v.pass());
  }
  SECTION("repetition penalty multiplies positive logits") {
    auto bad = p;
    bad.repetition_penalty = 1.0f / p.repetition_penalty;
    const Verdict v = chi_square(ref, draws_from(reference(logits, history, bad), p.seed, n), n);
    INFO("chi2 " << v.chi2 << " critical " << v.crit);
    CHECK_FALSE(v.pass());
  }
}

// Sampler::distribution (the p and q of speculative sampling) against the independent
// reference, element by element, over many settings: every kept token's probability within
// 1e-5, every other token exactly 0, greedy one-hot on the penalised argmax.
TEST_CASE("Sampler::distribution equals the reference distribution", "[cpu][sampler]") {
  std::mt19937 rng(4242);
  int checked = 0;
  for (int cfg = 0; cfg < 80; ++cfg) {
    const std::size_t vocab = cfg % 10 == 0 ? 4096 : 64;
    auto logits = random_logits(vocab, std::uint32_t(500 + cfg), cfg % 3 == 0 ? 3.0f : 1.0f);
    if (cfg % 4 == 1)
      for (std::size_t i = 0; i < vocab; i += 5) logits[i] = NEG_INF;
    if (cfg % 6 == 2)  // ties at the truncation boundaries
      for (std::size_t i = 0; i < vocab; i += 3) logits[i] = 0.5f;
    std::vector<Token> history;
    for (int i = 0; i < 24; ++i) history.push_back(Token(rng() % vocab));
    SamplerParams p;
    p.seed = rng();
    p.temperature = cfg % 9 == 4 ? 0.0f : 0.4f + float(cfg % 5) * 0.35f;
    p.top_k = cfg % 3 == 0 ? 0 : int(1 + rng() % 40);
    p.top_p = cfg % 2 == 0 ? 1.0f : 0.3f + 0.15f * float(cfg % 5);
    p.min_p = cfg % 5 == 2 ? 0.1f : cfg % 5 == 3 ? 0.01f : 0.0f;
    p.repetition_penalty = cfg % 4 == 3 ? 1.4f : 1.0f;
    p.presence_penalty = cfg % 6 == 5 ? 0.3f : 0.0f;
    p.frequency_penalty = cfg % 7 == 6 ? 0.2f : 0.0f;
    p.penalty_last_n = cfg % 8 == 7 ? -1 : 16;
    Sampler s(p);
    std::vector<float> got;
    s.distribution(logits, history, got);
    REQUIRE(got.size() == vocab);
    CHECK(s.counter() == 0);
    INFO("config " << cfg);
    if (p.temperature <= 0.0f) {
      auto hot = p;
      hot.temperature = 1.0f;
      hot.top_k = 1;
      hot.top_p = 1.0f;
      hot.min_p = 0.0f;
      const int argmax = reference(logits, history, hot)[0].id;
      for (std::size_t i = 0; i < vocab; ++i) REQUIRE(got[i] == (int(i) == argmax ? 1.0f : 0.0f));
    } else {
      std::vector<double> want(vocab, 0.0);
      for (const auto& k : reference(logits, history, p)) want[std::size_t(k.id)] = k.prob;
      for (std::size_t i = 0; i < vocab; ++i) {
        INFO("token " << i << " want " << want[i] << " got " << got[i]);
        if (want[i] == 0.0) REQUIRE(got[i] == 0.0f);
        else REQUIRE(std::fabs(double(got[i]) - want[i]) <= 1e-5);
      }
    }
    ++checked;
  }
  CHECK(checked == 80);
}
