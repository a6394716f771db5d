// vireo-bench serve: replay a request trace through vireo::Scheduler in real time and
// compare serving policies on the SAME trace in one run.
//
// Traces (seeded, so every policy sees identical requests and arrival times):
//   synthetic  prompts uniform in [--prompt-min, --prompt-max] random tokens, outputs uniform
//              in [--output-min, --output-max] tokens (end-of-generation ignored, as in the
//              usual serving benchmarks, so output lengths are the trace's);
//   shared     one common --system-tokens system prompt in front of short user prompts
//              uniform in [--user-min, --user-max], same output lengths.
// Arrivals are Poisson: exponential gaps at --rate requests/s (inf: all at t=0).
// Policies (each a fresh KVCache of the same size and a fresh Scheduler):
//   synthetic: continuous batching vs static batching (batch of --max-running), prefix on;
//              static batching computes its rectangle's padding as static-batching
//              frameworks do (SchedulerOptions::static_padding); "static-unpadded" leaves
//              the padding uncomputed, a lower bound on static batching's cost;
//   shared:    continuous with prefix caching on vs off (and static, prefix on).
// Every policy runs --repeats times, interleaved; the ratios use each policy's best run
// (shared machines make single runs noisy). The default rate overloads the 2-core CPU.
// Replay: requests whose arrival time has passed are submitted (with that arrival time, so
// queueing counts in TTFT), then one Scheduler::step(); when idle the loop sleeps until the
// next arrival. After every step KVCacheStats::waste() (allocated-but-empty slots of used
// blocks / pool slots) is sampled. Metrics gives TTFT / ITL / E2E percentiles, throughput
// is output tokens / (last finish - first arrival).
// Models: a GGUF file (--model, default SmolLM2-135M on the CPU) or random weights of a real
// shape (--random llama-3.2-1b | llama-3.1-8b | smollm2-135m), meant for a GPU.
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "vireo/error.hpp"
#include "vireo/gguf.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/metrics.hpp"
#include "vireo/model.hpp"
#include "vireo/scheduler.hpp"
#include "vireo_bench.hpp"

namespace vireo::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct ServeOptions {
  std::string model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string random;  // shape name: random weights instead of --model
  Device device = Device::cpu();
  int threads = 0;
  int requests = 24;
  double rate = 4.0;
  int prompt_min = 16, prompt_max = 200;
  int output_min = 8, output_max = 64;
  int system_tokens = 160, user_min = 8, user_max = 48;
  int block_size = 8;
  std::int64_t kv_tokens = 2048;  // pool size in tokens
  KVPrecision kv = KVPrecision::Model;  // --kv model|int8
  int max_batch_tokens = 256;
  int max_running = 16;
  int repeats = 2;
  PreemptionMode preemption = PreemptionMode::Swap;
  std::string traces = "synthetic,shared";
  std::uint64_t seed = 7;
  std::string commit, note, json_path;
};

const char* kServeUsage =
    "usage: vireo-bench serve [options]\n"
    "  --model PATH         GGUF model (default models/SmolLM2-135M-Instruct.Q4_1.gguf)\n"
    "  --random SHAPE       random weights of smollm2-135m | llama-3.2-1b | llama-3.1-8b instead\n"
    "  --device cpu|cuda    default cpu\n"
    "  --threads N          CPU threads (default: all cores)\n"
    "  --requests N         requests per trace (default 24)\n"
    "  --rate R             Poisson arrival rate, requests/s, or inf (default 4)\n"
    "  --prompt MIN,MAX     synthetic prompt lengths (default 16,200)\n"
    "  --output MIN,MAX     output lengths (default 8,64)\n"
    "  --system N           shared system prompt tokens (default 160)\n"
    "  --user MIN,MAX       shared-mix user prompt lengths (default 8,48)\n"
    "  --block-size N       KV block size (default 8)\n"
    "  --kv-tokens N        KV pool size in tokens (default 2048)\n"
    "  --kv model|int8      K/V storage (KVCacheOptions::precision)\n"
    "  --max-batch-tokens N per-step token budget (default 256)\n"
    "  --max-running N      running sequences; the static batch size (default 16)\n"
    "  --repeats N          run every policy N times, interleaved; ratios use each one's best (default 2)\n"
    "  --preemption swap|recompute   (default swap)\n"
    "  --traces LIST        synthetic,shared (default both)\n"
    "  --seed N             trace seed (default 7)\n"
    "  --commit SHA         recorded in the JSON (default: $VIREO_COMMIT, else git rev-parse HEAD)\n"
    "  --note TEXT          free text recorded in the JSON\n"
    "  --json FILE          write the JSON there instead of stdout\n";

