// Serving tests: a mixed batch (decodes and prefill chunks of sequences at different
// positions) equals the separate forwards; the Scheduler under overload (continuous
// batching with swap or recompute preemption, chunked prefill, static batching, prefix
// caching on and off) finishes every request with exactly the tokens it produces alone
// (greedy, and seeded sampling too: each request has its own RNG stream); metrics and
// stats add up; bad requests are refused at submit. Overload control: cancel() in every
// state, deadlines while waiting and while running, the max_waiting limit, and a churn run
// (cancellations, deadlines, rejections and preemptions together) in which every request
// ends exactly once. Stop strings and streamed text on the real SmolLM2 ([golden]). The
// reference is a plain decode loop written here (argmax of the model's logits), not the
// scheduler. Models are small random ones with f32 weights; the CPU rounds a row slightly
// differently depending on its place in a step (include/vireo/scheduler.hpp), so exact
// equality holds for these fixed, deterministic runs, not for every possible batch.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
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
  Request biased{.id = 1, .prompt = {1, 2}, .max_new_tokens = 2};
  biased.sampling.logit_bias = {{89, 1.0f}};  // outside the vocabulary of 89
  CHECK_THROWS_AS(sched.submit(biased), Error);
  biased.sampling.logit_bias = {{3, 1.0f}};
  biased.sampling.temperature = -1.0f;
  biased.sampling.top_p = 0.0f;  // refused by the Sampler
  CHECK_THROWS_AS(sched.submit(biased), Error);
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

namespace {

// Steps until `pred` holds (at most 500 steps), collecting what finished on the way.
template <class Pred>
void step_until(Scheduler& s, Pred pred, std::map<std::uint64_t, FinishedRequest>& done) {
  for (int i = 0; i < 500 && !pred(); ++i)
    for (auto& f : s.step().finished) done[f.id] = std::move(f);
  REQUIRE(pred());
}

bool is_prefix(const std::vector<Token>& part, const std::vector<Token>& whole) {
  return part.size() <= whole.size() && std::equal(part.begin(), part.end(), whole.begin());
}

}  // namespace

TEST_CASE("scheduler: cancel ends waiting, running and swapped requests and frees their blocks", "[cpu][serve]") {
  const Model& m = serve_model();
  const auto reqs = make_requests(14, false);
  KVCache cache(m, {.num_blocks = 14, .block_size = 4, .prefix_caching = true});
  Scheduler sched(m, cache, {.preemption = PreemptionMode::Swap, .max_batch_tokens = 16, .max_running = 4});
  for (const auto& r : reqs) sched.submit(r);
  std::map<std::uint64_t, FinishedRequest> done;
  // Run until a request is swapped out while others run and wait.
  step_until(sched, [&] { return sched.num_swapped() > 0 && sched.num_running() > 0 && sched.num_waiting() > 0; },
             done);
  std::vector<std::uint64_t> live;
  for (const auto& r : reqs)
    if (!done.count(r.id)) live.push_back(r.id);
  for (std::uint64_t id : live) CHECK(sched.cancel(id));
  CHECK_FALSE(sched.cancel(live.front()));  // already cancelled
  CHECK_FALSE(sched.cancel(12345));         // never submitted
  if (!done.empty()) CHECK_FALSE(sched.cancel(done.begin()->first));  // already finished
  // Blocks are free at once; the records come with the next step, which runs no forward.
  CHECK(cache.sequences().empty());
  CHECK(cache.stats().swapped_sequences == 0);
  CHECK_FALSE(sched.idle());
  CHECK_THROWS_AS(sched.submit(reqs[std::size_t(live.front() - 100)]), Error);  // the id is still held
  StepResult r = sched.step();
  CHECK(r.batch_tokens == 0);
  REQUIRE(r.finished.size() == live.size());
  CHECK(sched.idle());
  for (const auto& f : r.finished) {
    INFO("request " << f.id);
    CHECK(f.reason == FinishReason::Cancelled);
    CHECK(is_prefix(f.output, run_alone(m, reqs[std::size_t(f.id - 100)])));
  }
  CHECK(sched.stats().cancelled == std::int64_t(live.size()));
  CHECK(sched.stats().finished == std::int64_t(live.size() + done.size()));
  // The id is free again and the scheduler still works.
  sched.submit(reqs[std::size_t(live.front() - 100)]);
  auto again = sched.run_to_completion();
  REQUIRE(again.size() == 1);
  CHECK(again[0].output == run_alone(m, reqs[std::size_t(live.front() - 100)]));
}

