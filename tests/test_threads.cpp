// [threads] What the API promises about threads, exercised so ThreadSanitizer can see it
// (CI runs these in a -fsanitize=thread build, scripts/ci/tsan.sh):
//   - one Model shared by several threads, each with its own KVCache and Sampler: every
//     thread's greedy and sampled tokens and last logits equal a single-threaded run's;
//   - one CPU ThreadPool driven by several threads at once (calls are serialised inside);
//   - logging from several threads while another replaces the callback and the level;
//   - a forward cancelled from another thread throws Cancelled, leaves the cache as it was,
//     and the next forward gives the uncancelled numbers.
// Catch2 assertions are not thread-safe: worker threads record, the test thread checks.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cpu/thread_pool.hpp"
#include "test_util.hpp"
#include "vireo/batch.hpp"
#include "vireo/error.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/log.hpp"
#include "vireo/model.hpp"
#include "vireo/sampler.hpp"

using namespace vireo;

namespace {

ModelConfig shape() { return test::model_shape(2, 64, 4, 2, 16, 96, 128, 512); }

struct Run {
  std::vector<Token> tokens;
  std::vector<float> last_logits;
  std::string error;
};

/// Prefill `prompt`, then `steps` tokens with `sp` (each step one forward of one token).
Run generate(const Model& m, const std::vector<Token>& prompt, int steps, SamplerParams sp) {
  Run r;
  try {
    KVCache cache(m, {.num_blocks = 16, .block_size = 16});
    Sampler sampler(sp);
    const SeqId s = cache.add_sequence();
    std::vector<Token> history = prompt;
    Batch b;
    b.add(s, prompt, Last);
    Logits l = m.forward(b, cache);
    for (int i = 0; i < steps; ++i) {
      const Token t = sampler.sample(l.row(0), history).token;
      r.tokens.push_back(t);
      history.push_back(t);
      b.clear();
      b.add(s, t, true);
      m.forward(b, cache, l);
    }
    r.last_logits.assign(l.row(0).begin(), l.row(0).end());
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  return r;
}

}  // namespace

TEST_CASE("one Model shared by threads, each with its own cache, gives the single-threaded results",
          "[cpu][threads]") {
  for (const auto wt : {gguf::TensorType::F32, gguf::TensorType::Q8_0}) {
    const Model m = Model::random(shape(), 11, {.n_threads = 2}, wt);
    constexpr int kThreads = 4, kSteps = 12;
    std::vector<std::vector<Token>> prompts;
    std::vector<SamplerParams> params;
    for (int t = 0; t < kThreads; ++t) {
      std::vector<Token> p;
      for (int i = 0; i < 5 + 3 * t; ++i) p.push_back(Token((7 * t + 13 * i + 1) % 128));
      prompts.push_back(p);
      SamplerParams sp;
      sp.temperature = t % 2 ? 0.8f : 0.0f;
      sp.top_k = t == 3 ? 20 : 0;
      sp.seed = std::uint64_t(100 + t);
      params.push_back(sp);
    }
    std::vector<Run> alone;
    for (int t = 0; t < kThreads; ++t) alone.push_back(generate(m, prompts[std::size_t(t)], kSteps, params[std::size_t(t)]));
    std::vector<Run> together(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        together[std::size_t(t)] = generate(m, prompts[std::size_t(t)], kSteps, params[std::size_t(t)]);
      });
    for (auto& th : threads) th.join();
    for (int t = 0; t < kThreads; ++t) {
      INFO(gguf::to_string(wt) << " thread " << t);
      REQUIRE(alone[std::size_t(t)].error.empty());
      REQUIRE(together[std::size_t(t)].error.empty());
      CHECK(together[std::size_t(t)].tokens == alone[std::size_t(t)].tokens);
      // The same arithmetic in the same order: identical numbers, not merely close.
      CHECK(together[std::size_t(t)].last_logits == alone[std::size_t(t)].last_logits);
    }
  }
}

TEST_CASE("one ThreadPool driven by several threads at once", "[cpu][threads][pool]") {
  cpu::ThreadPool pool(3);
  constexpr int kCallers = 4, kCalls = 50;
  std::vector<int> bad(kCallers, 0);
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c)
    callers.emplace_back([&, c] {
      for (int k = 0; k < kCalls; ++k) {
        const std::int64_t n = 1 + (c * 37 + k * 11) % 300;
        std::vector<int> hits(std::size_t(n), 0);  // disjoint ranges: plain ints suffice
        pool.parallel_for(n, [&](std::int64_t b, std::int64_t e) {
          for (std::int64_t i = b; i < e; ++i) ++hits[std::size_t(i)];
        });
        for (int h : hits) bad[std::size_t(c)] += h != 1;
      }
    });
  for (auto& t : callers) t.join();
  for (int c = 0; c < kCallers; ++c) {
    INFO("caller " << c);
    CHECK(bad[std::size_t(c)] == 0);
  }
}

