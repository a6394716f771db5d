// vireo-bench cancel: how fast a long CPU prefill stops when its ForwardOptions::cancel flag
// is raised, and that the cache is as it was afterwards.
//
// One prompt of --tokens tokens (real text, repeated) is prefilled as one step; another
// thread raises the step's cancel flag after each --delays value (milliseconds). The
// latency is the time from raising the flag to forward() returning Cancelled. Each delay
// runs --repeats times; after every cancelled step the cache must hold nothing (checked)
// and one complete prefill at the end must succeed. The target is 100 ms; the full
// prefill's time and throughput are reported for scale.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "vireo/vireo.hpp"
#include "vireo_bench.hpp"

namespace vireo::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  int threads = 2, tokens = 4096, repeats = 3;
  std::vector<int> delays = {50, 250, 1000, 3000};
  std::string json_path, commit;
};

const char* kUsage =
    "usage: vireo-bench cancel [options]\n"
    "  --model PATH     GGUF model (default models/SmolLM2-135M-Instruct.Q4_1.gguf), CPU\n"
    "  --threads N      CPU threads (default 2)\n"
    "  --tokens N       prompt length of the prefill (default 4096)\n"
    "  --delays LIST    ms after the step starts at which the flag is raised (default 50,250,1000,3000)\n"
    "  --repeats N      runs per delay (default 3)\n"
    "  --json FILE      write the JSON there (default: stdout)\n"
    "  --commit SHA     recorded in the JSON (default: $VIREO_COMMIT, else git rev-parse HEAD)\n";

std::vector<int> int_list(const std::string& s) {
  std::vector<int> out;
  std::size_t at = 0;
  while (at <= s.size()) {
    const std::size_t comma = s.find(',', at);
    out.push_back(std::atoi(s.substr(at, comma - at).c_str()));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return out;
}

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

}  // namespace