std::pair<int, int> parse_range(const std::string& flag, const std::string& v) {
  const auto c = v.find(',');
  try {
    if (c == std::string::npos) throw std::invalid_argument(v);
    int a = std::stoi(v.substr(0, c)), b = std::stoi(v.substr(c + 1));
    if (a < 1 || b < a) throw std::invalid_argument(v);
    return {a, b};
  } catch (const std::exception&) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("{} wants MIN,MAX with 1 <= MIN <= MAX, got '{}'", flag, v));
  }
}

long long parse_num(const std::string& flag, const std::string& v, long long lo) {
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end || errno || x < lo)
    throw Error(ErrorCode::InvalidArgument, fmt::format("{} wants an integer >= {}, got '{}'", flag, lo, v));
  return x;
}

ServeOptions parse_serve(int argc, char** argv) {
  ServeOptions o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kServeUsage, stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) throw Error(ErrorCode::InvalidArgument, fmt::format("{} needs a value", a));
    std::string v = argv[++i];
    if (a == "--model") o.model = v;
    else if (a == "--random") o.random = v;
    else if (a == "--device") {
      if (v == "cpu") o.device = Device::cpu();
      else if (v == "cuda") o.device = Device::cuda(0);
      else throw Error(ErrorCode::InvalidArgument, fmt::format("--device must be cpu or cuda, got '{}'", v));
    } else if (a == "--threads") o.threads = int(parse_num(a, v, 0));
    else if (a == "--requests") o.requests = int(parse_num(a, v, 1));
    else if (a == "--rate") {
      o.rate = v == "inf" ? std::numeric_limits<double>::infinity() : std::atof(v.c_str());
      if (!(o.rate > 0)) throw Error(ErrorCode::InvalidArgument, fmt::format("--rate must be > 0 or inf, got '{}'", v));
    } else if (a == "--prompt") std::tie(o.prompt_min, o.prompt_max) = parse_range(a, v);
    else if (a == "--output") std::tie(o.output_min, o.output_max) = parse_range(a, v);
    else if (a == "--system") o.system_tokens = int(parse_num(a, v, 0));
    else if (a == "--user") std::tie(o.user_min, o.user_max) = parse_range(a, v);
    else if (a == "--block-size") o.block_size = int(parse_num(a, v, 1));
    else if (a == "--kv-tokens") o.kv_tokens = parse_num(a, v, 1);
    else if (a == "--kv") {
      if (v != "model" && v != "int8")
        throw Error(ErrorCode::InvalidArgument, fmt::format("--kv must be model or int8, got '{}'", v));
      o.kv = v == "int8" ? KVPrecision::Int8 : KVPrecision::Model;
    }
    else if (a == "--max-batch-tokens") o.max_batch_tokens = int(parse_num(a, v, 1));
    else if (a == "--max-running") o.max_running = int(parse_num(a, v, 1));
    else if (a == "--repeats") o.repeats = int(parse_num(a, v, 1));
    else if (a == "--preemption") {
      if (v == "swap") o.preemption = PreemptionMode::Swap;
      else if (v == "recompute") o.preemption = PreemptionMode::Recompute;
      else throw Error(ErrorCode::InvalidArgument, fmt::format("--preemption must be swap or recompute, got '{}'", v));
    } else if (a == "--traces") o.traces = v;
    else if (a == "--seed") o.seed = std::uint64_t(parse_num(a, v, 0));
    else if (a == "--commit") o.commit = v;
    else if (a == "--note") o.note = v;
    else if (a == "--json") o.json_path = v;
    else throw Error(ErrorCode::InvalidArgument, fmt::format("unknown option '{}' (see --help)", a));
  }
  return o;
}

