// vireo-bench stress: the Scheduler under sustained overload, checked request by request.
//
// A small random-weight model with f32 weights serves, per preemption mode (swap, recompute):
//   1. a calibration batch (--calibration requests submitted at once, nothing cancelled) that
//      measures the capacity C in requests/s on this machine;
//   2. a trace of --requests requests arriving as a Poisson process at --overload x C, in
//      real time: prompts uniform [4, 40] tokens (a quarter behind a shared 16-token prefix),
//      outputs uniform [1, 48] tokens, half greedy and half seeded sampling, a fifth with stop
//      tokens; --deadline-frac of them with a deadline arrival + U(0.2, 3) T and
//      --cancel-frac cancelled at arrival + U(0, 2) T, where T = max_running / C is the time
//      a request spends in a full system (Little's law); the waiting queue is bounded
//      (--max-waiting) and the KV pool is small (--kv-tokens) so requests are preempted.
//      Between steps, cancel() is also called on ids that have ended and ids never
//      submitted (both must return false).
// Accounting: every request must end exactly once (finished by length / stop, cancelled,
// expired, or rejected at submit), no token event may follow a request's end, the streamed
// tokens must equal the final output, and the KV cache must be empty at the end. Every
// output is compared with the request run alone (prefill + one-token decodes with the same
// Sampler parameters, on a cache of its own): a request that ran to its end must equal it,
// one cut short (cancelled, expired) must be a prefix of it. The CPU backend's f32 rows are
// not bit-identical across batch compositions (a row's dot products go through pair tiles,
// single-token dots or 16-row panels, which round differently in the last bits), so a
// near-tie can go the other way; such a difference is counted as a near-tie flip when it
// is within --tie-delta (see compare_alone), and as a mismatch otherwise. Any lost or duplicated request, event
// after an end, stream or cache error, or mismatch makes the exit status 1. Prints the
// counts; JSON to stdout or --json FILE.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "vireo/error.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/model.hpp"
#include "vireo/sampler.hpp"
#include "vireo/scheduler.hpp"
#include "vireo_bench.hpp"

namespace vireo::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct StressOptions {
  int requests = 10000;
  int calibration = 400;
  double overload = 10.0;
  double cancel_frac = 0.15, deadline_frac = 0.3;
  std::size_t max_waiting = 64;
  int max_running = 16, max_batch_tokens = 64;
  std::int64_t kv_tokens = 384;
  int block_size = 4;
  int threads = 1;
  std::vector<PreemptionMode> modes = {PreemptionMode::Swap, PreemptionMode::Recompute};
  std::uint64_t seed = 1;
  double tie_delta = 1e-5;  // a near-tie: within this much of the row's largest logit
  std::string commit, note, json_path;
};

const char* kStressUsage =
    "usage: vireo-bench stress [options]\n"
    "  --requests N         requests per preemption mode (default 10000)\n"
    "  --calibration N      requests of the capacity measurement (default 400)\n"
    "  --overload X         offered load / measured capacity (default 10)\n"
    "  --cancel-frac F      fraction cancelled at a random time (default 0.15)\n"
    "  --deadline-frac F    fraction with a deadline (default 0.3)\n"
    "  --max-waiting N      scheduler queue bound (default 64)\n"
    "  --max-running N      (default 16)\n"
    "  --max-batch-tokens N (default 64)\n"
    "  --kv-tokens N        KV pool size in tokens, blocks of 4 (default 384)\n"
    "  --threads N          model threads (default 1)\n"
    "  --modes LIST         swap,recompute (default both)\n"
    "  --seed N             trace seed (default 1)\n"
    "  --tie-delta D        a difference from the run alone is a near-tie within D (greedy: of\n"
    "                       the logit margin over the row's scale; sampled: of the draw from the\n"
    "                       token's CDF interval) (default 1e-5)\n"
    "  --commit SHA  --note TEXT  --json FILE\n";

// A random Llama of a small shape: 10,000 requests per mode in about a minute on a CPU core.
ModelConfig stress_shape() {
  ModelConfig c;
  c.n_layers = 4;
  c.d_model = 128;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 32;
  c.d_ff = 384;
  c.vocab_size = 1024;
  c.context_length = 256;
  return c;
}

struct Planned {
  Request req;
  double arrival_s = 0;
  double cancel_s = -1;  // < 0: never
  bool deadline = false;  // set at submit: arrival + U(0.2, 3) T
};

