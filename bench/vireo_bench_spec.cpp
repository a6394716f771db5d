// vireo-bench spec: speculative decoding with prompt lookup (SpeculativeDecoder without a
// draft model), and with --medusa a sidecar's Medusa tree rounds, against plain greedy
// decoding, on the same model and prompts, in one run.
//
// Tasks (chat-templated user prompts):
//   quote  repeat a paragraph word for word: the output is in the prompt, and lookup should
//          draft most of it;
//   edit   fix the spelling of a paragraph: mostly copied, with changes;
//   open   a short story: little to look up. This measures what a failed lookup costs.
// Each task runs plain greedy decoding (one forward per token) and lookup rounds for each
// --draft-tokens k, interleaved, --repeats times; the best time of each counts. The prompt
// is prefilled before the clock starts. Greedy: both must produce the same tokens (checked,
// reported as "identical").
// The floor is the batch-1 decode floor: weight bytes / measured read bandwidth per token.
// A speculative round verifies several tokens with one pass over the weights, so its
// per-token time can beat that floor; it is reported as a fraction of the floor all the
// same (above 1.0 = faster than any one-token-per-pass decoder can be).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <optional>
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
  int threads = 2, tokens = 128, repeats = 2, ngram = 3;
  std::vector<int> ks = {2, 4, 8};
  std::vector<std::string> tasks = {"quote", "edit", "open"};
  std::string json_path, commit;
  std::string medusa;                     ///< a Medusa sidecar: its tree rounds run too
  std::vector<int> tree_k = {2, 2, 1};    ///< Medusa tree: top-k per depth
  int tree_max = 8;                       ///< Medusa tree: most tokens
  bool dynamic = false;                   ///< Medusa tree grown best first
};

const char* kUsage =
    "usage: vireo-bench spec [options]\n"
    "  --model PATH         GGUF model (default models/SmolLM2-135M-Instruct.Q4_1.gguf), CPU\n"
    "  --threads N          CPU threads (default 2)\n"
    "  --tokens N           tokens generated per run, fewer if the model ends (default 128)\n"
    "  --draft-tokens LIST  lookup draft lengths k, comma separated (default 2,4,8)\n"
    "  --ngram N            longest n-gram looked up (default 3)\n"
    "  --tasks LIST         quote,edit,open (default all)\n"
    "  --repeats N          interleaved runs per method; best counts (default 2)\n"
    "  --medusa FILE        also run Medusa tree rounds with this sidecar (greedy)\n"
    "  --tree-k LIST        Medusa tree: top-k per depth (default 2,2,1)\n"
    "  --tree-max N         Medusa tree: most tokens, root included (default 8)\n"
    "  --dynamic            Medusa tree grown best first by cumulative probability\n"
    "  --json FILE          write the JSON there (default: stdout)\n"
    "  --commit SHA         recorded in the JSON (default: $VIREO_COMMIT, else git rev-parse HEAD)\n";

const char* kParagraph =
    "The lighthouse stood on a narrow spit of rock at the mouth of the harbour. Every evening the keeper climbed "
    "the one hundred and twelve steps, trimmed the wick, polished the great lens and wound the clockwork that "
    "turned it. Ships counted the flashes to know where they were: three short and one long meant the harbour, "
    "two long meant the reef to the north. In forty years the light had failed only once, on the night of the "
    "great storm, and the keeper still kept the broken pane in a drawer beside his bed.";

const char* kTypos =
    "The lighthuose stood on a narow spit of rock at the mouth of the harbour. Every evening the keeper climbd "
    "the one hundred and twelve steps, trimed the wick, polished the great lens and wound the clockwork that "
    "turned it. Ships counted the flashes to know where they wer: three short and one long meant the harbour, "
    "two long meant the reef to the north.";

std::string task_prompt(const std::string& task) {
  if (task == "quote") return std::string("Repeat the following paragraph word for word:\n\n") + kParagraph;
  if (task == "edit")
    return std::string("Rewrite this paragraph with the spelling mistakes fixed, changing nothing else:\n\n") + kTypos;
  if (task == "open") return "Write a short story about a lighthouse keeper.";
  throw Error(ErrorCode::InvalidArgument, fmt::format("--tasks: unknown task '{}' (quote, edit, open)", task));
}