ModelConfig shape(const std::string& name) {
  ModelConfig c;
  c.name = name;
  if (name == "smollm2-135m") {
    c.n_layers = 30; c.d_model = 576; c.n_heads = 9; c.n_kv_heads = 3; c.head_dim = 64;
    c.d_ff = 1536; c.vocab_size = 49152; c.rope_theta = 100000.0f;
  } else if (name == "llama-3.2-1b") {
    c.n_layers = 16; c.d_model = 2048; c.n_heads = 32; c.n_kv_heads = 8; c.head_dim = 64;
    c.d_ff = 8192; c.vocab_size = 128256; c.rope_theta = 500000.0f;
  } else if (name == "llama-3.1-8b") {
    c.n_layers = 32; c.d_model = 4096; c.n_heads = 32; c.n_kv_heads = 8; c.head_dim = 128;
    c.d_ff = 14336; c.vocab_size = 128256; c.rope_theta = 500000.0f; c.tied_embeddings = false;
  } else {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("--random '{}': expected smollm2-135m, llama-3.2-1b or llama-3.1-8b", name));
  }
  c.context_length = 8192;
  return c;
}

struct TraceRequest {
  double arrival_s;
  std::vector<Token> prompt;
  int max_new;
};

struct Trace {
  std::string name, description;
  std::vector<TraceRequest> reqs;
};

Trace make_trace(const std::string& kind, const ServeOptions& o, int vocab) {
  std::mt19937_64 rng(o.seed * 1000003ull + (kind == "shared" ? 1 : 0));
  // Token ids away from 0 (special tokens sit at the start of most vocabularies).
  std::uniform_int_distribution<Token> tok(std::min(vocab - 1, 256), vocab - 1);
  std::uniform_int_distribution<int> out_len(o.output_min, o.output_max);
  std::exponential_distribution<double> gap(std::isinf(o.rate) ? 1.0 : o.rate);
  Trace t;
  t.name = kind;
  std::vector<Token> system(std::size_t(o.system_tokens));
  for (auto& x : system) x = tok(rng);
  double at = 0;
  for (int i = 0; i < o.requests; ++i) {
    TraceRequest r;
    if (kind == "shared") {
      r.prompt = system;
      const int n = std::uniform_int_distribution<int>(o.user_min, o.user_max)(rng);
      for (int k = 0; k < n; ++k) r.prompt.push_back(tok(rng));
    } else {
      const int n = std::uniform_int_distribution<int>(o.prompt_min, o.prompt_max)(rng);
      for (int k = 0; k < n; ++k) r.prompt.push_back(tok(rng));
    }
    r.max_new = out_len(rng);
    r.arrival_s = at;
    if (!std::isinf(o.rate)) at += gap(rng);
    t.reqs.push_back(std::move(r));
  }
  const std::string rate = std::isinf(o.rate) ? std::string("all at t=0") : fmt::format("Poisson {} req/s", o.rate);
  if (kind == "shared")
    t.description = fmt::format(
        "{} requests, {}; prompt = one shared {}-token system prompt + user prompt uniform [{}, {}] random tokens; "
        "output uniform [{}, {}] tokens (eog ignored)",
        o.requests, rate, o.system_tokens, o.user_min, o.user_max, o.output_min, o.output_max);
  else
    t.description = fmt::format(
        "{} requests, {}; prompt uniform [{}, {}] random tokens; output uniform [{}, {}] tokens (eog ignored)",
        o.requests, rate, o.prompt_min, o.prompt_max, o.output_min, o.output_max);
  return t;
}

struct RunResult {
  std::string name;
  Metrics::Summary summary;
  std::string metrics_json;
  SchedulerStats sched;
  KVCacheStats cache;
  double waste_mean = 0, waste_max = 0;
  double used_waste_mean = 0;  // empty slots / slots of used blocks (per-sequence tail waste)
  double mean_batch_tokens = 0;
  double peak_pool_used = 0;   // max over steps of used blocks / pool blocks
  double wall_s = 0;
  std::size_t completed = 0;
};

