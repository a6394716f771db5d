// Serving tests: a mixed batch (decodes and prefill chunks of sequences at different
// positions) equals the separate forwards; the Scheduler under overload (continuous
// batching with swap or recompute preemption, chunked prefill, static batching, prefix
// caching on and off) finishes every request with exactly the tokens it produces alone
// (greedy, and seeded sampling too: each request has its own RNG stream); metrics and
// stats add up; bad requests are refused at submit. The reference is a plain decode loop
// written here (argmax of the model's logits), not the scheduler. Models are small random
// ones with f32 weights, whose CPU row arithmetic does not depend on the batch composition.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "test_util.hpp"
#include "vireo/vireo.hpp"
#include "vireo/scheduler.hpp"

using namespace vireo;

namespace {

ModelConfig serve_config() { return test::model_shape(2, 32, 4, 2, 8, 64, 89, 128); }

const Model& serve_model() {
  static Model m = Model::random(serve_config(), 42, {.n_threads = 2}, gguf::TensorType::F32);
  return m;
}

std::vector<Token> make_prompt(int n, int salt, int vocab) {
  std::vector<Token> p(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) p[std::size_t(i)] = Token((i * 13 + salt * 29 + i * i * salt) % vocab);
  return p;
}

// What a request produces run alone: prefill, then decode, sampling each step with a
// Sampler of the request's own parameters (greedy when temperature <= 0).
std::vector<Token> run_alone(const Model& m, const Request& r) {
  KVCache c(m, {.num_blocks = 64, .block_size = 4, .prefix_caching = false});
  SeqId s = c.add_sequence();
  Sampler sampler(r.sampling);
  std::vector<Token> hist = r.prompt, out;
  Batch b;
  b.add(s, r.prompt, Last);
  while (int(out.size()) < r.max_new_tokens) {
    Logits lg = m.forward(b, c);
    Token t;
    if (r.sampling.temperature <= 0) t = Token(std::max_element(lg.row(0).begin(), lg.row(0).end()) - lg.row(0).begin());
    else t = sampler.sample(lg.row(0), hist).token;
    out.push_back(t);
    hist.push_back(t);
    if (std::find(r.stop_tokens.begin(), r.stop_tokens.end(), t) != r.stop_tokens.end()) break;
    b.clear();
    b.add(s, {t}, Last);
  }
  return out;
}

// A mix of requests: some share a 12-token prefix (prefix-cache hits), lengths vary.
std::vector<Request> make_requests(int n, bool sampled) {
  const int vocab = serve_config().vocab_size;
  const auto shared = make_prompt(12, 99, vocab);
  std::vector<Request> out;
  for (int i = 0; i < n; ++i) {
    Request r;
    r.id = std::uint64_t(100 + i);
    if (i % 3 == 0) {
      r.prompt = shared;
      auto tail = make_prompt(3 + i % 5, i, vocab);
      r.prompt.insert(r.prompt.end(), tail.begin(), tail.end());
    } else {
      r.prompt = make_prompt(5 + (i * 7) % 19, i + 1, vocab);
    }
    r.max_new_tokens = 4 + (i * 5) % 11;
    if (sampled) {
      r.sampling.temperature = 0.9f;
      r.sampling.top_k = 20;
      r.sampling.seed = 1000 + std::uint64_t(i);
    } else {
      r.sampling.temperature = 0.0f;
    }
    out.push_back(r);
  }
  return out;
}

struct Outcome {
  std::map<std::uint64_t, std::vector<Token>> outputs;
  SchedulerStats stats;
  KVCacheStats cache;
  Metrics::Summary metrics;
};

Outcome run_scheduler(const std::vector<Request>& reqs, SchedulerOptions so, KVCacheOptions co) {
  const Model& m = serve_model();
  KVCache cache(m, co);
  Metrics metrics;
  so.metrics = &metrics;
  Scheduler sched(m, cache, so);
  Outcome o;
  std::map<std::uint64_t, std::vector<Token>> streamed;
  // Submit in two waves: the second joins while the first is running.
  const std::size_t half = reqs.size() / 2;
  for (std::size_t i = 0; i < half; ++i) sched.submit(reqs[i]);
  int steps = 0;
  while (!sched.idle()) {
    StepResult r = sched.step();
    REQUIRE(r.batch_tokens > 0);
    REQUIRE(r.batch_tokens <= so.max_batch_tokens);
    REQUIRE(sched.num_running() <= std::size_t(so.max_running));
    for (const auto& ev : r.tokens) streamed[ev.id].push_back(ev.token);
    for (auto& f : r.finished) {
      CHECK(f.output.size() <= std::size_t(reqs[f.id - 100].max_new_tokens));
      CHECK(o.outputs.count(f.id) == 0);
      o.outputs[f.id] = f.output;
    }
    if (++steps == 3)
      for (std::size_t i = half; i < reqs.size(); ++i) sched.submit(reqs[i]);
    REQUIRE(steps < 10000);
  }
  CHECK(streamed == o.outputs);  // the events carry exactly the finished outputs
  CHECK(cache.sequences().empty());
  o.stats = sched.stats();
  o.cache = cache.stats();
  o.metrics = metrics.summary();
  return o;
}

}  // namespace