int run_cancel(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n%s", a.c_str(), kUsage);
      return 2;
    }
    const std::string v = argv[++i];
    if (a == "--model") o.model = v;
    else if (a == "--threads") o.threads = std::atoi(v.c_str());
    else if (a == "--tokens") o.tokens = std::atoi(v.c_str());
    else if (a == "--delays") o.delays = int_list(v);
    else if (a == "--repeats") o.repeats = std::atoi(v.c_str());
    else if (a == "--json") o.json_path = v;
    else if (a == "--commit") o.commit = v;
    else {
      std::fprintf(stderr, "unknown option %s\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  if (o.tokens < 1 || o.repeats < 1 || o.threads < 1) {
    std::fprintf(stderr, "--tokens, --repeats and --threads must be positive\n");
    return 2;
  }
  const Model m = Model::load(o.model, {.n_threads = o.threads});
  if (o.tokens > m.config().context_length) {
    std::fprintf(stderr, "--tokens %d exceeds the model's context of %d\n", o.tokens, m.config().context_length);
    return 2;
  }
  const std::string para =
      "The committee met on a grey morning to weigh the harbour plans once more. Every speaker "
      "had numbers, and none of the numbers agreed; the engineers wanted deeper berths, the "
      "fishermen wanted the old quay left alone, and the treasurer wanted to go home. ";
  std::vector<Token> prompt;
  const std::vector<Token> piece = m.tokenizer().encode(para, {.add_special = false});
  while (prompt.size() < std::size_t(o.tokens)) prompt.insert(prompt.end(), piece.begin(), piece.end());
  prompt.resize(std::size_t(o.tokens));

  KVCache cache(m, {.num_blocks = (o.tokens + 15) / 16 + 1, .prefix_caching = false});
  Logits out;
  auto prefill = [&](const std::atomic<bool>* flag) {
    const SeqId s = cache.add_sequence();
    Batch b;
    b.add(s, prompt, Last);
    try {
      m.forward(b, cache, out, {.cancel = flag});
    } catch (...) {
      cache.remove(s);
      throw;
    }
    cache.remove(s);
  };

  // The full prefill, for scale (and to warm up).
  auto t0 = Clock::now();
  prefill(nullptr);
  const double full_ms = ms_since(t0);
  std::fprintf(stderr, "prefill of %d tokens: %.0f ms (%.0f tok/s)\n", o.tokens, full_ms, o.tokens / full_ms * 1e3);

  struct Row {
    int delay;
    std::vector<double> latency_ms;
    int cancelled = 0, completed = 0;
  };
  std::vector<Row> rows;
  bool intact = true;
  for (int delay : o.delays) {
    Row r{delay, {}, 0, 0};
    for (int rep = 0; rep < o.repeats; ++rep) {
      std::atomic<bool> flag{false};
      Clock::time_point raised{};
      std::atomic<bool> done{false};
      std::thread raiser([&] {
        const auto until = Clock::now() + std::chrono::milliseconds(delay);
        while (!done.load() && Clock::now() < until) std::this_thread::sleep_for(std::chrono::microseconds(200));
        if (done.load()) return;
        raised = Clock::now();
        flag.store(true);
      });
      try {
        prefill(&flag);
        done.store(true);
        raiser.join();
        ++r.completed;
      } catch (const Error& e) {
        const auto returned = Clock::now();
        done.store(true);
        raiser.join();
        if (e.code() != ErrorCode::Cancelled) throw;
        ++r.cancelled;
        r.latency_ms.push_back(std::chrono::duration<double, std::milli>(returned - raised).count());
      }
      const KVCacheStats st = cache.stats();
      if (st.sequences != 0 || st.blocks_used != 0) intact = false;
    }
    std::sort(r.latency_ms.begin(), r.latency_ms.end());
    std::fprintf(stderr, "flag at %5d ms: %d cancelled, %d completed; latency ms:", delay, r.cancelled, r.completed);
    for (double l : r.latency_ms) std::fprintf(stderr, " %.1f", l);
    std::fprintf(stderr, "\n");
    rows.push_back(std::move(r));
  }
  t0 = Clock::now();
  prefill(nullptr);
  const double after_ms = ms_since(t0);
  double worst = 0;
  for (const Row& r : rows)
    for (double l : r.latency_ms) worst = std::max(worst, l);
  std::fprintf(stderr, "worst cancel latency %.1f ms (target 100 ms: %s); cache intact: %s; prefill after: %.0f ms\n",
               worst, worst <= 100 ? "met" : "missed", intact ? "yes" : "NO", after_ms);

  std::string commit = o.commit;
  if (commit.empty()) {
    const char* env = std::getenv("VIREO_COMMIT");
    commit = env ? env : first_line("git rev-parse HEAD 2>/dev/null");
  }
  char date[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  std::string j = "{\n";
  j += fmt::format("  \"benchmark\": \"vireo-bench cancel\",\n  \"date\": {},\n  \"commit\": {},\n", jstr(date), jstr(commit));
  // The latency is one op of one chunk: other work on the machine stretches it, so record it.
  j += fmt::format("  \"machine\": {{\"cpu\": {}, \"threads\": {}, \"loadavg\": {}}},\n", jstr(cpu_name()), o.threads,
                   jstr(first_line("cat /proc/loadavg 2>/dev/null")));
  j += fmt::format("  \"model\": {},\n  \"prompt_tokens\": {},\n  \"full_prefill_ms\": {:.1f},\n", jstr(o.model), o.tokens,
                   full_ms);
  j += fmt::format("  \"target_ms\": 100,\n  \"worst_latency_ms\": {:.1f},\n  \"cache_intact\": {},\n", worst,
                   intact ? "true" : "false");
  j += "  \"runs\": [\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    std::string lat;
    for (std::size_t k = 0; k < r.latency_ms.size(); ++k) lat += fmt::format("{}{:.1f}", k ? ", " : "", r.latency_ms[k]);
    j += fmt::format("    {{\"flag_at_ms\": {}, \"cancelled\": {}, \"completed\": {}, \"latency_ms\": [{}]}}{}\n", r.delay,
                     r.cancelled, r.completed, lat, i + 1 < rows.size() ? "," : "");
  }
  j += "  ]\n}\n";
  if (o.json_path.empty()) {
    std::fputs(j.c_str(), stdout);
  } else {
    std::ofstream f(o.json_path);
    f << j;
  }
  return intact ? 0 : 1;
}

}  // namespace vireo::bench