RunResult replay(const Model& model, const Trace& trace, const std::string& name, BatchingMode mode, bool prefix,
                 const ServeOptions& o, bool static_padding = true) {
  KVCacheOptions co;
  co.block_size = o.block_size;
  co.num_blocks = (o.kv_tokens + o.block_size - 1) / o.block_size;
  co.prefix_caching = prefix;
  co.precision = o.kv;
  KVCache cache(model, co);
  Metrics metrics;
  metrics.set_label("policy", name);
  metrics.set_label("trace", trace.name);
  SchedulerOptions so;
  so.mode = mode;
  so.preemption = o.preemption;
  so.max_batch_tokens = o.max_batch_tokens;
  so.max_running = o.max_running;
  so.prefix_caching = prefix;
  so.static_padding = static_padding;
  so.metrics = &metrics;
  Scheduler sched(model, cache, so);

  RunResult res;
  res.name = name;
  double waste_sum = 0, used_sum = 0;
  std::int64_t samples = 0;
  std::size_t next = 0;
  const auto t0 = Clock::now();
  auto at = [&](double s) { return t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); };
  while (next < trace.reqs.size() || !sched.idle()) {
    const auto now = Clock::now();
    while (next < trace.reqs.size() && at(trace.reqs[next].arrival_s) <= now) {
      Request r;
      r.id = next;
      r.prompt = trace.reqs[next].prompt;
      r.max_new_tokens = trace.reqs[next].max_new;
      r.sampling.temperature = 0;  // greedy: the policies must produce the same tokens
      r.stop_at_eog = false;
      sched.submit(std::move(r), at(trace.reqs[next].arrival_s));
      ++next;
    }
    if (sched.idle()) {
      std::this_thread::sleep_until(at(trace.reqs[next].arrival_s));
      continue;
    }
    StepResult r = sched.step();
    res.completed += r.finished.size();
    const KVCacheStats st = cache.stats();
    const double w = st.waste();
    waste_sum += w;
    res.waste_max = std::max(res.waste_max, w);
    res.peak_pool_used = std::max(res.peak_pool_used, double(st.blocks_used) / double(st.blocks_total));
    if (st.blocks_used > 0)
      used_sum += double(st.blocks_used * st.block_size - st.tokens_stored) / double(st.blocks_used * st.block_size);
    ++samples;
  }
  res.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  res.waste_mean = samples ? waste_sum / double(samples) : 0;
  res.used_waste_mean = samples ? used_sum / double(samples) : 0;
  res.summary = metrics.summary();
  res.metrics_json = metrics.to_json();
  res.sched = sched.stats();
  res.cache = cache.stats();
  res.mean_batch_tokens = res.sched.steps ? double(res.sched.forward_tokens) / double(res.sched.steps) : 0;
  return res;
}


// 1, 5 and 15 minute load averages: how busy the (possibly shared) machine was.
std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return in ? a + " " + b + " " + c : std::string("unknown");
}


std::string run_json(const RunResult& r) {
  const auto& s = r.summary;
  return fmt::format(
      "{{\"policy\": {}, \"completed\": {}, \"output_tokens_per_s\": {:.3f}, \"requests_per_s\": {:.4f}, "
      "\"duration_s\": {:.3f}, \"ttft_s\": {{\"p50\": {:.4f}, \"p95\": {:.4f}, \"p99\": {:.4f}}}, "
      "\"itl_s\": {{\"p50\": {:.4f}, \"p95\": {:.4f}, \"p99\": {:.4f}}}, "
      "\"e2e_s\": {{\"p50\": {:.4f}, \"p95\": {:.4f}, \"p99\": {:.4f}}}, "
      "\"prefix_cache_hit_rate\": {:.4f}, \"kv_waste_of_pool\": {{\"mean\": {:.5f}, \"max\": {:.5f}}}, "
      "\"kv_tail_waste_of_used_blocks_mean\": {:.4f}, \"kv_peak_pool_used\": {:.4f}, "
      "\"scheduler\": {{\"steps\": {}, \"mean_batch_tokens\": {:.2f}, \"prefill_tokens\": {}, \"decode_tokens\": {}, "
      "\"preemptions_swap\": {}, \"preemptions_recompute\": {}, \"recomputed_tokens\": {}, \"idle_slot_steps\": {}, \"padding_tokens\": {}}}, "
      "\"metrics\": {}}}",
      jstr(r.name), r.completed, s.output_tokens_per_s, s.requests_per_s, s.duration_s, s.ttft.p50, s.ttft.p95,
      s.ttft.p99, s.itl.p50, s.itl.p95, s.itl.p99, s.e2e.p50, s.e2e.p95, s.e2e.p99, s.cache_hit_rate, r.waste_mean,
      r.waste_max, r.used_waste_mean, r.peak_pool_used, r.sched.steps, r.mean_batch_tokens, r.sched.prefill_tokens,
      r.sched.decode_tokens, r.sched.preemptions_swap, r.sched.preemptions_recompute, r.sched.recomputed_tokens,
      r.sched.idle_slot_steps, r.sched.padding_tokens, r.metrics_json);
}

