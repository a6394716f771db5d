// Per-call cancellation (ForwardOptions::cancel) and the CPU's chunked long steps.
//
// A step longer than the CPU's chunk runs chunk by chunk; its rows must equal those of the
// same tokens fed as separate short steps (f32 weights: the row arithmetic does not depend on
// the batch). A step whose flag another thread raises throws Cancelled and leaves every
// sequence as it was. How fast it stops is a benchmark figure (vireo-bench cancel), not a test.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "test_util.hpp"
#include "vireo/vireo.hpp"

using namespace vireo;

namespace {

std::vector<Token> tokens_of(int n, int vocab, int salt) {
  std::vector<Token> p;
  for (int i = 0; i < n; ++i) p.push_back(Token((i * 53 + salt * 7 + 3) % vocab));
  return p;
}

std::vector<float> next_logits(const Model& m, KVCache& c, SeqId s, Token t) {
  Batch b;
  b.add(s, {t}, Last);
  const Logits lg = m.forward(b, c);
  return {lg.row(0).begin(), lg.row(0).end()};
}

}  // namespace

TEST_CASE("a long CPU step gives the rows of the same tokens fed in short steps", "[cpu][cancel]") {
  const ModelConfig cfg = test::model_shape(2, 32, 4, 2, 8, 64, 101, 2048);
  const Model m = Model::random(cfg, 3);
  const auto prompt = tokens_of(700, cfg.vocab_size, 1);  // three chunks, the last partial
  const auto other = tokens_of(300, cfg.vocab_size, 2);
  KVCache a(m, {.num_blocks = 128});
  const SeqId sa = a.add_sequence(), sa2 = a.add_sequence();
  Batch one;
  one.add(sa, prompt, All);
  one.add(sa2, other, Last);  // a second sequence whose tokens straddle a chunk edge
  Logits big;
  big.request_hidden(true);
  const std::atomic<bool> never{false};  // a per-call flag makes the long step run in chunks
  m.forward(one, a, big, {.cancel = &never});
  REQUIRE(big.rows() == prompt.size() + 1);

  KVCache b(m, {.num_blocks = 128});
  const SeqId sb = b.add_sequence(), sb2 = b.add_sequence();
  std::size_t row = 0;
  for (std::size_t t0 = 0; t0 < prompt.size(); t0 += 100) {
    Batch step;
    step.add(sb, std::span<const Token>(prompt).subspan(t0, std::min<std::size_t>(100, prompt.size() - t0)), All);
    Logits small;
    small.request_hidden(true);
    m.forward(step, b, small);
    for (std::size_t r = 0; r < small.rows(); ++r, ++row) {
      INFO("row " << row);
      REQUIRE(std::vector<float>(small.row(r).begin(), small.row(r).end()) ==
              std::vector<float>(big.row(row).begin(), big.row(row).end()));
      REQUIRE(std::vector<float>(small.hidden_row(r).begin(), small.hidden_row(r).end()) ==
              std::vector<float>(big.hidden_row(row).begin(), big.hidden_row(row).end()));
    }
  }
  Batch rest;
  rest.add(sb2, other, Last);
  const Logits last = m.forward(rest, b);
  CHECK(std::vector<float>(last.row(0).begin(), last.row(0).end()) ==
        std::vector<float>(big.row(prompt.size()).begin(), big.row(prompt.size()).end()));
  // The caches hold the same K/V: the next step agrees too.
  CHECK(next_logits(m, a, sa, 5) == next_logits(m, b, sb, 5));
}

TEST_CASE("a cancelled step leaves every sequence as it was", "[cpu][cancel][golden]") {
  const Model m = Model::load(test::require_model(), {.n_threads = 2});
  KVCache c(m, {.num_blocks = 256, .prefix_caching = false});
  const auto vocab = m.config().vocab_size;
  // A sequence with history, and a bystander.
  const SeqId s = c.add_sequence(), by = c.add_sequence();
  {
    Batch b;
    b.add(s, tokens_of(10, vocab, 3), Last);
    b.add(by, tokens_of(20, vocab, 4), Last);
    m.forward(b, c);
  }
  const KVCacheStats before = c.stats();
  // A flag raised before the step: refused up front.
  std::atomic<bool> flag{true};
  Batch longb;
  longb.add(s, tokens_of(2048, vocab, 5), Last);  // seconds of work on this machine
  CHECK_THROWS_MATCHES(m.forward(longb, c, *std::make_unique<Logits>(), {.cancel = &flag}), Error,
                       Catch::Predicate<Error>([](const Error& e) { return e.code() == ErrorCode::Cancelled; }));
  CHECK(c.length(s) == 10);
  // Raised by another thread while the step runs.
  flag.store(false);
  std::thread raiser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    flag.store(true);
  });
  Logits out;
  bool cancelled = false;
  try {
    m.forward(longb, c, out, {.cancel = &flag});
  } catch (const Error& e) {
    cancelled = e.code() == ErrorCode::Cancelled;
  }
  raiser.join();
  CHECK(cancelled);
  CHECK(c.length(s) == 10);
  CHECK(c.length(by) == 20);
  const KVCacheStats after = c.stats();
  CHECK(after.blocks_used == before.blocks_used);
  CHECK(after.blocks_free == before.blocks_free);
  // Both sequences continue exactly as in a cache that never saw the cancelled step.
  KVCache fresh(m, {.num_blocks = 256, .prefix_caching = false});
  const SeqId fs = fresh.add_sequence(), fby = fresh.add_sequence();
  {
    Batch b;
    b.add(fs, tokens_of(10, vocab, 3), Last);
    b.add(fby, tokens_of(20, vocab, 4), Last);
    m.forward(b, fresh);
  }
  CHECK(next_logits(m, c, s, 7) == next_logits(m, fresh, fs, 7));
  CHECK(next_logits(m, c, by, 7) == next_logits(m, fresh, fby, 7));
}