TEST_CASE("a mixed batch of decodes and prefill chunks at different positions equals separate forwards",
          "[cpu][serve]") {
  const Model& m = serve_model();
  const int vocab = m.config().vocab_size;
  // Three sequences with histories of 9, 4 and 0 tokens; one step feeds them 1 (decode),
  // 6 (a prefill chunk in the middle) and 7 (a fresh prompt) tokens, all logits wanted.
  const std::vector<std::vector<Token>> hist = {make_prompt(9, 1, vocab), make_prompt(4, 2, vocab), {}};
  const std::vector<std::vector<Token>> feed = {make_prompt(1, 3, vocab), make_prompt(6, 4, vocab),
                                                make_prompt(7, 5, vocab)};
  KVCache c(m, {.num_blocks = 32, .block_size = 4});
  std::vector<SeqId> ids;
  for (std::size_t i = 0; i < hist.size(); ++i) {
    ids.push_back(c.add_sequence());
    if (!hist[i].empty()) {
      Batch b;
      b.add(ids[i], hist[i], Want::None);
      m.forward(b, c);
    }
  }
  Batch mixed;
  for (std::size_t i = 0; i < hist.size(); ++i) mixed.add(ids[i], feed[i], All);
  Logits got = m.forward(mixed, c);
  REQUIRE(got.rows() == 14);
  std::size_t row = 0;
  for (std::size_t i = 0; i < hist.size(); ++i) {
    KVCache alone(m, {.num_blocks = 32, .block_size = 4});
    SeqId s = alone.add_sequence();
    std::vector<Token> all = hist[i];
    all.insert(all.end(), feed[i].begin(), feed[i].end());
    Batch b;
    b.add(s, all, All);
    Logits ref = m.forward(b, alone);
    for (std::size_t t = 0; t < feed[i].size(); ++t, ++row) {
      REQUIRE(got.seq(row) == ids[i]);
      auto r = ref.row(hist[i].size() + t);
      double err = 0;
      for (std::size_t v = 0; v < r.size(); ++v) err = std::max(err, double(std::abs(got.row(row)[v] - r[v])));
      INFO("sequence " << i << " token " << t);
      CHECK(err < 1e-5);
    }
  }
}