std::vector<Request> make_requests(int n, std::uint64_t first_id, std::mt19937_64& rng, int vocab) {
  std::vector<Token> shared(16);
  for (auto& t : shared) t = Token(rng() % std::uint64_t(vocab));
  std::vector<Request> out;
  for (int i = 0; i < n; ++i) {
    Request r;
    r.id = first_id + std::uint64_t(i);
    if (rng() % 4 == 0) r.prompt = shared;
    const int len = 4 + int(rng() % 37);
    for (int k = 0; k < len; ++k) r.prompt.push_back(Token(rng() % std::uint64_t(vocab)));
    r.max_new_tokens = 1 + int(rng() % 48);
    if (rng() % 2) {
      r.sampling.temperature = 0.9f;
      r.sampling.top_k = 40;
      r.sampling.seed = r.id;
    } else {
      r.sampling.temperature = 0.0f;
    }
    if (rng() % 5 == 0)
      for (int k = 0; k < 4; ++k) r.stop_tokens.push_back(Token(rng() % std::uint64_t(vocab)));
    r.stop_at_eog = false;
    out.push_back(std::move(r));
  }
  return out;
}

// The request run alone (prefill, then one token per forward, each sampled by a Sampler of
// its parameters; the scheduler's stop rules) compared with `got`, the scheduler's output.
// When they part at some token, the alone run's step decides whether the difference is a
// near-tie that the last bits of the arithmetic decided (the CPU backend rounds a row
// differently depending on the tile it lands in) rather than a scheduling error: greedy,
// when the scheduler's token's logit is within `delta` x the row's largest magnitude of
// the argmax's; sampled, when the draw u lies within `delta` of the scheduler's token's
// interval of the alone run's inverse CDF (tokens in descending probability, ties by id,
// as Sampler::sample walks them), or of the run of tokens holding both when their
// probabilities differ by less than `delta` of the largest (their order is a near-tie).
struct Comparison {
  bool equal = false;      // got == the run alone (complete) / a prefix of it (partial)
  bool near_tie = false;   // not equal, and explained by a near-tie at `at`
  std::size_t at = 0;      // first differing output token
  std::size_t alone_len = 0;
  double distance = 0;     // greedy: logit margin / row scale; sampled: |u - the token's CDF interval|
};

Comparison compare_alone(const Model& m, KVCache& cache, const Request& r, const std::vector<Token>& got,
                         bool partial, double delta) {
  Comparison c;
  const SeqId s = cache.add_sequence();
  Sampler sampler(r.sampling);
  std::vector<Token> hist = r.prompt, out;
  Batch b;
  b.add(s, r.prompt, Last);
  Logits lg;
  bool parted = false;
  while (int(out.size()) < r.max_new_tokens) {
    m.forward(b, cache, lg);
    const Sampler before = sampler;
    const Token t = sampler.sample(lg.row(0), hist).token;
    if (!parted && out.size() < got.size() && t != got[out.size()]) {
      parted = true;
      c.at = out.size();
      const auto row = lg.row(0);
      const Token g = got[out.size()];
      if (r.sampling.temperature <= 0) {
        double scale = 1.0;
        for (float v : row) scale = std::max(scale, double(std::abs(v)));
        c.distance = (double(row[std::size_t(t)]) - double(row[std::size_t(g)])) / scale;
      } else {
        std::vector<float> probs;
        Sampler(before).distribution(row, hist, probs);
        std::vector<Token> order;
        for (std::size_t i = 0; i < probs.size(); ++i)
          if (probs[i] > 0) order.push_back(Token(i));
        std::stable_sort(order.begin(), order.end(), [&](Token a, Token b) { return probs[a] > probs[b]; });
        // The interval g may take: its own, or, when g and t sit in one run of tokens whose
        // probabilities are within delta of each other (an order the last bits decide), the
        // whole run's.
        const double pmax = order.empty() ? 1.0 : probs[std::size_t(order[0])];
        std::vector<double> start(order.size() + 1, 0.0);
        for (std::size_t i = 0; i < order.size(); ++i) start[i + 1] = start[i] + probs[std::size_t(order[i])];
        auto pos = [&](Token x) { return std::size_t(std::find(order.begin(), order.end(), x) - order.begin()); };
        const std::size_t ig = pos(g), it = pos(t);
        double lo = 1.0, hi = 0.0;  // empty: g cannot be drawn
        if (ig < order.size()) {
          std::size_t a = ig, z = ig;
          if (it < order.size()) {
            a = std::min(ig, it);
            z = std::max(ig, it);
            for (std::size_t i = a; i < z; ++i)
              if (probs[std::size_t(order[i])] - probs[std::size_t(order[i + 1])] > delta * pmax) a = z = ig;
          }
          lo = start[a];
          hi = start[z + 1];
        }
        const double u = uniform01(r.sampling.seed, before.counter());
        c.distance = lo > hi ? 1.0 : u < lo ? lo - u : u > hi ? u - hi : 0.0;
      }
      c.near_tie = c.distance <= delta;
      break;  // the histories differ from here on
    }
    out.push_back(t);
    hist.push_back(t);
    if (std::find(r.stop_tokens.begin(), r.stop_tokens.end(), t) != r.stop_tokens.end()) break;
    b.clear();
    b.add(s, {t}, Last);
  }
  cache.remove(s);
  c.alone_len = out.size();
  c.equal = !parted && (partial ? got.size() <= out.size() : got.size() == out.size());
  if (!c.equal && !parted) c.at = std::min(got.size(), out.size());
  return c;
}

