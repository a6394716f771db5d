// SpeculativeDecoder: greedy output equals the target's greedy output, sampled output has the
// target's distribution (chi-square against the exact joint distribution of two tokens,
// under temperature, top-k, and top-p + min-p + penalties; with negative controls: the same
// statistic rejects the output of two broken acceptance rules), the caches end as
// documented, and bad input is refused.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <vector>

#include "test_util.hpp"
#include "vireo/vireo.hpp"

using namespace vireo;

namespace {

ModelConfig tiny(int vocab) { return test::model_shape(2, 32, 2, 1, 16, 64, vocab, 256); }

/// The target's own tokens, one forward per token, drawn by `params` (greedy or not).
std::vector<Token> plain(const Model& m, const std::vector<Token>& prompt, int count, SamplerParams params) {
  KVCache cache(m, {.num_blocks = 64});
  const SeqId s = cache.add_sequence();
  Sampler sampler(params);
  std::vector<Token> toks = prompt;
  Batch b;
  b.add(s, prompt, Last);
  Logits lg;
  for (int i = 0; i < count; ++i) {
    m.forward(b, cache, lg);
    const Token t = sampler.sample(lg.row(0), toks).token;
    toks.push_back(t);
    b.clear();
    b.add(s, {t}, Last);
  }
  return {toks.begin() + std::ptrdiff_t(prompt.size()), toks.end()};
}

/// `count` tokens by speculative rounds (the last round's extra tokens dropped).
/// draft == nullptr: prompt lookup.
std::vector<Token> speculative(const Model& target, const Model* draft, const std::vector<Token>& prompt, int count,
                               SamplerParams params, int k, SpeculativeStats* stats = nullptr) {
  KVCache tc(target, {.num_blocks = 64}), dc(draft ? *draft : target, {.num_blocks = 64});
  const SeqId ts = tc.add_sequence(), ds = dc.add_sequence();
  SpeculativeDecoder spec = draft ? SpeculativeDecoder(target, *draft, {.draft_tokens = k})
                                  : SpeculativeDecoder(target, {.draft_tokens = k});
  Sampler sampler(params);
  std::vector<Token> toks = prompt;
  while (toks.size() < prompt.size() + std::size_t(count)) {
    const std::vector<Token> out = draft ? spec.step(toks, tc, ts, dc, ds, sampler) : spec.step(toks, tc, ts, sampler);
    REQUIRE(!out.empty());
    REQUIRE(out.size() <= std::size_t(k) + 1);
    toks.insert(toks.end(), out.begin(), out.end());
    // The target cache holds every token but the last returned; the draft cache a prefix.
    const auto held = tc.tokens(ts);
    REQUIRE(held.size() == toks.size() - 1);
    CHECK(std::equal(held.begin(), held.end(), toks.begin()));
    const auto dheld = dc.tokens(ds);
    REQUIRE(dheld.size() <= toks.size() - 1);
    CHECK(std::equal(dheld.begin(), dheld.end(), toks.begin()));
  }
  if (stats) *stats = spec.stats();
  return {toks.begin() + std::ptrdiff_t(prompt.size()), toks.begin() + std::ptrdiff_t(prompt.size() + count)};
}

/// The exact distribution of the next two tokens after `prompt` under `params`:
/// p1[t1] and p2[t1][t2] (Sampler::distribution, itself checked against an independent
/// reference in test_sampler.cpp), joint[t1 * V + t2] = p1[t1] p2[t1][t2].
struct Joint {
  std::vector<float> p1;
  std::vector<std::vector<float>> p2;
  std::vector<double> joint;
};
Joint two_token_distribution(const Model& m, const std::vector<Token>& prompt, const SamplerParams& params, int V) {
  Joint j;
  j.p2.assign(std::size_t(V), std::vector<float>(std::size_t(V), 0.0f));
  j.joint.assign(std::size_t(V * V), 0.0);
  Sampler s(params);
  KVCache cache(m, {.num_blocks = 16});
  const SeqId q = cache.add_sequence();
  Batch b;
  b.add(q, prompt, Last);
  Logits lg = m.forward(b, cache);
  s.distribution(lg.row(0), prompt, j.p1);
  for (Token t1 = 0; t1 < V; ++t1) {
    const SeqId f = cache.fork(q);
    b.clear();
    b.add(f, {t1}, Last);
    Logits l2 = m.forward(b, cache);
    std::vector<Token> h = prompt;
    h.push_back(t1);
    s.distribution(l2.row(0), h, j.p2[std::size_t(t1)]);
    for (Token t2 = 0; t2 < V; ++t2)
      j.joint[std::size_t(t1 * V + t2)] = double(j.p1[std::size_t(t1)]) * j.p2[std::size_t(t1)][std::size_t(t2)];
    cache.remove(f);
  }
  return j;
}

/// Pearson chi-square of `seen` (counts of N draws) against `exact` probabilities, outcomes
/// expected fewer than 5 times pooled, and its critical value at p = 1e-4 (Wilson-Hilferty).
struct ChiSquare {
  double chi2 = 0, crit = 0;
};
ChiSquare chi_square(const std::vector<double>& exact, const std::vector<double>& seen, int N) {
  ChiSquare r;
  double pool_e = 0.0, pool_o = 0.0;
  int cells = 0;
  for (std::size_t i = 0; i < exact.size(); ++i) {
    const double e = exact[i] * N;
    if (e < 5.0) {
      pool_e += e;
      pool_o += seen[i];
      continue;
    }
    r.chi2 += (seen[i] - e) * (seen[i] - e) / e;
    ++cells;
  }
  if (pool_e > 0.0) {
    r.chi2 += (pool_o - pool_e) * (pool_o - pool_e) / std::max(pool_e, 1e-9);
    ++cells;
  }
  const double dof = cells - 1, z = 3.719;
  r.crit = dof * std::pow(1.0 - 2.0 / (9.0 * dof) + z * std::sqrt(2.0 / (9.0 * dof)), 3.0);
  return r;
}

/// N draws from a joint distribution over V * V outcomes (a broken sampler's), counted.
std::vector<double> draw_counts(const std::vector<double>& dist, int N, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::discrete_distribution<int> d(dist.begin(), dist.end());
  std::vector<double> seen(dist.size(), 0.0);
  for (int i = 0; i < N; ++i) seen[std::size_t(d(rng))] += 1.0;
  return seen;
}

}  // namespace