TEST_CASE("scheduler under overload: every request completes with the tokens it gets alone", "[cpu][serve]") {
  const bool sampled = GENERATE(false, true);
  const auto reqs = make_requests(14, sampled);
  std::map<std::uint64_t, std::vector<Token>> alone;
  for (const auto& r : reqs) alone[r.id] = run_alone(serve_model(), r);

  struct Config {
    const char* name;
    SchedulerOptions so;
    KVCacheOptions co;
    bool expect_preemption;
  };
  // 14 blocks of 4 = 56 slots: the largest request (23 + 14 tokens) fits alone, the whole
  // set (~400 tokens) is far beyond it, so the continuous configs must preempt.
  const KVCacheOptions tight{.num_blocks = 14, .block_size = 4, .prefix_caching = true};
  const KVCacheOptions tight_off{.num_blocks = 14, .block_size = 4, .prefix_caching = false};
  const KVCacheOptions roomy{.num_blocks = 200, .block_size = 4, .prefix_caching = true};
  std::vector<Config> configs = {
      {"continuous swap", {.preemption = PreemptionMode::Swap, .max_batch_tokens = 16, .max_running = 8}, tight, true},
      {"continuous recompute",
       {.preemption = PreemptionMode::Recompute, .max_batch_tokens = 16, .max_running = 8},
       tight,
       true},
      {"continuous no prefix cache",
       {.preemption = PreemptionMode::Swap, .max_batch_tokens = 16, .max_running = 8, .prefix_caching = false},
       tight_off,
       true},
      {"continuous roomy, chunked 5", {.max_batch_tokens = 5, .max_running = 4}, roomy, false},
      {"static B=4 unpadded",
       {.mode = BatchingMode::Static, .max_batch_tokens = 64, .max_running = 4, .static_padding = false},
       tight,
       false},
      {"static B=4 padded", {.mode = BatchingMode::Static, .max_batch_tokens = 64, .max_running = 4}, roomy, false},
  };
  for (const auto& cfg : configs) {
    INFO(cfg.name << (sampled ? " sampled" : " greedy"));
    Outcome o = run_scheduler(reqs, cfg.so, cfg.co);
    REQUIRE(o.outputs.size() == reqs.size());  // none lost
    for (const auto& r : reqs) {
      INFO("request " << r.id);
      CHECK(o.outputs[r.id] == alone[r.id]);
    }
    const std::int64_t preempt = o.stats.preemptions_swap + o.stats.preemptions_recompute;
    if (cfg.expect_preemption) CHECK(preempt > 0);
    if (cfg.so.mode == BatchingMode::Static) {
      CHECK(preempt == 0);
      CHECK(o.stats.idle_slot_steps > 0);  // output lengths differ within a batch
      // Padding computes the rectangle: prompts and outputs differ in length within a batch.
      if (cfg.so.static_padding) CHECK(o.stats.padding_tokens > 0);
      else CHECK(o.stats.padding_tokens == 0);
      CHECK(o.stats.forward_tokens == o.stats.prefill_tokens + o.stats.decode_tokens + o.stats.padding_tokens);
    }
    if (cfg.so.preemption == PreemptionMode::Recompute) CHECK(o.stats.recomputed_tokens > 0);
    std::int64_t out_tokens = 0;
    for (const auto& [id, toks] : o.outputs) out_tokens += std::int64_t(toks.size());
    CHECK(o.stats.output_tokens == out_tokens);
    CHECK(o.metrics.requests_finished == reqs.size());
    CHECK(o.metrics.output_tokens == std::uint64_t(out_tokens));
    CHECK(o.metrics.ttft.count == reqs.size());
    CHECK(o.metrics.itl.count == std::size_t(out_tokens) - reqs.size());
    CHECK(o.metrics.e2e.count == reqs.size());
    if (cfg.so.prefix_caching) CHECK(o.metrics.cache_hit_tokens > 0);
    else CHECK(o.metrics.cache_hit_tokens == 0);
  }
}

TEST_CASE("scheduler: chunked prefill respects the token budget and mixes with decodes", "[cpu][serve]") {
  const Model& m = serve_model();
  KVCache cache(m, {.num_blocks = 64, .block_size = 4});
  Scheduler sched(m, cache, {.max_batch_tokens = 6, .max_running = 4});
  Request a{.id = 1, .prompt = make_prompt(4, 1, 89), .max_new_tokens = 10, .sampling = {.temperature = 0}};
  Request b{.id = 2, .prompt = make_prompt(20, 2, 89), .max_new_tokens = 3, .sampling = {.temperature = 0}};
  sched.submit(a);
  StepResult r1 = sched.step();  // a's whole prompt
  CHECK(r1.prefill_tokens == 4);
  REQUIRE(r1.tokens.size() == 1);
  CHECK(r1.tokens[0].first);
  sched.submit(b);
  // Next steps: a's decode (1 token) + a 5-token chunk of b, until b's 20 tokens are in.
  int b_fed = 0, steps = 0;
  bool b_first = false;
  while (!b_first) {
    StepResult r = sched.step();
    ++steps;
    CHECK(r.batch_tokens <= 6);
    CHECK(r.decode_tokens == 1);
    b_fed += r.prefill_tokens;
    for (const auto& ev : r.tokens) b_first |= ev.id == 2;
  }
  CHECK(b_fed == 20);
  CHECK(steps == 4);
  auto rest = sched.run_to_completion();
  CHECK(rest.size() == 2);
  for (const auto& f : rest) CHECK(f.output == run_alone(m, f.id == 1 ? a : b));
}