enum Outcome : int { None = -1, Length, Stop, Cancelled, Deadline, Rejected, kOutcomes };
const char* kOutcomeNames[] = {"length", "stop", "cancelled", "deadline", "rejected"};

Outcome outcome_of(FinishReason r) {
  switch (r) {
    case FinishReason::Length: return Length;
    case FinishReason::Stop: return Stop;
    case FinishReason::Cancelled: return Cancelled;
    case FinishReason::Deadline: return Deadline;
  }
  return None;
}

KVCacheOptions cache_options(const StressOptions& o) {
  KVCacheOptions c;
  c.block_size = o.block_size;
  c.num_blocks = (o.kv_tokens + o.block_size - 1) / o.block_size;
  c.prefix_caching = true;
  return c;
}

SchedulerOptions scheduler_options(const StressOptions& o, PreemptionMode mode, std::size_t max_waiting) {
  SchedulerOptions s;
  s.preemption = mode;
  s.max_batch_tokens = o.max_batch_tokens;
  s.max_running = o.max_running;
  s.max_waiting = max_waiting;
  return s;
}

struct ModeResult {
  PreemptionMode mode{};
  double capacity_rps = 0, offered_rps = 0, t_ref_s = 0, wall_s = 0, trace_span_s = 0;
  std::int64_t counts[kOutcomes] = {};
  std::int64_t lost = 0, duplicated = 0, late_events = 0, stream_mismatch = 0;
  std::int64_t mismatched_complete = 0, mismatched_partial = 0, checked_complete = 0, checked_partial = 0;
  std::int64_t near_tie_greedy = 0, near_tie_sampled = 0;  // differences explained by a near-tie
  std::int64_t checked_complete_greedy = 0;
  std::int64_t cancel_calls = 0, cancel_true = 0, cancel_false_ended = 0, cancel_refused_live = 0;
  std::int64_t bogus_cancels = 0, bogus_cancel_true = 0;
  std::int64_t output_tokens = 0, partial_tokens = 0;
  SchedulerStats stats;
  bool cache_empty = false;
  std::vector<std::string> mismatches;  // one line each, for the report
  bool ok() const {
    return lost == 0 && duplicated == 0 && late_events == 0 && stream_mismatch == 0 && mismatched_complete == 0 &&
           mismatched_partial == 0 && cancel_refused_live == 0 && bogus_cancel_true == 0 && cache_empty &&
           stats.preemptions_swap + stats.preemptions_recompute > 0;
  }
};

// Capacity: `n` requests submitted at once, served to the end, requests per second.
double measure_capacity(const Model& model, const StressOptions& o, PreemptionMode mode, std::mt19937_64& rng) {
  KVCache cache(model, cache_options(o));
  Scheduler sched(model, cache, scheduler_options(o, mode, 0));
  for (auto& r : make_requests(o.calibration, 1, rng, model.config().vocab_size)) sched.submit(std::move(r));
  const auto t0 = Clock::now();
  const std::size_t done = sched.run_to_completion().size();
  return double(done) / std::chrono::duration<double>(Clock::now() - t0).count();
}

