// vireo::perplexity (include/vireo/quality.hpp): the real SmolLM2's perplexity of a short
// text against HF transformers (tests/fixtures/perplexity_golden.txt, made by
// scripts/golden/make_perplexity_fixtures.py); on tiny random models, the windowing, the
// KL divergence and top-1 agreement against a direct computation from each window's full
// logits; the log-prob file round trip; and refusals of bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_util.hpp"
#include "vireo/error.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/model.hpp"
#include "vireo/quality.hpp"

using namespace vireo;

namespace {

struct GoldenPpl {
  int ctx = 0, stride = 0;
  std::vector<Token> ids;
  std::int64_t scored = 0;
  double nll = 0;
};

std::vector<GoldenPpl> load_golden_ppl() {
  std::ifstream in(test::fixture("perplexity_golden.txt"));
  REQUIRE(in);
  std::vector<GoldenPpl> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string key;
    ls >> key;
    if (key == "case") {
      out.emplace_back();
      ls >> out.back().ctx >> out.back().stride;
    } else if (key == "ids") {
      Token t;
      while (ls >> t) out.back().ids.push_back(t);
    } else if (key == "scored") {
      ls >> out.back().scored;
    } else if (key == "nll") {
      ls >> out.back().nll;
    }
  }
  return out;
}

Model tiny(std::uint64_t seed) {
  return Model::random(test::model_shape(2, 32, 4, 2, 8, 64, 50, 256), seed, {.n_threads = 1},
                       gguf::TensorType::F32);
}

std::vector<Token> tokens_of(int n, int vocab, std::uint64_t seed) {
  std::mt19937 rng(static_cast<std::uint32_t>(seed));
  std::vector<Token> t(static_cast<std::size_t>(n));
  for (auto& x : t) x = Token(rng() % std::uint32_t(vocab));
  return t;
}

// Full-vocabulary log-softmax of every position of one window, by one plain forward.
std::vector<std::vector<double>> window_logprobs(const Model& m, std::span<const Token> w) {
  KVCache cache(m, {.num_blocks = 64, .prefix_caching = false});
  Batch b;
  b.add(cache.add_sequence(), w, All);
  Logits lg = m.forward(b, cache);
  std::vector<std::vector<double>> out;
  for (std::size_t r = 0; r < lg.rows(); ++r) {
    const auto row = lg.row(r);
    double mx = -INFINITY, s = 0;
    for (float v : row) mx = std::max(mx, double(v));
    for (float v : row) s += std::exp(double(v) - mx);
    std::vector<double> lp;
    for (float v : row) lp.push_back(double(v) - mx - std::log(s));
    out.push_back(std::move(lp));
  }
  return out;
}

}  // namespace

TEST_CASE("SmolLM2 perplexity matches HF transformers with the same windows", "[golden][quality]") {
  REQUIRE(std::filesystem::exists(test::model_path()));
  const Model m = Model::load(test::model_path(), {.n_threads = 2});
  const auto cases = load_golden_ppl();
  REQUIRE(cases.size() >= 2);
  for (const auto& c : cases) {
    PerplexityOptions o;
    o.ctx = c.ctx;
    o.stride = c.stride;
    const PerplexityResult r = perplexity(m, c.ids, o);
    INFO("ctx " << c.ctx << " stride " << c.stride << ": nll " << r.nll << " vs " << c.nll);
    CHECK(r.n_scored == c.scored);
    // Both sides run fp32 from the same dequantized weights; the golden logits test bounds
    // their logits' difference by 5e-4 (measured <= 3.7e-5), so a log-softmax differs by at
    // most twice that. 5e-4 nats on the mean (0.05% of the perplexity) holds that with
    // room; scoring the wrong positions or windows moves the mean by > 0.1 nats here.
    CHECK(std::abs(r.nll - c.nll) < 5e-4);
    CHECK(r.ppl == Approx(std::exp(c.nll)).epsilon(5e-4));
  }
}