TEST_CASE("greedy speculative decoding returns the target's greedy tokens", "[cpu][speculative]") {
  const Model target = Model::random(tiny(64), 1, {.n_threads = 1});
  const Model other = Model::random(tiny(64), 2, {.n_threads = 1});  // a poor drafter
  const std::vector<Token> prompt = {3, 14, 15, 9, 26, 5};
  for (const SamplerParams params : {SamplerParams{.temperature = 0.0f},
                                     SamplerParams{.temperature = 0.0f, .repetition_penalty = 1.3f}}) {
    const auto ref = plain(target, prompt, 40, params);
    for (int k : {1, 3, 8}) {
      INFO("draft tokens " << k << " repetition penalty " << params.repetition_penalty);
      SpeculativeStats st;
      CHECK(speculative(target, &other, prompt, 40, params, k, &st) == ref);
      CHECK(st.drafted > 0);
      // The target as its own drafter: every draft is accepted, k + 1 tokens per round.
      CHECK(speculative(target, &target, prompt, 40, params, k, &st) == ref);
      CHECK(st.accepted == st.drafted);
      CHECK(st.emitted == st.rounds * (k + 1));
      // Prompt lookup (a random model's greedy output falls into loops, which lookup drafts).
      CHECK(speculative(target, nullptr, prompt, 40, params, k, &st) == ref);
      CHECK(st.drafted > 0);
    }
  }
}