ModeResult run_mode(const Model& model, const StressOptions& o, PreemptionMode mode) {
  ModeResult res;
  res.mode = mode;
  std::mt19937_64 rng(o.seed * 7919 + (mode == PreemptionMode::Swap ? 0 : 1));
  res.capacity_rps = measure_capacity(model, o, mode, rng);
  res.offered_rps = o.overload * res.capacity_rps;
  res.t_ref_s = double(o.max_running) / res.capacity_rps;

  // The trace.
  const int vocab = model.config().vocab_size;
  std::vector<Planned> plan;
  {
    auto reqs = make_requests(o.requests, 1, rng, vocab);
    std::exponential_distribution<double> gap(res.offered_rps);
    std::uniform_real_distribution<double> u01(0.0, 1.0);
    double at = 0;
    for (auto& r : reqs) {
      Planned p;
      at += gap(rng);
      p.arrival_s = at;
      p.deadline = u01(rng) < o.deadline_frac;
      if (u01(rng) < o.cancel_frac) p.cancel_s = at + 2.0 * u01(rng) * res.t_ref_s;
      p.req = std::move(r);
      plan.push_back(std::move(p));
    }
    res.trace_span_s = at;
  }
  std::vector<std::pair<double, std::uint64_t>> cancels;  // (time, id), sorted
  for (const auto& p : plan)
    if (p.cancel_s >= 0) cancels.push_back({p.cancel_s, p.req.id});
  std::sort(cancels.begin(), cancels.end());

  KVCache cache(model, cache_options(o));
  Scheduler sched(model, cache, scheduler_options(o, mode, o.max_waiting));
  const std::size_t n = plan.size();
  std::vector<int> outcome(n + 1, None);
  std::vector<std::vector<Token>> streamed(n + 1), final_out(n + 1);
  std::vector<int> preemptions(n + 1, 0);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  std::size_t next = 0, next_cancel = 0;
  const auto t0 = Clock::now();
  auto at = [&](double s) { return t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); };
  auto seconds_since = [&](Clock::time_point t) { return std::chrono::duration<double>(t - t0).count(); };
  auto end_once = [&](std::uint64_t id, Outcome what) {
    if (outcome[id] != None) ++res.duplicated;
    else outcome[id] = what;
    ++res.counts[what];
  };

  while (next < n || !sched.idle()) {
    const auto now = Clock::now();
    const double now_s = seconds_since(now);
    while (next < n && plan[next].arrival_s <= now_s) {
      Planned& p = plan[next++];
      Request r = p.req;
      const auto arrival = at(p.arrival_s);
      if (p.deadline) r.deadline = arrival + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                                                       (0.2 + 2.8 * u01(rng)) * res.t_ref_s));
      try {
        sched.submit(std::move(r), arrival);
      } catch (const Error& e) {
        if (e.code() != ErrorCode::Overloaded) throw;
        end_once(p.req.id, Rejected);
      }
    }
    while (next_cancel < cancels.size() && cancels[next_cancel].first <= now_s) {
      const std::uint64_t id = cancels[next_cancel++].second;
      ++res.cancel_calls;
      if (sched.cancel(id)) ++res.cancel_true;
      else if (outcome[id] != None) ++res.cancel_false_ended;
      else ++res.cancel_refused_live;  // submitted, not ended, yet cancel said no: a bug
    }
    if (rng() % 16 == 0) {  // ids never submitted, and ids already ended
      ++res.bogus_cancels;
      if (sched.cancel(n + 1 + rng() % 1000)) ++res.bogus_cancel_true;
      const std::uint64_t id = 1 + rng() % n;
      if (outcome[id] != None) {
        ++res.bogus_cancels;
        if (sched.cancel(id)) ++res.bogus_cancel_true;
      }
    }
    if (sched.idle()) {
      if (next < n) std::this_thread::sleep_until(at(plan[next].arrival_s));
      continue;
    }
    StepResult r = sched.step();
    for (const auto& ev : r.tokens) {
      if (outcome[ev.id] != None) ++res.late_events;
      streamed[ev.id].push_back(ev.token);
    }
    for (auto& f : r.finished) {
      end_once(f.id, outcome_of(f.reason));
      preemptions[f.id] = f.preemptions;
      final_out[f.id] = std::move(f.output);
    }
  }
  res.wall_s = seconds_since(Clock::now());
  res.stats = sched.stats();
  res.cache_empty = cache.sequences().empty();

  // Check every output against the request run alone.
  KVCache alone(model, {.num_blocks = 64, .block_size = 16, .prefix_caching = false});
  for (std::size_t i = 0; i < n; ++i) {
    const Request& req = plan[i].req;
    const int what = outcome[req.id];
    if (what == None) {
      ++res.lost;
      continue;
    }
    if (what == Rejected) continue;
    if (streamed[req.id] != final_out[req.id]) ++res.stream_mismatch;
    const auto& got = final_out[req.id];
    const bool complete = what == Length || what == Stop;
    if (!complete && got.empty()) continue;
    const bool greedy = req.sampling.temperature <= 0;
    if (complete) {
      ++res.checked_complete;
      if (greedy) ++res.checked_complete_greedy;
      res.output_tokens += std::int64_t(got.size());
    } else {
      ++res.checked_partial;
      res.partial_tokens += std::int64_t(got.size());
    }
    const Comparison c = compare_alone(model, alone, req, got, !complete, o.tie_delta);
    if (c.equal) continue;
    if (c.near_tie) {
      ++(greedy ? res.near_tie_greedy : res.near_tie_sampled);
    } else {
      ++(complete ? res.mismatched_complete : res.mismatched_partial);
    }
    res.mismatches.push_back(fmt::format(
        "request {} ({}, {}, prompt {}, {} preemptions): {} tokens vs {} alone, first difference at output token {}, "
        "{} {:.3g}: {}",
        req.id, greedy ? "greedy" : "sampled", kOutcomeNames[what], req.prompt.size(), preemptions[req.id],
        got.size(), c.alone_len, c.at, greedy ? "logit margin / row scale" : "draw's distance from the token's CDF interval",
        c.distance, c.near_tie ? "near-tie" : "NOT a near-tie"));
  }
  return res;
}