TEST_CASE("scheduler: deadlines end waiting and running requests with their partial output", "[cpu][serve]") {
  const Model& m = serve_model();
  KVCache cache(m, {.num_blocks = 32, .block_size = 4});
  Metrics metrics;
  Scheduler sched(m, cache, {.max_batch_tokens = 32, .max_running = 1, .metrics = &metrics});
  const auto now = Metrics::Clock::now();
  Request running{.id = 1, .prompt = make_prompt(6, 1, 89), .max_new_tokens = 40, .sampling = {.temperature = 0}};
  running.deadline = now + std::chrono::milliseconds(300);
  Request late = running;  // waits behind the first (max_running 1), already past its deadline
  late.id = 2;
  late.deadline = now - std::chrono::milliseconds(1);
  sched.submit(running);
  sched.submit(late);
  std::map<std::uint64_t, FinishedRequest> done;
  StepResult first = sched.step();
  REQUIRE(first.finished.size() == 1);
  CHECK(first.finished[0].id == 2);
  CHECK(first.finished[0].reason == FinishReason::Deadline);
  CHECK(first.finished[0].output.empty());
  std::this_thread::sleep_until(running.deadline);
  step_until(sched, [&] { return done.count(1) > 0; }, done);
  CHECK(done[1].reason == FinishReason::Deadline);
  CHECK(done[1].output.size() < 40);
  CHECK(is_prefix(done[1].output, run_alone(m, running)));
  CHECK(cache.sequences().empty());
  CHECK(sched.idle());
  CHECK(sched.stats().deadline == 2);
  CHECK(metrics.summary().requests_running == 0);
}

TEST_CASE("scheduler: max_waiting refuses requests with ErrorCode::Overloaded", "[cpu][serve]") {
  const Model& m = serve_model();
  KVCache cache(m, {.num_blocks = 32, .block_size = 4});
  Scheduler sched(m, cache, {.max_batch_tokens = 32, .max_running = 2, .max_waiting = 2});
  auto req = [](std::uint64_t id) {
    return Request{.id = id, .prompt = make_prompt(5, int(id), 89), .max_new_tokens = 3, .sampling = {.temperature = 0}};
  };
  sched.submit(req(1));
  sched.submit(req(2));
  try {
    sched.submit(req(3));
    FAIL("expected Overloaded");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::Overloaded);
    CHECK(std::string(e.what()).find("max_waiting 2") != std::string::npos);
  }
  CHECK(sched.num_waiting() == 2);
  CHECK(sched.stats().rejected == 1);
  // A bad request is InvalidArgument even when the queue is full.
  try {
    sched.submit(Request{.id = 4, .prompt = {}});
    FAIL("expected InvalidArgument");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::InvalidArgument);
  }
  sched.step();  // both admitted: the queue has room again, and id 3 was never taken
  CHECK(sched.num_waiting() == 0);
  sched.submit(req(3));
  CHECK(sched.run_to_completion().size() == 3);
  CHECK(sched.stats().rejected == 1);
  CHECK(sched.stats().finished == 3);
}

TEST_CASE("scheduler: text and stop strings need a tokenizer", "[cpu][serve]") {
  const Model& m = serve_model();  // random weights: no tokenizer
  KVCache cache(m, {.num_blocks = 8, .block_size = 4});
  Scheduler sched(m, cache);
  Request r{.id = 1, .prompt = {1, 2}, .max_new_tokens = 2};
  r.stop_strings = {"x"};
  CHECK_THROWS_AS(sched.submit(r), Error);
  r.stop_strings.clear();
  r.stream_text = true;
  CHECK_THROWS_AS(sched.submit(r), Error);
  CHECK(sched.idle());
}