TEST_CASE("speculative sampling leaves the target's distribution unchanged", "[cpu][speculative]") {
  // Vocabulary 8, two tokens after a fixed prompt: 64 outcomes, whose exact probabilities
  // come from the target alone (p(t1) p(t2 | t1), Sampler::distribution). A drafter from
  // other weights proposes from a different q, so drafts are both accepted and rejected.
  const int V = 8;
  const Model target = Model::random(tiny(V), 11, {.n_threads = 1});
  const Model draft = Model::random(tiny(V), 12, {.n_threads = 1});
  // The prompt repeats itself, so prompt lookup always drafts the token after "1 2 3": x,
  // chosen as the target's likeliest next token after the whole prompt, so that lookup
  // drafts are kept often enough (under top-k too) to test both branches.
  std::vector<Token> prompt = {1, 2, 3, 0, 5, 1, 2, 3};
  {
    double best = -1.0;
    Token bx = 0;
    for (Token x = 0; x < V; ++x) {
      prompt[3] = x;
      KVCache c(target, {.num_blocks = 16});
      Batch b;
      b.add(c.add_sequence(), prompt, Last);
      const Logits lg = target.forward(b, c);
      std::vector<float> p;
      Sampler({.temperature = 0.8f, .top_k = 5}).distribution(lg.row(0), prompt, p);
      if (p[std::size_t(x)] > best) {
        best = p[std::size_t(x)];
        bx = x;
      }
    }
    prompt[3] = bx;
  }
  // Settings: plain temperature; top-k; and top-p + min-p + every penalty (a wrong
  // normaliser under truncation or a penalty window applied to p but not q would show).
  const SamplerParams settings[] = {
      SamplerParams{.temperature = 1.0f},
      SamplerParams{.temperature = 0.8f, .top_k = 5},
      SamplerParams{.temperature = 0.9f, .top_p = 0.85f, .min_p = 0.05f, .repetition_penalty = 1.3f,
                    .presence_penalty = 0.2f, .frequency_penalty = 0.1f, .penalty_last_n = 6}};
  for (const bool lookup : {false, true})
  for (const SamplerParams& base : settings) {
    INFO((lookup ? "prompt lookup" : "draft model") << " temperature " << base.temperature << " top_k " << base.top_k
                                                    << " top_p " << base.top_p << " min_p " << base.min_p
                                                    << " repetition penalty " << base.repetition_penalty);
    const Joint exact = two_token_distribution(target, prompt, base, V);
    // Speculative samples: fresh seeds, caches reused from the prompt on.
    const int N = 8000;
    std::vector<double> seen(std::size_t(V * V), 0.0);
    KVCache tc(target, {.num_blocks = 16}), dc(draft, {.num_blocks = 16});
    const SeqId ts = tc.add_sequence(), ds = dc.add_sequence();
    SpeculativeDecoder spec = lookup ? SpeculativeDecoder(target, {.draft_tokens = 3})
                                     : SpeculativeDecoder(target, draft, {.draft_tokens = 3});
    for (int r = 0; r < N; ++r) {
      SamplerParams p = base;
      p.seed = std::uint64_t(r) + 1000;
      Sampler sampler(p);
      tc.truncate(ts, std::min<std::int64_t>(tc.length(ts), std::int64_t(prompt.size())));
      dc.truncate(ds, std::min<std::int64_t>(dc.length(ds), std::int64_t(prompt.size())));
      std::vector<Token> toks = prompt;
      while (toks.size() < prompt.size() + 2) {
        const auto out = lookup ? spec.step(toks, tc, ts, sampler) : spec.step(toks, tc, ts, dc, ds, sampler);
        toks.insert(toks.end(), out.begin(), out.end());
      }
      seen[std::size_t(toks[prompt.size()] * V + toks[prompt.size() + 1])] += 1.0;
    }
    const double acc = spec.stats().acceptance();
    INFO("acceptance " << acc);
    // Both branches taken.
    CHECK(acc > 0.05);
    CHECK(acc < 0.95);
    // The seeds are fixed, so this is a deterministic check; the negative controls below
    // show what it rejects.
    const ChiSquare c = chi_square(exact.joint, seen, N);
    INFO("chi2 " << c.chi2 << " critical " << c.crit);
    CHECK(c.chi2 < c.crit);

    if (lookup) continue;
    // Negative controls (draft model): the same statistic over N draws from what two broken
    // rules produce, computed exactly from the target's p and the drafter's q.
    const Joint q = two_token_distribution(draft, prompt, base, V);
    // (a) drafts kept as drawn: the output follows q.
    const ChiSquare kept = chi_square(exact.joint, draw_counts(q.joint, N, 7), N);
    INFO("negative control, drafts always kept: chi2 " << kept.chi2 << " critical " << kept.crit);
    CHECK(kept.chi2 > kept.crit);
    // (b) a rejected draft replaced by a draw from p instead of norm(max(0, p - q)): each
    // token follows q min(1, p/q) + (1 - sum min(p, q)) p.
    auto no_residual = [](const std::vector<float>& p, const std::vector<float>& qq) {
      double rej = 1.0;
      for (std::size_t i = 0; i < p.size(); ++i) rej -= std::min(double(p[i]), double(qq[i]));
      std::vector<double> r(p.size());
      for (std::size_t i = 0; i < p.size(); ++i) r[i] = std::min(double(p[i]), double(qq[i])) + rej * p[i];
      return r;
    };
    const std::vector<double> r1 = no_residual(exact.p1, q.p1);
    std::vector<double> broken(std::size_t(V * V));
    for (int t1 = 0; t1 < V; ++t1) {
      const std::vector<double> r2 = no_residual(exact.p2[std::size_t(t1)], q.p2[std::size_t(t1)]);
      for (int t2 = 0; t2 < V; ++t2) broken[std::size_t(t1 * V + t2)] = r1[std::size_t(t1)] * r2[std::size_t(t2)];
    }
    const ChiSquare nr = chi_square(exact.joint, draw_counts(broken, N, 8), N);
    INFO("negative control, no residual: chi2 " << nr.chi2 << " critical " << nr.crit);
    CHECK(nr.chi2 > nr.crit);
    // The control of the controls: N draws from the exact distribution pass.
    const ChiSquare ok = chi_square(exact.joint, draw_counts(exact.joint, N, 9), N);
    CHECK(ok.chi2 < ok.crit);
  }
}