const char* mode_name(PreemptionMode m) { return m == PreemptionMode::Swap ? "swap" : "recompute"; }

std::string mismatch_list(const ModeResult& r) {
  std::string out;
  for (std::size_t i = 0; i < r.mismatches.size(); ++i) out += (i ? ", " : "") + jstr(r.mismatches[i]);
  return out;
}

std::string mode_json(const ModeResult& r) {
  std::string counts;
  for (int k = 0; k < kOutcomes; ++k) counts += fmt::format("{}\"{}\": {}", k ? ", " : "", kOutcomeNames[k], r.counts[k]);
  const SchedulerStats& s = r.stats;
  return fmt::format(
      "{{\"preemption\": \"{}\", \"capacity_req_per_s\": {:.1f}, \"offered_req_per_s\": {:.1f}, \"t_ref_s\": {:.4f}, "
      "\"trace_span_s\": {:.2f}, \"wall_s\": {:.2f}, \"outcomes\": {{{}}}, \"lost\": {}, \"duplicated\": {}, "
      "\"events_after_end\": {}, \"stream_mismatch\": {}, \"checked_complete\": {}, \"checked_complete_greedy\": {}, "
      "\"mismatched_complete\": {}, \"checked_partial\": {}, \"mismatched_partial\": {}, "
      "\"near_tie_flips\": {{\"greedy\": {}, \"sampled\": {}}}, "
      "\"cancel\": {{\"calls\": {}, \"true\": {}, \"false_already_ended\": {}, \"refused_while_live\": {}, "
      "\"bogus_calls\": {}, \"bogus_true\": {}}}, \"output_tokens_complete\": {}, \"output_tokens_partial\": {}, "
      "\"scheduler\": {{\"steps\": {}, \"forward_tokens\": {}, \"preemptions_swap\": {}, \"preemptions_recompute\": {}, "
      "\"recomputed_tokens\": {}, \"finished\": {}, \"cancelled\": {}, \"deadline\": {}, \"rejected\": {}}}, "
      "\"kv_cache_empty_at_end\": {}, \"mismatches\": [{}], \"passed\": {}}}",
      mode_name(r.mode), r.capacity_rps, r.offered_rps, r.t_ref_s, r.trace_span_s, r.wall_s, counts, r.lost,
      r.duplicated, r.late_events, r.stream_mismatch, r.checked_complete, r.checked_complete_greedy,
      r.mismatched_complete, r.checked_partial, r.mismatched_partial, r.near_tie_greedy, r.near_tie_sampled,
      r.cancel_calls, r.cancel_true,
      r.cancel_false_ended, r.cancel_refused_live, r.bogus_cancels, r.bogus_cancel_true, r.output_tokens,
      r.partial_tokens, s.steps, s.forward_tokens, s.preemptions_swap, s.preemptions_recompute, s.recomputed_tokens,
      s.finished, s.cancelled, s.deadline, s.rejected, r.cache_empty ? "true" : "false", mismatch_list(r),
      r.ok() ? "true" : "false");
}