TEST_CASE("perplexity, KL and top-1 agreement equal a direct computation", "[quality]") {
  const Model a = tiny(1), b = tiny(2);
  const int V = a.config().vocab_size;
  const auto toks = tokens_of(70, V, 5);
  PerplexityOptions o;
  o.ctx = 16;
  o.stride = 12;
  o.first_token = 3;
  o.top_k = V;  // the whole distribution: the "other" bucket is empty and KL is exact
  LogProbRecord ref;
  const PerplexityResult ra = perplexity(a, toks, o, &ref);
  const PerplexityResult rb = perplexity(b, toks, o, nullptr, &ref);

  // Independent: windows at 0, 12, 24, ... while they fit; first token replaced; positions
  // 8..14 of each window predict tokens 9..15.
  double nll_a = 0, nll_b = 0, kl = 0;
  std::int64_t n = 0, agree = 0;
  for (std::size_t s = 0; s + 16 <= toks.size(); s += 12) {
    std::vector<Token> w(toks.begin() + std::ptrdiff_t(s), toks.begin() + std::ptrdiff_t(s + 16));
    w[0] = 3;
    const auto pa = window_logprobs(a, w), pb = window_logprobs(b, w);
    for (int p = 8; p <= 14; ++p) {
      const Token target = toks[s + std::size_t(p) + 1];
      nll_a -= pa[std::size_t(p)][std::size_t(target)];
      nll_b -= pb[std::size_t(p)][std::size_t(target)];
      double d = 0;
      for (int v = 0; v < V; ++v)
        d += std::exp(pa[std::size_t(p)][std::size_t(v)]) * (pa[std::size_t(p)][std::size_t(v)] - pb[std::size_t(p)][std::size_t(v)]);
      kl += d;
      const auto am = [&](const std::vector<double>& r) { return std::max_element(r.begin(), r.end()) - r.begin(); };
      agree += am(pa[std::size_t(p)]) == am(pb[std::size_t(p)]);
      ++n;
    }
  }
  REQUIRE(n == 5 * 7);
  CHECK(ra.n_windows == 5);
  CHECK(ra.n_scored == n);
  CHECK(ra.nll == Approx(nll_a / double(n)).epsilon(1e-5));
  CHECK(rb.nll == Approx(nll_b / double(n)).epsilon(1e-5));
  CHECK(rb.has_reference);
  CHECK(rb.reference_ppl == Approx(ra.ppl).epsilon(1e-5));
  CHECK(rb.kl == Approx(kl / double(n)).epsilon(1e-4));
  CHECK(rb.kl > 0.0);
  CHECK(rb.top1_agreement == Approx(double(agree) / double(n)));

  // Against itself: KL 0 up to the float rounding of the saved log-probs, full agreement.
  const PerplexityResult self = perplexity(a, toks, o, nullptr, &ref);
  CHECK(self.kl == Approx(0.0).margin(1e-6));
  CHECK(self.top1_agreement == 1.0);

  // A top-k reference lumps the rest into one outcome: a lower bound of the exact KL.
  o.top_k = 5;
  LogProbRecord ref5;
  perplexity(a, toks, o, &ref5);
  const PerplexityResult rb5 = perplexity(b, toks, o, nullptr, &ref5);
  CHECK(rb5.kl <= rb.kl + 1e-9);
  CHECK(rb5.kl > 0.0);
  CHECK(rb5.top1_agreement == rb.top1_agreement);
}

TEST_CASE("log-prob files round-trip and hostile ones are refused", "[quality]") {
  const Model a = tiny(1);
  const auto toks = tokens_of(40, a.config().vocab_size, 6);
  PerplexityOptions o;
  o.ctx = 16;
  o.top_k = 4;
  LogProbRecord ref;
  perplexity(a, toks, o, &ref);
  const auto dir = std::filesystem::temp_directory_path() / "vireo-test-quality";
  std::filesystem::create_directories(dir);
  const auto path = dir / "ref.lp";
  save_logprobs(path, ref);
  const LogProbRecord back = load_logprobs(path);
  CHECK(back.tokens == ref.tokens);
  CHECK(back.ids == ref.ids);
  CHECK(back.logp == ref.logp);
  CHECK(back.target_logp == ref.target_logp);
  CHECK(back.ctx == 16);
  CHECK(back.top_k == 4);

  // Truncated by one byte, and a header claiming more positions than the file holds.
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size - 1);
  CHECK_THROWS_AS(load_logprobs(path), Error);
  save_logprobs(path, ref);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8 + 5 * 4 + 8);
    const std::uint64_t huge = std::uint64_t(1) << 60;
    f.write(reinterpret_cast<const char*>(&huge), 8);
  }
  CHECK_THROWS_AS(load_logprobs(path), Error);
  CHECK_THROWS_AS(load_logprobs(dir / "missing.lp"), Error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("perplexity refuses bad input with vireo::Error", "[quality]") {
  const Model a = tiny(1);
  const int V = a.config().vocab_size;
  const auto toks = tokens_of(40, V, 7);
  PerplexityOptions o;
  o.ctx = 16;
  o.top_k = 8;
  auto code = [&](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::Internal;
  };
  // Text shorter than one window.
  CHECK(code([&] { perplexity(a, std::span(toks).first(15), o); }) == ErrorCode::InvalidArgument);
  CHECK(perplexity_windows(15, o) == 0);
  CHECK(perplexity_windows(16, o) == 1);
  // Bad options.
  PerplexityOptions bad = o;
  bad.ctx = 3;
  CHECK(code([&] { perplexity(a, toks, bad); }) == ErrorCode::InvalidArgument);
  bad = o;
  bad.stride = 17;
  CHECK(code([&] { perplexity(a, toks, bad); }) == ErrorCode::InvalidArgument);
  bad = o;
  bad.first_token = V;
  CHECK(code([&] { perplexity(a, toks, bad); }) == ErrorCode::InvalidArgument);
  // A token outside the vocabulary.
  auto t2 = toks;
  t2[20] = V + 3;
  CHECK(code([&] { perplexity(a, t2, o); }) == ErrorCode::InvalidArgument);
  // A reference of other tokens, or other windows.
  LogProbRecord ref;
  perplexity(a, toks, o, &ref);
  auto t3 = toks;
  t3[1] = (t3[1] + 1) % V;
  CHECK(code([&] { perplexity(a, t3, o, nullptr, &ref); }) == ErrorCode::InvalidArgument);
  PerplexityOptions o2 = o;
  o2.stride = 8;
  CHECK(code([&] { perplexity(a, toks, o2, nullptr, &ref); }) == ErrorCode::InvalidArgument);
  // Cancellation between windows.
  std::atomic<bool> cancel{true};
  PerplexityOptions oc = o;
  oc.cancel = &cancel;
  CHECK(code([&] { perplexity(a, toks, oc); }) == ErrorCode::Cancelled);
}