TEST_CASE("speculative decoding refuses mismatched vocabularies and bad input", "[cpu][speculative]") {
  const Model target = Model::random(tiny(64), 1, {.n_threads = 1});
  const Model small = Model::random(tiny(60), 2, {.n_threads = 1});
  CHECK_THROWS_WITH(SpeculativeDecoder(target, small), Catch::Contains("vocabulary has 60 tokens"));
  CHECK_THROWS_AS(SpeculativeDecoder(target, target, {.draft_tokens = 0}), Error);
  CHECK_THROWS_AS(SpeculativeDecoder(target, target, {.draft_tokens = 17}), Error);
  CHECK_THROWS_AS(SpeculativeDecoder(target, {.lookup_ngram = 0}), Error);

  SpeculativeDecoder spec(target, target, {.draft_tokens = 2});
  KVCache tc(target, {.num_blocks = 16}), dc(target, {.num_blocks = 16});
  const SeqId ts = tc.add_sequence(), ds = dc.add_sequence();
  Sampler sampler({.temperature = 0.0f});
  const std::vector<Token> bad = {1, 2, 64};
  CHECK_THROWS_WITH(spec.step(bad, tc, ts, dc, ds, sampler), Catch::Contains("outside the vocabulary"));
  CHECK_THROWS_AS(spec.step(std::vector<Token>{}, tc, ts, dc, ds, sampler), Error);
  CHECK(tc.length(ts) == 0);
  // A cache holding tokens that are not a prefix of the sequence given.
  Batch b;
  b.add(ts, {7, 8}, Want::None);
  target.forward(b, tc);
  CHECK_THROWS_WITH(spec.step(std::vector<Token>{1, 2, 3}, tc, ts, dc, ds, sampler), Catch::Contains("not a prefix"));
  CHECK(tc.length(ts) == 2);
  // A full cache: the round throws CacheFull and both caches keep a prefix of the tokens.
  KVCache full(target, {.num_blocks = 1});
  const SeqId fs = full.add_sequence();
  const std::vector<Token> toks(std::size_t(full.block_size()) - 1, 5);
  CHECK_THROWS_AS(spec.step(toks, full, fs, dc, ds, sampler), Error);
  const auto held = dc.tokens(ds);
  CHECK(held.size() <= toks.size());
  CHECK(std::equal(held.begin(), held.end(), toks.begin()));
  CHECK(full.length(fs) <= std::int64_t(toks.size()));
  // Each decoder takes its own step(): the lookup one has no draft cache, and the other way.
  SpeculativeDecoder lookup(target, {.draft_tokens = 2});
  KVCache lc(target, {.num_blocks = 16});
  const SeqId ls = lc.add_sequence();
  CHECK_THROWS_WITH(lookup.step(std::vector<Token>{1, 2}, lc, ls, dc, ds, sampler), Catch::Contains("prompt lookup"));
  CHECK_THROWS_WITH(spec.step(std::vector<Token>{1, 2}, lc, ls, sampler), Catch::Contains("draft's cache"));
  // No earlier occurrence of any n-gram: a plain decode step, one token.
  const auto one = lookup.step(std::vector<Token>{1, 2, 3}, lc, ls, sampler);
  CHECK(one.size() == 1);
  CHECK(lookup.stats().drafted == 0);
}