TEST_CASE("scheduler: a stop token ends a request and keeps it in the output", "[cpu][serve]") {
  const Model& m = serve_model();
  Request r{.id = 7, .prompt = make_prompt(9, 3, 89), .max_new_tokens = 12, .sampling = {.temperature = 0}};
  const auto full = run_alone(m, r);
  REQUIRE(full.size() == 12);
  r.stop_tokens = {full[4]};
  const std::size_t first_stop = std::size_t(std::find(full.begin(), full.end(), full[4]) - full.begin());
  KVCache cache(m, {.num_blocks = 16, .block_size = 4});
  Scheduler sched(m, cache);
  sched.submit(r);
  auto done = sched.run_to_completion();
  REQUIRE(done.size() == 1);
  CHECK(done[0].reason == FinishReason::Stop);
  CHECK(done[0].output == std::vector<Token>(full.begin(), full.begin() + std::ptrdiff_t(first_stop) + 1));
  CHECK(cache.sequences().empty());
}

TEST_CASE("scheduler: prefix caching skips a shared prompt prefix", "[cpu][serve]") {
  const Model& m = serve_model();
  KVCache cache(m, {.num_blocks = 64, .block_size = 4});
  Scheduler sched(m, cache, {.max_batch_tokens = 64, .max_running = 4});
  const auto sys = make_prompt(17, 5, 89);
  Request a{.id = 1, .prompt = sys, .max_new_tokens = 2, .sampling = {.temperature = 0}};
  a.prompt.push_back(3);
  Request b = a;
  b.id = 2;
  b.prompt.back() = 4;
  sched.submit(a);
  auto fa = sched.run_to_completion();
  sched.submit(b);
  StepResult r = sched.step();
  CHECK(r.prefill_tokens == 18 - 16);  // 4 whole blocks of the shared 17 tokens were cached
  auto fb = sched.run_to_completion();
  REQUIRE(fb.size() == 1);
  CHECK(fb[0].cached_prompt_tokens == 16);
  CHECK(fb[0].output == run_alone(m, b));
}

TEST_CASE("scheduler: bad requests and options are refused", "[cpu][serve]") {
  const Model& m = serve_model();
  KVCache cache(m, {.num_blocks = 4, .block_size = 4});
  CHECK_THROWS_AS(Scheduler(m, cache, {.max_batch_tokens = 4, .max_running = 8}), Error);
  CHECK_THROWS_AS(Scheduler(m, cache, {.max_batch_tokens = 0}), Error);
  Scheduler sched(m, cache);
  CHECK_THROWS_AS(sched.submit(Request{.id = 1, .prompt = {}}), Error);
  CHECK_THROWS_AS(sched.submit(Request{.id = 1, .prompt = {1, 2}, .max_new_tokens = 0}), Error);
  CHECK_THROWS_AS(sched.submit(Request{.id = 1, .prompt = {1, 89}}), Error);
  // 12 + 8 - 1 tokens need 5 blocks; the pool has 4.
  try {
    sched.submit(Request{.id = 1, .prompt = make_prompt(12, 1, 89), .max_new_tokens = 8});
    FAIL("expected InvalidArgument");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::InvalidArgument);
    CHECK(std::string(e.what()).find("only 4") != std::string::npos);
  }
  CHECK(sched.idle());
  sched.submit(Request{.id = 1, .prompt = {1, 2}, .max_new_tokens = 2});
  CHECK_THROWS_AS(sched.submit(Request{.id = 1, .prompt = {3}}), Error);
  CHECK(sched.num_waiting() == 1);
  CHECK(sched.run_to_completion().size() == 1);
}