void print_human(const Trace& t, const RunResult& r) {
  const auto& s = r.summary;
  std::fprintf(stderr,
               "  %-9s %-22s %3zu done  %7.2f tok/s  %5.2f req/s  TTFT p50 %6.3f p99 %6.3f s  ITL p50 %6.4f p99 "
               "%6.4f s  E2E p50 %6.2f s  hit %4.2f  waste mean %.4f max %.4f  pool peak %.2f  preempt %lld\n",
               t.name.c_str(), r.name.c_str(), r.completed, s.output_tokens_per_s, s.requests_per_s, s.ttft.p50,
               s.ttft.p99, s.itl.p50, s.itl.p99, s.e2e.p50, s.cache_hit_rate, r.waste_mean, r.waste_max,
               r.peak_pool_used, (long long)(r.sched.preemptions_swap + r.sched.preemptions_recompute));
}

}  // namespace

int run_serve(int argc, char** argv) {
  try {
    const ServeOptions o = parse_serve(argc, argv);
    ModelOptions mo;
    mo.device = o.device;
    mo.n_threads = o.threads;
    const auto load_t0 = Clock::now();
    Model model = o.random.empty() ? Model::load(o.model, mo)
                                   : Model::random(shape(o.random), o.seed, mo,
                                                   o.device.kind == DeviceKind::CPU ? gguf::TensorType::Q4_1
                                                                                    : gguf::TensorType::F16);
    std::fprintf(stderr, "vireo-bench serve: %s on %s loaded in %.1f s\n",
                 o.random.empty() ? o.model.c_str() : ("random " + o.random).c_str(), model.device().name().c_str(),
                 std::chrono::duration<double>(Clock::now() - load_t0).count());

    std::vector<std::string> kinds;
    for (std::size_t p = 0; p <= o.traces.size();) {
      std::size_t c = o.traces.find(',', p);
      if (c == std::string::npos) c = o.traces.size();
      std::string k = o.traces.substr(p, c - p);
      if (k != "synthetic" && k != "shared")
        throw Error(ErrorCode::InvalidArgument, fmt::format("--traces: unknown trace '{}'", k));
      kinds.push_back(k);
      p = c + 1;
    }

    std::string commit = o.commit;
    if (commit.empty()) {
      const char* env = std::getenv("VIREO_COMMIT");
      commit = env ? env : first_line("git rev-parse HEAD 2>/dev/null");
    }
    char date[64];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));

    const std::string load_start = loadavg();
    std::string j = "{\n";
    j += fmt::format("  \"benchmark\": \"vireo-bench serve\",\n  \"date\": {},\n  \"commit\": {},\n", jstr(date),
                     jstr(commit));
    j += fmt::format("  \"machine\": {{\"cpu\": {}, \"hardware_threads\": {}, \"device\": {}}},\n", jstr(cpu_name()),
                     std::thread::hardware_concurrency(), jstr(model.device().name()));
    j += fmt::format(
        "  \"model\": {},\n  \"config\": {{\"block_size\": {}, \"kv_pool_tokens\": {}, \"max_batch_tokens\": {}, "
        "\"max_running\": {}, \"static_batch_size\": {}, \"preemption\": {}, \"threads\": {}, \"repeats\": {}, "
        "\"kv\": {}, \"sampling\": \"greedy\"}},\n",
        jstr(o.random.empty() ? o.model : "random:" + o.random), o.block_size,
        ((o.kv_tokens + o.block_size - 1) / o.block_size) * o.block_size, o.max_batch_tokens, o.max_running,
        o.max_running, jstr(o.preemption == PreemptionMode::Swap ? "swap" : "recompute"), o.threads, o.repeats,
        jstr(o.kv == KVPrecision::Int8 ? "int8" : "model"));
    if (!o.note.empty()) j += fmt::format("  \"note\": {},\n", jstr(o.note));
    j += "  \"traces\": [\n";
    for (std::size_t ti = 0; ti < kinds.size(); ++ti) {
      const Trace t = make_trace(kinds[ti], o, model.config().vocab_size);
      std::fprintf(stderr, "trace %s: %s\n", t.name.c_str(), t.description.c_str());
      std::vector<RunResult> runs;
      auto go = [&](const std::string& n, BatchingMode m, bool prefix, bool padding = true) {
        runs.push_back(replay(model, t, n, m, prefix, o, padding));
        print_human(t, runs.back());
      };
      // Policies run interleaved, --repeats times; the ratios compare each policy's best
      // repetition (highest tok/s, lowest median TTFT), which discounts the slow runs a
      // shared machine causes.
      for (int rep = 0; rep < o.repeats; ++rep) {
        go("continuous+prefix", BatchingMode::Continuous, true);
        if (t.name == "shared") go("continuous-noprefix", BatchingMode::Continuous, false);
        go("static+prefix", BatchingMode::Static, true);
        go("static-unpadded+prefix", BatchingMode::Static, true, false);
        if (t.name == "synthetic") go("continuous-noprefix", BatchingMode::Continuous, false);
      }
      auto best = [&](const std::string& n) {
        RunResult b;
        b.summary.ttft.p50 = std::numeric_limits<double>::infinity();
        for (const auto& r : runs)
          if (r.name == n) {
            b.summary.output_tokens_per_s = std::max(b.summary.output_tokens_per_s, r.summary.output_tokens_per_s);
            b.summary.ttft.p50 = std::min(b.summary.ttft.p50, r.summary.ttft.p50);
          }
        return b;
      };
      const RunResult cont = best("continuous+prefix"), stat = best("static+prefix"), nop = best("continuous-noprefix");
      const double thr_ratio = cont.summary.output_tokens_per_s / std::max(1e-12, stat.summary.output_tokens_per_s);
      const double thr_ratio_unpadded =
          cont.summary.output_tokens_per_s / std::max(1e-12, best("static-unpadded+prefix").summary.output_tokens_per_s);
      const double ttft_ratio = nop.summary.ttft.p50 / std::max(1e-12, cont.summary.ttft.p50);
      double worst_waste = 0;
      for (const auto& r : runs) worst_waste = std::max(worst_waste, r.waste_max);
      std::fprintf(stderr,
                   "  => continuous/static throughput %.2fx (%.2fx vs static with free padding), TTFT p50 prefix "
                   "off/on %.2fx, max KV waste %.4f\n",
                   thr_ratio, thr_ratio_unpadded, ttft_ratio, worst_waste);

      j += fmt::format("    {{\"trace\": {}, \"description\": {}, \"runs\": [\n", jstr(t.name), jstr(t.description));
      for (std::size_t i = 0; i < runs.size(); ++i)
        j += "      " + run_json(runs[i]) + (i + 1 < runs.size() ? ",\n" : "\n");
      // On the synthetic trace no two prompts share a block, so prefix on vs off is the same
      // work: their gap measures run-to-run noise, not prefix caching.
      const std::string prefix_field =
          t.name == "shared"
              ? fmt::format("\"ttft_p50_prefix_off_over_on\": {:.3f}", ttft_ratio)
              : fmt::format("\"noise_check\": {{\"what\": \"continuous with prefix caching on vs off on a trace "
                            "with no shared prefixes (identical work)\", \"output_tokens_per_s_ratio\": {:.3f}, "
                            "\"ttft_p50_ratio\": {:.3f}}}",
                            nop.summary.output_tokens_per_s / std::max(1e-12, cont.summary.output_tokens_per_s),
                            ttft_ratio);
      j += fmt::format(
          "    ], \"ratios\": {{\"continuous_over_static_output_tokens_per_s\": {:.3f}, "
          "\"continuous_over_static_unpadded_output_tokens_per_s\": {:.3f}, {}, "
          "\"max_kv_waste_of_pool\": {:.5f}}}}}{}\n",
          thr_ratio, thr_ratio_unpadded, prefix_field, worst_waste, ti + 1 < kinds.size() ? "," : "");
    }
    j += fmt::format("  ],\n  \"load_average\": {{\"start\": {}, \"end\": {}}}\n}}\n", jstr(load_start), jstr(loadavg()));
    if (o.json_path.empty()) {
      std::fputs(j.c_str(), stdout);
    } else {
      std::ofstream out(o.json_path);
      out << j;
      if (!out) throw Error(ErrorCode::Io, fmt::format("cannot write {}", o.json_path));
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vireo-bench serve: %s\n", e.what());
    return 1;
  }
}

}  // namespace vireo::bench