TEST_CASE("SmolLM2 greedy speculative decoding equals its greedy decoding", "[golden][speculative]") {
  REQUIRE(std::filesystem::exists(test::model_path()));
  const Model target = Model::load(test::model_path(), {.n_threads = 2});
  // A drafter of random weights over the same 49152-token vocabulary (no tokenizer): it
  // proposes nonsense, so nearly every round keeps the target's own token.
  ModelConfig dc = test::model_shape(1, 64, 2, 1, 32, 128, target.config().vocab_size, 512);
  const Model draft = Model::random(dc, 5, {.n_threads = 2});
  const std::vector<Token> prompt = target.tokenizer().encode("The capital of France is");
  const SamplerParams greedy{.temperature = 0.0f};
  const auto ref = plain(target, prompt, 32, greedy);
  CHECK(speculative(target, &draft, prompt, 32, greedy, 4) == ref);
  SpeculativeStats st;
  CHECK(speculative(target, &target, prompt, 32, greedy, 4, &st) == ref);
  CHECK(st.accepted == st.drafted);
  // Prompt lookup on a prompt the model repeats.
  const std::vector<ChatMessage> msgs = {
      {"user", "Repeat the following paragraph word for word:\n\nThe lighthouse stood on a narrow spit of rock at the "
               "mouth of the harbour. Every evening the keeper climbed the steps, trimmed the wick and polished the "
               "great lens."}};
  const std::vector<Token> quote = target.tokenizer().encode_chat(msgs);
  const auto qref = plain(target, quote, 24, greedy);
  CHECK(speculative(target, nullptr, quote, 24, greedy, 6, &st) == qref);
  INFO("lookup acceptance " << st.acceptance());
  CHECK(st.accepted > 0);
}

TEST_CASE("cuda greedy speculative decoding equals its greedy decoding", "[cuda][speculative]") {
  VIREO_REQUIRE_GPU();
  // fp32 mode: the verification forward (several tokens: cuBLAS and the prefill attention)
  // and the one-token decode steps (GEMV, graph replay) differ only in summation order. In
  // bf16 they round intermediates differently, so a near-tie could pick another token there.
  const ModelConfig cfg = test::model_shape(2, 256, 4, 2, 64, 512, 333, 1024);
  for (DType dt : {DType::F32}) {
    INFO("dtype " << to_string(dt));
    const Model target = Model::random(cfg, 21, {.device = Device::cuda(), .dtype = dt});
    const Model draft = Model::random(cfg, 22, {.device = Device::cuda(), .dtype = dt});
    const std::vector<Token> prompt = {3, 14, 15, 92, 65, 35, 89, 79};
    const SamplerParams greedy{.temperature = 0.0f};
    const auto ref = plain(target, prompt, 32, greedy);
    SpeculativeStats st;
    CHECK(speculative(target, &target, prompt, 32, greedy, 4, &st) == ref);
    CHECK(st.accepted == st.drafted);
    CHECK(speculative(target, &draft, prompt, 32, greedy, 4) == ref);
    CHECK(speculative(target, nullptr, prompt, 32, greedy, 4) == ref);
  }
}