TEST_CASE("scheduler: a stop string ends a request; its text stops before it", "[golden][serve]") {
  Model m = Model::load(test::require_model().string(), {.device = Device::cpu(), .n_threads = 2});
  const Tokenizer& tok = m.tokenizer();
  KVCache cache(m, {.num_blocks = 64, .block_size = 16});
  Scheduler sched(m, cache);
  Request r{.id = 1, .prompt = tok.encode("The capital of France is"), .max_new_tokens = 24,
            .sampling = {.temperature = 0}};
  r.stream_text = true;
  auto run = [&](const Request& req) {
    sched.submit(req);
    std::string streamed;
    std::vector<FinishedRequest> out;
    while (!sched.idle()) {
      StepResult s = sched.step();
      for (const auto& ev : s.tokens) streamed += ev.text;
      for (auto& f : s.finished) out.push_back(std::move(f));
    }
    REQUIRE(out.size() == 1);
    CHECK(streamed == out[0].text);  // the events carry the whole text
    return out[0];
  };
  const FinishedRequest full = run(r);
  CHECK(full.text == tok.decode(full.output, /*skip_special=*/true));
  // Token boundaries in the text; a stop string that straddles the 4th one.
  std::vector<std::size_t> ends;
  for (std::size_t i = 1; i <= full.output.size(); ++i)
    ends.push_back(tok.decode(std::span(full.output).first(i), true).size());
  REQUIRE(ends.size() > 8);
  REQUIRE(ends[3] >= 2);
  const std::string stop = full.text.substr(ends[3] - 2, 4);
  const std::size_t at = full.text.find(stop);
  std::size_t completing = 0;  // tokens up to the one that completes the stop string
  while (ends[completing] < at + stop.size()) ++completing;
  INFO("text '" << full.text << "', stop '" << stop << "'");
  Request s = r;
  s.id = 2;
  s.stream_text = false;  // implied by stop strings
  s.stop_strings = {"no such text", stop};
  const FinishedRequest cut = run(s);
  CHECK(cut.reason == FinishReason::Stop);
  CHECK(cut.text == full.text.substr(0, at));
  CHECK(cut.output == std::vector<Token>(full.output.begin(), full.output.begin() + std::ptrdiff_t(completing + 1)));
}