std::vector<int> parse_ints(const std::string& s) {
  std::vector<int> v;
  for (std::size_t p = 0; p <= s.size();) {
    std::size_t c = s.find(',', p);
    if (c == std::string::npos) c = s.size();
    const int x = std::atoi(s.substr(p, c - p).c_str());
    if (x < 1 || x > 16) throw Error(ErrorCode::InvalidArgument, fmt::format("--draft-tokens: {} is outside 1..16", x));
    v.push_back(x);
    p = c + 1;
  }
  return v;
}

std::vector<std::string> parse_list(const std::string& s) {
  std::vector<std::string> v;
  for (std::size_t p = 0; p <= s.size();) {
    std::size_t c = s.find(',', p);
    if (c == std::string::npos) c = s.size();
    v.push_back(s.substr(p, c - p));
    p = c + 1;
  }
  return v;
}


struct Run {
  std::vector<Token> out;
  double seconds = 0;
  SpeculativeStats stats;
};

/// A cache holding every prompt token but the last (which each method feeds first).
KVCache prefilled(const Model& m, const std::vector<Token>& prompt, SeqId& s) {
  KVCache cache(m, {.num_blocks = 256});
  s = cache.add_sequence();
  Batch b;
  b.add(s, std::span<const Token>(prompt.data(), prompt.size() - 1), Want::None);
  m.forward(b, cache);
  return cache;
}