double parse_double(const std::string& flag, const std::string& v, double lo, double hi) {
  std::size_t used = 0;
  double x = 0;
  try {
    x = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || !(x >= lo && x <= hi))
    throw Error(ErrorCode::InvalidArgument, fmt::format("{} wants a number in [{}, {}], got '{}'", flag, lo, hi, v));
  return x;
}

}  // namespace

int run_stress(int argc, char** argv) {
  StressOptions o;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        std::fputs(kStressUsage, stdout);
        return 0;
      }
      if (i + 1 >= argc) throw Error(ErrorCode::InvalidArgument, fmt::format("{} needs a value", a));
      const std::string v = argv[++i];
      auto count = [&](double lo, double hi) { return parse_double(a, v, lo, hi); };
      if (a == "--requests") o.requests = int(count(1, 1e8));
      else if (a == "--calibration") o.calibration = int(count(1, 1e6));
      else if (a == "--overload") o.overload = count(0.01, 1e4);
      else if (a == "--cancel-frac") o.cancel_frac = count(0, 1);
      else if (a == "--deadline-frac") o.deadline_frac = count(0, 1);
      else if (a == "--max-waiting") o.max_waiting = std::size_t(count(1, 1e8));
      else if (a == "--max-running") o.max_running = int(count(1, 4096));
      else if (a == "--max-batch-tokens") o.max_batch_tokens = int(count(1, 1 << 20));
      else if (a == "--kv-tokens") o.kv_tokens = std::int64_t(count(64, 1e9));
      else if (a == "--threads") o.threads = int(count(0, 4096));
      else if (a == "--seed") o.seed = std::uint64_t(count(0, 1e15));
      else if (a == "--tie-delta") o.tie_delta = count(0, 1);
      else if (a == "--commit") o.commit = v;
      else if (a == "--note") o.note = v;
      else if (a == "--json") o.json_path = v;
      else if (a == "--modes") {
        o.modes.clear();
        std::size_t pos = 0;
        while (pos <= v.size()) {
          const std::size_t c = std::min(v.find(',', pos), v.size());
          const std::string m = v.substr(pos, c - pos);
          if (m == "swap") o.modes.push_back(PreemptionMode::Swap);
          else if (m == "recompute") o.modes.push_back(PreemptionMode::Recompute);
          else throw Error(ErrorCode::InvalidArgument, fmt::format("--modes: '{}' is not swap or recompute", m));
          pos = c + 1;
        }
      } else {
        throw Error(ErrorCode::InvalidArgument, fmt::format("unknown option {}\n{}", a, kStressUsage));
      }
    }
    if (o.max_running > o.max_batch_tokens)
      throw Error(ErrorCode::InvalidArgument, "--max-running must not exceed --max-batch-tokens");

    const ModelConfig shape = stress_shape();
    const Model model = Model::random(shape, 12345, {.n_threads = o.threads}, gguf::TensorType::F32);
    std::vector<ModeResult> results;
    bool all_ok = true;
    for (PreemptionMode mode : o.modes) {
      std::fprintf(stderr, "[stress] %s: calibrating, then %d requests at %.0fx capacity...\n", mode_name(mode),
                   o.requests, o.overload);
      ModeResult r = run_mode(model, o, mode);
      std::fprintf(stderr,
                   "[stress] %s: capacity %.0f req/s, offered %.0f req/s over %.1f s (wall %.1f s)\n"
                   "         length %lld  stop %lld  cancelled %lld  deadline %lld  rejected %lld  | lost %lld  "
                   "duplicated %lld  events after end %lld\n"
                   "         completed checked against their runs alone: %lld (%lld greedy), mismatched %lld; "
                   "cut short checked as prefixes: %lld, mismatched %lld; near-tie flips: %lld greedy, %lld sampled\n"
                   "         preemptions swap %lld recompute %lld; cancel() %lld calls, %lld true, %lld already "
                   "ended, %lld refused while live; %s\n",
                   mode_name(mode), r.capacity_rps, r.offered_rps, r.trace_span_s, r.wall_s,
                   (long long)r.counts[Length], (long long)r.counts[Stop], (long long)r.counts[Cancelled],
                   (long long)r.counts[Deadline], (long long)r.counts[Rejected], (long long)r.lost,
                   (long long)r.duplicated, (long long)r.late_events, (long long)r.checked_complete,
                   (long long)r.checked_complete_greedy, (long long)r.mismatched_complete,
                   (long long)r.checked_partial, (long long)r.mismatched_partial, (long long)r.near_tie_greedy,
                   (long long)r.near_tie_sampled,
                   (long long)r.stats.preemptions_swap, (long long)r.stats.preemptions_recompute,
                   (long long)r.cancel_calls, (long long)r.cancel_true, (long long)r.cancel_false_ended,
                   (long long)r.cancel_refused_live, r.ok() ? "PASSED" : "FAILED");
      for (const auto& m : r.mismatches) std::fprintf(stderr, "         differs from alone: %s\n", m.c_str());
      all_ok = all_ok && r.ok();
      results.push_back(r);
    }

    std::string commit = o.commit;
    if (commit.empty()) {
      const char* env = std::getenv("VIREO_COMMIT");
      commit = env ? env : first_line("git rev-parse HEAD 2>/dev/null");
    }
    char date[64];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    std::string j = "{\n";
    j += fmt::format("  \"benchmark\": \"vireo-bench stress\",\n  \"date\": {},\n  \"commit\": {},\n", jstr(date),
                     jstr(commit));
    j += fmt::format("  \"machine\": {{\"cpu\": {}, \"hardware_threads\": {}, \"device\": \"cpu\", \"load_average\": {}}},\n",
                     jstr(cpu_name()), std::thread::hardware_concurrency(),
                     jstr(first_line("cut -d' ' -f1-3 /proc/loadavg 2>/dev/null")));
    j += fmt::format(
        "  \"model\": {{\"weights\": \"random f32\", \"layers\": {}, \"d_model\": {}, \"heads\": {}, \"kv_heads\": {}, "
        "\"head_dim\": {}, \"d_ff\": {}, \"vocab\": {}, \"context\": {}}},\n",
        shape.n_layers, shape.d_model, shape.n_heads, shape.n_kv_heads, shape.head_dim, shape.d_ff, shape.vocab_size,
        shape.context_length);
    j += fmt::format(
        "  \"config\": {{\"requests_per_mode\": {}, \"calibration_requests\": {}, \"overload\": {}, \"cancel_frac\": {}, "
        "\"deadline_frac\": {}, \"max_waiting\": {}, \"max_running\": {}, \"max_batch_tokens\": {}, \"kv_tokens\": {}, "
        "\"block_size\": {}, \"threads\": {}, \"seed\": {}, \"tie_delta\": {}, \"trace\": {}}},\n",
        o.requests, o.calibration, o.overload, o.cancel_frac, o.deadline_frac, o.max_waiting, o.max_running,
        o.max_batch_tokens, o.kv_tokens, o.block_size, o.threads, o.seed, o.tie_delta,
        jstr("Poisson arrivals at overload x capacity; prompts uniform [4, 40] tokens, a quarter behind a shared "
             "16-token prefix; outputs uniform [1, 48] tokens; half greedy, half seeded sampling (T 0.9, top-k 40); "
             "a fifth with 4 stop tokens; deadlines arrival + U(0.2, 3) T, cancellations at arrival + U(0, 2) T, "
             "T = max_running / capacity"));
    if (!o.note.empty()) j += fmt::format("  \"note\": {},\n", jstr(o.note));
    j += "  \"modes\": [\n";
    for (std::size_t i = 0; i < results.size(); ++i)
      j += "    " + mode_json(results[i]) + (i + 1 < results.size() ? ",\n" : "\n");
    j += fmt::format("  ],\n  \"passed\": {}\n}}\n", all_ok ? "true" : "false");
    if (o.json_path.empty()) {
      std::fputs(j.c_str(), stdout);
    } else {
      std::ofstream out(o.json_path);
      out << j;
      if (!out) throw Error(ErrorCode::Io, fmt::format("cannot write {}", o.json_path));
    }
    return all_ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vireo-bench stress: %s\n", e.what());
    return 2;
  }
}

}  // namespace vireo::bench