TEST_CASE("scheduler under churn: every request ends exactly once with the tokens it gets alone", "[cpu][serve]") {
  // The small version of `vireo-bench stress`: more requests arrive than the pool serves,
  // some are cancelled in every state, some have deadlines, the queue is bounded, and the
  // pool is small enough to preempt. Every submitted request must come back exactly once;
  // a request that ran to its end must equal its run alone, one cut short must be a prefix
  // of it, and the streamed tokens must be the output. Deterministic (seeded, no clock), so
  // the exact comparison is stable; the CPU rounds a row differently by its place in the
  // step (see scheduler.hpp), and the benchmark, with real-time arrivals, allows near-ties.
  const Model& m = serve_model();
  const PreemptionMode mode = GENERATE(PreemptionMode::Swap, PreemptionMode::Recompute);
  INFO((mode == PreemptionMode::Swap ? "swap" : "recompute"));
  KVCache cache(m, {.num_blocks = 16, .block_size = 4, .prefix_caching = true});
  Scheduler sched(m, cache, {.preemption = mode, .max_batch_tokens = 16, .max_running = 6, .max_waiting = 8});
  std::mt19937_64 rng(mode == PreemptionMode::Swap ? 11 : 12);
  const int vocab = serve_config().vocab_size;
  std::map<std::uint64_t, Request> reqs;
  std::map<std::uint64_t, std::string> outcome;  // reason, or "rejected"
  std::map<std::uint64_t, FinishedRequest> finished;
  std::map<std::uint64_t, std::vector<Token>> streamed;
  std::vector<std::uint64_t> live;  // submitted, not reported
  std::uint64_t next_id = 1;
  const int total = 400;
  int cancel_false = 0;
  auto record = [&](std::uint64_t id, std::string what) {
    INFO("request " << id << " " << what);
    REQUIRE(outcome.count(id) == 0);  // never twice
    outcome[id] = std::move(what);
  };
  for (int step = 0; next_id <= std::uint64_t(total) || !sched.idle(); ++step) {
    REQUIRE(step < 20000);
    for (int k = int(rng() % 4); k > 0 && next_id <= std::uint64_t(total); --k) {
      Request r;
      r.id = next_id++;
      r.prompt = make_prompt(3 + int(rng() % 20), int(r.id), vocab);
      if (rng() % 4 == 0) {  // a shared prefix for the prefix cache
        auto p = make_prompt(9, 7, vocab);
        p.insert(p.end(), r.prompt.begin(), r.prompt.end());
        r.prompt = p;
      }
      r.max_new_tokens = 1 + int(rng() % 16);
      if (rng() % 2) r.sampling = {.temperature = 0.8f, .top_k = 30, .seed = r.id};
      else r.sampling.temperature = 0;
      if (rng() % 4 == 0)
        for (int k = 0; k < 6; ++k) r.stop_tokens.push_back(Token(rng() % std::uint64_t(vocab)));
      // Deadlines already past: they expire at the next step boundary, wherever the request
      // is then (no clock in the outcome, so the run is the same every time; expiry while
      // running has its own test above).
      if (rng() % 8 == 0) r.deadline = Metrics::Clock::now() - std::chrono::microseconds(1);
      reqs[r.id] = r;
      try {
        sched.submit(r);
        live.push_back(r.id);
      } catch (const Error& e) {
        REQUIRE(e.code() == ErrorCode::Overloaded);
        record(r.id, "rejected");
      }
    }
    if (!live.empty() && rng() % 3 == 0) {
      const std::size_t i = rng() % live.size();
      if (!sched.cancel(live[i])) ++cancel_false;  // it ended in an earlier step, not yet seen
    }
    if (!outcome.empty() && rng() % 7 == 0) {
      // A reported or rejected id is not the scheduler's any more.
      auto it = outcome.begin();
      std::advance(it, std::ptrdiff_t(rng() % outcome.size()));
      CHECK_FALSE(sched.cancel(it->first));
    }
    StepResult r = sched.step();
    for (const auto& ev : r.tokens) streamed[ev.id].push_back(ev.token);
    for (auto& f : r.finished) {
      record(f.id, to_string(f.reason));
      std::erase(live, f.id);
      finished[f.id] = std::move(f);
    }
  }
  CHECK(cancel_false == 0);  // a live id is always cancellable: ended ones leave `live` when reported
  REQUIRE(outcome.size() == std::size_t(total));  // none lost
  std::map<std::string, int> count;
  for (const auto& [id, what] : outcome) ++count[what];
  for (auto& [id, f] : finished) {
    INFO("request " << id << " " << to_string(f.reason));
    CHECK(streamed[id] == f.output);
    const auto alone = run_alone(m, reqs[id]);
    if (f.reason == FinishReason::Length || f.reason == FinishReason::Stop) CHECK(f.output == alone);
    else CHECK(is_prefix(f.output, alone));
  }
  INFO("length " << count["length"] << " stop " << count["stop"] << " cancelled " << count["cancelled"]
                 << " deadline " << count["deadline"] << " rejected " << count["rejected"]);
  for (const char* what : {"length", "stop", "cancelled", "deadline", "rejected"}) CHECK(count[what] > 0);
  const SchedulerStats& st = sched.stats();
  CHECK(st.finished == std::int64_t(finished.size()));
  CHECK(st.cancelled == count["cancelled"]);
  CHECK(st.deadline == count["deadline"]);
  CHECK(st.rejected == count["rejected"]);
  CHECK(st.preemptions_swap + st.preemptions_recompute > 0);
  CHECK(cache.sequences().empty());
}