/// Plain greedy decoding of up to n tokens after `prompt` (prefilled before the clock).
Run plain(const Model& m, const std::vector<Token>& prompt, int n) {
  SeqId s = 0;
  KVCache cache = prefilled(m, prompt, s);
  Batch b;
  Logits lg;
  Sampler greedy({.temperature = 0.0f});
  Run r;
  Token next = prompt.back();
  const auto t0 = Clock::now();
  while (int(r.out.size()) < n) {
    b.clear();
    b.add(s, {next}, Want::Last);
    m.forward(b, cache, lg);
    next = greedy.sample(lg.row(0)).token;
    r.out.push_back(next);
    if (m.tokenizer().is_eog(next)) break;
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

/// Speculative rounds of `spec` (greedy) until n tokens after `prompt` (prefilled before the
/// clock); the last round may overshoot: the extra tokens are dropped, their time kept.
Run rounds(const Model& m, SpeculativeDecoder& spec, const std::vector<Token>& prompt, int n) {
  SeqId s = 0;
  KVCache cache = prefilled(m, prompt, s);
  Sampler greedy({.temperature = 0.0f});
  std::vector<Token> toks = prompt;
  Run r;
  const auto t0 = Clock::now();
  bool done = false;
  while (!done && int(r.out.size()) < n) {
    const std::vector<Token> got = spec.step(toks, cache, s, greedy);
    for (Token t : got) {
      if (int(r.out.size()) >= n) break;
      r.out.push_back(t);
      toks.push_back(t);
      if (m.tokenizer().is_eog(t)) {
        done = true;
        break;
      }
    }
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.stats = spec.stats();
  return r;
}

/// Prompt-lookup speculative decoding of up to n tokens.
Run lookup(const Model& m, const std::vector<Token>& prompt, int n, int k, int ngram) {
  SpeculativeDecoder spec(m, {.draft_tokens = k, .lookup_ngram = ngram});
  return rounds(m, spec, prompt, n);
}

/// Medusa tree rounds of up to n tokens.
Run medusa(const MedusaHeads& h, const TreeParams& tp, const std::vector<Token>& prompt, int n) {
  SpeculativeDecoder spec(h, tp);
  return rounds(h.base(), spec, prompt, n);
}

int run(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stderr);
      return 0;
    }
    if (a == "--dynamic") {
      o.dynamic = true;
      continue;
    }
    if (i + 1 >= argc) throw Error(ErrorCode::InvalidArgument, fmt::format("{} needs a value", a));
    const std::string v = argv[++i];
    if (a == "--model") o.model = v;
    else if (a == "--threads") o.threads = std::max(1, std::atoi(v.c_str()));
    else if (a == "--tokens") o.tokens = std::max(1, std::atoi(v.c_str()));
    else if (a == "--draft-tokens") o.ks = parse_ints(v);
    else if (a == "--ngram") o.ngram = std::atoi(v.c_str());
    else if (a == "--tasks") o.tasks = parse_list(v);
    else if (a == "--repeats") o.repeats = std::max(1, std::atoi(v.c_str()));
    else if (a == "--json") o.json_path = v;
    else if (a == "--commit") o.commit = v;
    else if (a == "--medusa") o.medusa = v;
    else if (a == "--tree-k") o.tree_k = parse_ints(v);
    else if (a == "--tree-max") o.tree_max = std::atoi(v.c_str());
    else throw Error(ErrorCode::InvalidArgument, fmt::format("unknown option {} (see --help)", a));
  }
  const Model m = Model::load(o.model, {.device = Device::cpu(), .n_threads = o.threads});
  std::optional<MedusaHeads> heads;
  if (!o.medusa.empty()) heads.emplace(MedusaHeads::load(o.medusa, m));
  const TreeParams tree{.top_k = o.tree_k, .dynamic = o.dynamic, .max_tree_tokens = o.tree_max};
  const double read_gbs = measure_cpu_read_gbs(o.threads);
  const double floor_ms = double(m.weight_bytes()) / (read_gbs * 1e9) * 1e3;
  std::fprintf(stderr, "vireo-bench spec: %s, %d threads, %.1f MB of weights, read %.1f GB/s: floor %.2f ms/token\n",
               o.model.c_str(), o.threads, double(m.weight_bytes()) / 1e6, read_gbs, floor_ms);

  std::string commit = o.commit;
  if (commit.empty()) {
    const char* env = std::getenv("VIREO_COMMIT");
    commit = env ? env : first_line("git rev-parse HEAD 2>/dev/null");
  }
  char date[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  std::string j = "{\n";
  j += fmt::format("  \"benchmark\": \"vireo-bench spec\",\n  \"date\": {},\n  \"commit\": {},\n", jstr(date), jstr(commit));
  j += fmt::format(
      "  \"machine\": {{\"cpu\": {}, \"hardware_threads\": {}}},\n  \"model\": {},\n  \"threads\": {},\n"
      "  \"read_gbs\": {:.2f},\n  \"floor_ms_per_token\": {:.4f},\n  \"drafter\": \"prompt lookup, ngram {}\",\n"
      "  \"sampling\": \"greedy\",\n  \"tasks\": [\n",
      jstr(cpu_name()),
      std::thread::hardware_concurrency(), jstr(o.model), o.threads, read_gbs, floor_ms, o.ngram);

  for (std::size_t ti = 0; ti < o.tasks.size(); ++ti) {
    const std::string& task = o.tasks[ti];
    const std::vector<ChatMessage> msgs = {{"user", task_prompt(task)}};
    const std::vector<Token> prompt = m.tokenizer().encode_chat(msgs);
    Run best_plain, best_medusa;
    std::vector<Run> best(o.ks.size());
    for (int r = 0; r < o.repeats; ++r) {
      Run p = plain(m, prompt, o.tokens);
      if (r == 0 || p.seconds < best_plain.seconds) best_plain = p;
      if (heads) {
        Run md = medusa(*heads, tree, prompt, o.tokens);
        if (r == 0 || md.seconds < best_medusa.seconds) best_medusa = md;
      }
      for (std::size_t ki = 0; ki < o.ks.size(); ++ki) {
        Run s = lookup(m, prompt, o.tokens, o.ks[ki], o.ngram);
        if (r == 0 || s.seconds < best[ki].seconds) best[ki] = s;
      }
    }
    const double plain_ms = best_plain.seconds * 1e3 / double(best_plain.out.size());
    std::fprintf(stderr, "  %-5s prompt %4zu tokens  plain   %3zu tokens %7.2f ms/token %6.1f tok/s  %5.1f%% of floor\n",
                 task.c_str(), prompt.size(), best_plain.out.size(), plain_ms, 1e3 / plain_ms, 100.0 * floor_ms / plain_ms);
    j += fmt::format(
        "    {{\"task\": {}, \"prompt_tokens\": {}, \"plain\": {{\"tokens\": {}, \"ms_per_token\": {:.4f}, "
        "\"tok_s\": {:.2f}, \"fraction_of_floor\": {:.4f}}}, \"lookup\": [",
        jstr(task), prompt.size(), best_plain.out.size(), plain_ms, 1e3 / plain_ms, floor_ms / plain_ms);
    for (std::size_t ki = 0; ki < o.ks.size(); ++ki) {
      const Run& s = best[ki];
      const double ms = s.seconds * 1e3 / double(s.out.size());
      const bool same = s.out == best_plain.out;
      const double per_round = s.stats.rounds ? double(s.stats.emitted) / double(s.stats.rounds) : 0.0;
      std::fprintf(stderr,
                   "        k=%-2d                 lookup  %3zu tokens %7.2f ms/token %6.1f tok/s  %5.1f%% of floor  "
                   "%.2fx  acceptance %.2f  %.2f tokens/round%s\n",
                   o.ks[ki], s.out.size(), ms, 1e3 / ms, 100.0 * floor_ms / ms, plain_ms / ms, s.stats.acceptance(),
                   per_round, same ? "" : "  OUTPUT DIFFERS");
      j += fmt::format(
          "{}{{\"k\": {}, \"tokens\": {}, \"ms_per_token\": {:.4f}, \"tok_s\": {:.2f}, \"fraction_of_floor\": {:.4f}, "
          "\"speedup\": {:.3f}, \"acceptance\": {:.4f}, \"tokens_per_round\": {:.3f}, \"identical\": {}}}",
          ki ? ", " : "", o.ks[ki], s.out.size(), ms, 1e3 / ms, floor_ms / ms, plain_ms / ms, s.stats.acceptance(),
          per_round, same ? "true" : "false");
    }
    j += "]";
    if (heads) {
      const Run& s = best_medusa;
      const double ms = s.seconds * 1e3 / double(s.out.size());
      const bool same = s.out == best_plain.out;
      std::fprintf(stderr,
                   "        tree %2d tokens        medusa  %3zu tokens %7.2f ms/token %6.1f tok/s  %5.1f%% of floor  "
                   "%.2fx  %.2f tokens/forward%s\n",
                   o.tree_max, s.out.size(), ms, 1e3 / ms, 100.0 * floor_ms / ms, plain_ms / ms,
                   s.stats.mean_accepted(), same ? "" : "  OUTPUT DIFFERS");
      std::string depth;
      for (std::size_t d = 0; d < s.stats.accepted_at_depth.size(); ++d)
        depth += fmt::format("{}{}", d ? ", " : "", s.stats.accepted_at_depth[d]);
      j += fmt::format(
          ", \"medusa\": {{\"sidecar\": {}, \"tree_max\": {}, \"dynamic\": {}, \"tokens\": {}, \"ms_per_token\": {:.4f}, "
          "\"tok_s\": {:.2f}, \"fraction_of_floor\": {:.4f}, \"speedup\": {:.3f}, \"tokens_per_forward\": {:.3f}, "
          "\"rounds\": {}, \"accepted_at_depth\": [{}], \"identical\": {}}}",
          jstr(o.medusa), o.tree_max, o.dynamic ? "true" : "false", s.out.size(), ms, 1e3 / ms, floor_ms / ms,
          plain_ms / ms, s.stats.mean_accepted(), s.stats.rounds, depth, same ? "true" : "false");
    }
    j += ti + 1 < o.tasks.size() ? "},\n" : "}\n";
  }
  j += "  ]\n}\n";
  if (o.json_path.empty()) {
    std::fputs(j.c_str(), stdout);
  } else {
    std::ofstream f(o.json_path);
    f << j;
  }
  return 0;
}

}  // namespace

int run_spec(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vireo-bench spec: %s\n", e.what());
  }
  return 1;
}

}  // namespace vireo::bench