TEST_CASE("logging from several threads while the callback and level change", "[cpu][threads]") {
  std::atomic<int> seen_a{0}, seen_b{0};
  std::atomic<bool> garbled{false};
  auto sink = [&](std::atomic<int>& counter) {
    return [&counter, &garbled](LogLevel, std::string_view msg) {
      if (msg.rfind("message from thread ", 0) != 0) garbled = true;
      ++counter;
    };
  };
  set_log_callback(sink(seen_a));
  std::atomic<bool> stop{false};
  std::thread swapper([&] {
    for (int i = 0; !stop; ++i) {
      set_log_callback(i % 2 ? sink(seen_a) : sink(seen_b));
      set_log_level(i % 3 ? LogLevel::Info : LogLevel::Debug);
      std::this_thread::yield();
    }
  });
  constexpr int kThreads = 4, kMessages = 500;
  std::vector<std::thread> loggers;
  for (int t = 0; t < kThreads; ++t)
    loggers.emplace_back([t] {
      for (int i = 0; i < kMessages; ++i)
        log(LogLevel::Warn, "message from thread " + std::to_string(t) + " #" + std::to_string(i));
    });
  for (auto& t : loggers) t.join();
  stop = true;
  swapper.join();
  set_log_callback(nullptr);
  set_log_level(LogLevel::Info);
  log(LogLevel::Error, "not delivered anywhere");
  // Warn is above every level used, so every message reached one of the two sinks.
  CHECK(seen_a + seen_b == kThreads * kMessages);
  CHECK_FALSE(garbled);
  // Back to a stderr sink like the default one, for the tests that run after this one.
  set_log_callback([](LogLevel l, std::string_view m) {
    static const char* names[] = {"debug", "info", "warn", "error"};
    std::fprintf(stderr, "vireo %s: %.*s\n", names[int(l)], int(m.size()), m.data());
  });
}

TEST_CASE("a forward cancelled from another thread rolls back, and the next one is exact", "[cpu][threads]") {
  std::atomic<bool> cancel{false};
  ModelOptions o;
  o.n_threads = 2;
  o.cancel = &cancel;
  const Model m = Model::random(test::model_shape(4, 128, 4, 2, 32, 256, 128, 2048), 5, o, gguf::TensorType::F32);
  std::vector<Token> prompt;
  for (int i = 0; i < 256; ++i) prompt.push_back(Token((i * 29 + 3) % 128));
  const std::vector<Token> head(prompt.begin(), prompt.begin() + 8);

  // The uncancelled reference: head, then the long prompt tail.
  KVCache ref_cache(m, {.num_blocks = 32, .block_size = 16});
  const SeqId rs = ref_cache.add_sequence();
  Batch b;
  b.add(rs, head, Last);
  m.forward(b, ref_cache);
  b.clear();
  b.add(rs, std::span<const Token>(prompt).subspan(8), Last);
  const Logits ref = m.forward(b, ref_cache);

  KVCache cache(m, {.num_blocks = 32, .block_size = 16});
  const SeqId s = cache.add_sequence();
  b.clear();
  b.add(s, head, Last);
  m.forward(b, cache);
  const KVCacheStats before = cache.stats();
  int cancelled = 0, tries = 0;
  for (; tries < 20 && cancelled == 0; ++tries) {
    std::atomic<bool> started{false};
    std::thread canceller([&] {
      while (!started) std::this_thread::yield();
      std::this_thread::sleep_for(std::chrono::microseconds(200 * tries));
      cancel = true;
    });
    b.clear();
    b.add(s, std::span<const Token>(prompt).subspan(8), Last);
    started = true;
    try {
      m.forward(b, cache);
      // Finished before the flag was seen: undo it by truncation and try again.
      cache.truncate(s, 8);
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::Cancelled);
      ++cancelled;
    }
    canceller.join();
    cancel = false;
  }
  INFO("tries " << tries);
  CHECK(cancelled == 1);
  CHECK(cache.length(s) == 8);
  CHECK(cache.stats().blocks_used == before.blocks_used);
  b.clear();
  b.add(s, std::span<const Token>(prompt).subspan(8), Last);
  const Logits again = m.forward(b, cache);
  CHECK(test::max_abs_diff(again.row(0), ref.row(0)) == 0.0);
}

TEST_CASE("a log sink may reconfigure logging from inside itself", "[cpu][threads]") {
  int calls = 0, second = 0;
  LogCallback second_sink = [&](LogLevel, std::string_view) { ++second; };
  set_log_callback([&](LogLevel, std::string_view msg) {
    ++calls;
    log(LogLevel::Error, "logged from inside the sink");  // dropped, not recursed into
    set_log_level(LogLevel::Debug);
    set_log_callback(second_sink);  // the call in progress finishes with this sink
    CHECK(msg == "first");
  });
  log(LogLevel::Warn, "first");
  CHECK(calls == 1);
  log(LogLevel::Debug, "second");  // the new level and sink are in force
  CHECK(second == 1);
  CHECK(calls == 1);
  set_log_level(LogLevel::Info);
  set_log_callback([](LogLevel l, std::string_view m) {
    static const char* names[] = {"debug", "info", "warn", "error"};
    std::fprintf(stderr, "vireo %s: %.*s\n", names[int(l)], int(m.size()), m.data());
  });
}
