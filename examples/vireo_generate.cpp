// vireo-generate: prompt -> streamed text with the default model (or any Llama-family GGUF).
// Shows the intended use of the API: load, make a cache, prefill the prompt in one batch,
// then decode one token per step, streaming whole UTF-8 characters as they complete.
// With --stop, generation ends at the first stop string; the text that could still become
// one is held back until the next tokens settle it, and the stop string itself is not printed
// (vireo::TextStream). Prints TTFT, prefill tok/s and decode tok/s at the end (to stderr). Every option value is
// checked whole (no trailing characters, no silent truncation or overflow, within its range):
// a bad one is refused with a message naming the option and the value.
#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "vireo/vireo.hpp"

namespace {

void usage() {
  std::fputs(
      "usage: vireo-generate [options] [prompt]\n"
      "  -m, --model PATH        GGUF model (default models/SmolLM2-135M-Instruct.Q4_1.gguf)\n"
      "  -n, --tokens N          tokens to generate (default 64)\n"
      "  -p, --prompt TEXT       prompt (default \"The capital of France is\")\n"
      "      --chat              wrap the prompt as a user message with the model's chat template\n"
      "      --temp T            temperature (default 0 = greedy)\n"
      "      --top-k K  --top-p P  --min-p P  --repeat-penalty R\n"
      "      --seed S            RNG seed (default 42)\n"
      "  -t, --threads N         CPU threads (default: all cores)\n"
      "      --device cpu|cuda|best  (default best)\n"
      "      --gpu-weights convert|native  CUDA: convert quantized weights to bf16 at load (default)\n"
      "                          or keep them quantized on the GPU (experimental)\n"
      "      --cpu-activations f32|q8  CPU: decode over 8-bit activations (q8: faster, not the\n"
      "                          fp32 reference arithmetic; default f32)\n"
      "      --ignore-eos        keep generating past end-of-generation tokens\n"
      "      --stop TEXT         end at this text, which is not printed (repeatable)\n"
      "      --lookup K          speculative decoding with prompt lookup, up to K (1..16) drafts\n"
      "                          per round; 0 = off (default)\n"
      "                          (same output; faster where the text repeats the prompt)\n"
      "      --spec lookup[:K]|medusa:FILE|draft:FILE\n"
      "                          speculative decoding: prompt lookup (K drafts, default 4), Medusa\n"
      "                          heads from a sidecar GGUF (greedy only; a token tree per round),\n"
      "                          or a draft model sharing the vocabulary (4 drafts per round)\n",
      stderr);
}

[[noreturn]] void bad_value(const std::string& opt, const std::string& v, const std::string& why) {
  throw vireo::Error(vireo::ErrorCode::InvalidArgument, fmt::format("{} '{}': {}", opt, v, why));
}

/// The whole of `v` as a decimal integer in [lo, hi].
template <class I>
I parse_int(const std::string& opt, const std::string& v, I lo, I hi) {
  I x{};
  const char* end = v.data() + v.size();
  const auto [ptr, ec] = std::from_chars(v.data(), end, x);
  if (ec == std::errc::result_out_of_range || (ec == std::errc() && ptr == end && (x < lo || x > hi)))
    bad_value(opt, v, fmt::format("out of range (expected an integer in {}..{})", lo, hi));
  if (ec != std::errc() || ptr != end || v.empty())
    bad_value(opt, v, fmt::format("not an integer (expected an integer in {}..{})", lo, hi));
  return x;
}

/// The whole of `v` as a finite number in [lo, hi] (or (lo, hi] with lo_open).
float parse_float(const std::string& opt, const std::string& v, float lo, float hi, bool lo_open = false) {
  float x = 0;
  const char* end = v.data() + v.size();
  const auto [ptr, ec] = std::from_chars(v.data(), end, x);
  const std::string range = fmt::format("{}{}, {}]", lo_open ? "(" : "[", lo, hi);
  if (ec != std::errc() || ptr != end || v.empty() || !std::isfinite(x))
    bad_value(opt, v, "not a finite number (expected a number in " + range + ")");
  if (x < lo || x > hi || (lo_open && x == lo)) bad_value(opt, v, "out of range (expected a number in " + range + ")");
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string prompt = "The capital of France is";
  std::string device = "best";
  int n_tokens = 64, threads = 0, lookup = 0;
  std::string spec_kind, spec_file;  // --spec
  std::vector<std::string> stops;    // --stop
  bool chat = false, ignore_eos = false, gpu_quantized = false, cpu_q8 = false;
  vireo::SamplerParams sp;
  sp.temperature = 0.0f;
  sp.seed = 42;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw vireo::Error(vireo::ErrorCode::InvalidArgument, "missing value after " + a);
        return argv[++i];
      };
      if (a == "-m" || a == "--model") model_path = next();
      else if (a == "-n" || a == "--tokens") n_tokens = parse_int(a, next(), 0, 1 << 24);
      else if (a == "-p" || a == "--prompt") prompt = next();
      else if (a == "--chat") chat = true;
      else if (a == "--temp") sp.temperature = parse_float(a, next(), 0.0f, 1e6f);
      else if (a == "--top-k") sp.top_k = parse_int(a, next(), 0, std::numeric_limits<int>::max());
      else if (a == "--top-p") sp.top_p = parse_float(a, next(), 0.0f, 1.0f, /*lo_open=*/true);
      else if (a == "--min-p") sp.min_p = parse_float(a, next(), 0.0f, 1.0f);
      else if (a == "--repeat-penalty") sp.repetition_penalty = parse_float(a, next(), 0.0f, 1e6f, /*lo_open=*/true);
      else if (a == "--seed") sp.seed = parse_int(a, next(), std::uint64_t(0), std::numeric_limits<std::uint64_t>::max());
      else if (a == "-t" || a == "--threads") threads = parse_int(a, next(), 0, 4096);
      else if (a == "--device") {
        device = next();
        if (device != "cpu" && device != "cuda" && device != "best") bad_value(a, device, "expected cpu, cuda or best");
      }
      else if (a == "--ignore-eos") ignore_eos = true;
      else if (a == "--stop") {
        stops.push_back(next());
        if (stops.back().empty()) bad_value(a, "", "a stop string cannot be empty");
      }
      else if (a == "--lookup") lookup = parse_int(a, next(), 0, 16);
      else if (a == "--spec") {
        const std::string v = next();
        const auto colon = v.find(':');
        spec_kind = v.substr(0, colon);
        const std::string arg = colon == std::string::npos ? "" : v.substr(colon + 1);
        if (spec_kind == "lookup") lookup = arg.empty() ? 4 : parse_int(a, arg, 1, 16);
        else if ((spec_kind == "medusa" || spec_kind == "draft") && !arg.empty()) spec_file = arg;
        else bad_value(a, v, "expected lookup[:K], medusa:FILE or draft:FILE");
      }
      else if (a == "--gpu-weights") {
        const std::string v = next();
        if (v != "native" && v != "convert")
          throw vireo::Error(vireo::ErrorCode::InvalidArgument, "--gpu-weights must be convert or native, got '" + v + "'");
        gpu_quantized = v == "native";
      }
      else if (a == "--cpu-activations") {
        const std::string v = next();
        if (v != "f32" && v != "q8")
          throw vireo::Error(vireo::ErrorCode::InvalidArgument, "--cpu-activations must be f32 or q8, got '" + v + "'");
        cpu_q8 = v == "q8";
      }
      else if (a == "-h" || a == "--help") { usage(); return 0; }
      else if (!a.empty() && a[0] == '-') {
        std::fprintf(stderr, "vireo-generate: unknown option '%s'\n", a.c_str());
        usage();
        return 2;
      }
      else prompt = a;
    }

    using clock = std::chrono::steady_clock;
    vireo::ModelOptions mo;
    mo.n_threads = threads;
    mo.gpu_quantized = gpu_quantized;
    mo.cpu_quantize_activations = cpu_q8;
    mo.device = device == "cpu" ? vireo::Device::cpu() : device == "cuda" ? vireo::Device::cuda() : vireo::Device::best();
    mo.fallback_to_cpu = device != "cuda";  // auto: a GPU too small for the model falls back
    auto model = vireo::Model::load(model_path, mo);
    const auto& tok = model.tokenizer();
    // --chat: the template's markers are special tokens, the user's prompt is plain text.
    const std::vector<vireo::ChatMessage> msgs{{"user", prompt}};
    std::vector<vireo::Token> ids = chat ? tok.encode_chat(msgs, true) : tok.encode(prompt);
    if (ids.empty()) throw vireo::Error(vireo::ErrorCode::InvalidArgument, "the prompt encodes to no tokens");
    if (const int ctx = model.config().context_length; ctx > 0 && std::int64_t(ids.size()) + n_tokens > ctx)
      throw vireo::Error(vireo::ErrorCode::InvalidArgument,
                         fmt::format("-n {}: the prompt's {} tokens + {} generated exceed the model's context of {} tokens",
                                     n_tokens, ids.size(), n_tokens, ctx));

    vireo::KVCacheOptions ko;
    // Room for the prompt, the tokens, and a speculative round's drafts (a Medusa tree: up to
    // 64 tokens) before they are cut back.
    ko.num_blocks = (std::int64_t(ids.size()) + n_tokens + 64) / ko.block_size + 2;
    vireo::KVCache cache(model, ko);
    vireo::Sampler sampler(sp);
    vireo::TextStream stream(tok, stops);
    vireo::SeqId seq = cache.add_sequence();
    std::vector<vireo::Token> history = ids;

    if (!chat) std::fputs(prompt.c_str(), stdout);
    std::fflush(stdout);
    vireo::Batch batch;
    batch.add(seq, ids, vireo::Last);
    vireo::Logits logits;
    auto t0 = clock::now();
    model.forward(batch, cache, logits);
    auto t_first = clock::now();
    int generated = 0;
    // Emit one token; false when generation ends with it (end of generation, or n_tokens).
    auto emit = [&](vireo::Token t) {
      if (!ignore_eos && tok.is_eog(t)) return false;
      history.push_back(t);
      const vireo::TextStream::Piece piece = stream.push(t);
      std::fwrite(piece.text.data(), 1, piece.text.size(), stdout);
      std::fflush(stdout);
      return ++generated < n_tokens && !piece.stopped;
    };
    if ((spec_kind == "medusa" || spec_kind == "draft") && n_tokens > 0) {
      // The first token from the prefill's logits, then speculative rounds.
      std::optional<vireo::MedusaHeads> heads;
      std::optional<vireo::Model> draft;
      std::optional<vireo::KVCache> draft_cache;
      vireo::SeqId dseq = -1;
      if (spec_kind == "medusa") heads.emplace(vireo::MedusaHeads::load(spec_file, model));
      else {
        draft.emplace(vireo::Model::load(spec_file, mo));
        draft_cache.emplace(*draft, ko);
        dseq = draft_cache->add_sequence();
      }
      // A tree costs its size in target compute on a CPU (where a step is compute-bound), a
      // little more than one token on a GPU: small trees on the CPU.
      const vireo::TreeParams tree = model.device().kind == vireo::DeviceKind::CPU
                                         ? vireo::TreeParams{.top_k = {2, 2, 1}, .max_tree_tokens = 8}
                                         : vireo::TreeParams{};
      vireo::SpeculativeDecoder spec = heads ? vireo::SpeculativeDecoder(*heads, tree)
                                             : vireo::SpeculativeDecoder(model, *draft, {.draft_tokens = 4});
      bool more = emit(sampler.sample(logits.row(0), history).token);
      while (more) {
        const std::vector<vireo::Token> out = heads ? spec.step(history, cache, seq, sampler)
                                                    : spec.step(history, cache, seq, *draft_cache, dseq, sampler);
        for (vireo::Token t : out)
          if (!(more = emit(t))) break;
      }
      const auto& st = spec.stats();
      std::fprintf(stderr, "\n[%s] %lld rounds, %.2f tokens per target forward, %lld drafted, %lld accepted",
                   spec_kind.c_str(), static_cast<long long>(st.rounds), st.mean_accepted(),
                   static_cast<long long>(st.drafted), static_cast<long long>(st.accepted));
      for (std::size_t d = 0; d < st.accepted_at_depth.size(); ++d)
        std::fprintf(stderr, "%s depth %zu: %lld", d ? "," : " |", d + 1, static_cast<long long>(st.accepted_at_depth[d]));
    } else if (lookup > 0 && n_tokens > 0) {
      // The first token from the prefill's logits, then speculative rounds (each returns
      // 1..lookup + 1 tokens; the cache holds the history but its last token).
      vireo::SpeculativeDecoder spec(model, {.draft_tokens = lookup});
      bool more = emit(sampler.sample(logits.row(0), history).token);
      while (more) {
        const std::vector<vireo::Token> out = spec.step(history, cache, seq, sampler);
        for (vireo::Token t : out)
          if (!(more = emit(t))) break;
      }
      std::fprintf(stderr, "\n[lookup] %lld rounds, %lld drafts, acceptance %.2f",
                   static_cast<long long>(spec.stats().rounds), static_cast<long long>(spec.stats().drafted),
                   spec.stats().acceptance());
    } else {
      while (generated < n_tokens) {
        const auto s = sampler.sample(logits.row(0), history);
        if (!emit(s.token)) break;
        batch.clear();
        batch.add(seq, s.token, true);
        model.forward(batch, cache, logits);
      }
    }
    std::string tail = stream.flush();
    std::fwrite(tail.data(), 1, tail.size(), stdout);
    std::fputs("\n", stdout);
    auto t_end = clock::now();
    double ttft = std::chrono::duration<double>(t_first - t0).count();
    double decode_s = std::chrono::duration<double>(t_end - t_first).count();
    int decode_steps = generated > 0 ? generated - 1 : 0;  // forwards after the prefill
    std::fprintf(stderr,
                 "\n[%s] prompt %zu tokens, generated %d | TTFT %.1f ms | prefill %.1f tok/s | decode %.1f tok/s\n",
                 model.device().name().c_str(), ids.size(), generated, ttft * 1e3, double(ids.size()) / ttft,
                 decode_steps > 0 ? decode_steps / decode_s : 0.0);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vireo-generate: %s\n", e.what());
    return 1;
  }
}
