// vireo-perplexity: perplexity of a text file under a model, and its KL divergence from a
// reference run (vireo::perplexity, include/vireo/quality.hpp).
//
//   vireo-perplexity -m MODEL.gguf -f TEXT [--ctx 512] [--stride N] [--device cpu|cuda]
//                    [--threads N] [--chunks N] [--save-logits FILE [--top-k 64]] [--kl-base FILE]
//                    [--json FILE]
//
// The text is tokenized as llama.cpp's llama-perplexity does (the vocabulary's BOS prepended
// when it asks for one, special tokens not parsed), and with such a vocabulary the first
// token of every window becomes BOS. --save-logits writes the reference's top-k log-probs;
// --kl-base reads them back and reports KL(reference || this model) and top-1 agreement.
#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <unistd.h>

#include "vireo/error.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/model.hpp"
#include "vireo/quality.hpp"
#include "vireo/tokenizer.hpp"

namespace {

std::atomic<bool> g_cancel{false};
extern "C" void on_sigint(int) { g_cancel.store(true); }

[[noreturn]] void usage(const std::string& why) {
  if (!why.empty()) std::cerr << "vireo-perplexity: " << why << "\n";
  std::cerr << "usage: vireo-perplexity -m MODEL.gguf -f TEXT [--ctx 512] [--stride N] [--device cpu|cuda]\n"
               "                        [--threads N] [--chunks N] [--save-logits FILE] [--top-k 64] [--kl-base FILE]\n"
               "                        [--json FILE]\n";
  std::exit(2);
}

int parse_int(const std::string& flag, const std::string& v, int lo, int hi) {
  try {
    std::size_t used = 0;
    const long x = std::stol(v, &used);
    if (used == v.size() && x >= lo && x <= hi) return int(x);
  } catch (...) {
  }
  usage(fmt::format("{} {}: expected an integer in {}..{}", flag, v, lo, hi));
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, text_path, save_path, base_path, json_path, device = "cpu";
  vireo::PerplexityOptions po;
  int threads = 0, chunks = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "-m" || a == "--model") model_path = next();
    else if (a == "-f" || a == "--file") text_path = next();
    else if (a == "--ctx" || a == "-c") po.ctx = parse_int(a, next(), 4, 1 << 20);
    else if (a == "--stride") po.stride = parse_int(a, next(), 1, 1 << 20);
    else if (a == "--chunks") chunks = parse_int(a, next(), 1, 1 << 24);
    else if (a == "--top-k") po.top_k = parse_int(a, next(), 1, 1 << 20);
    else if (a == "--threads" || a == "-t") threads = parse_int(a, next(), 0, 1024);
    else if (a == "--save-logits") save_path = next();
    else if (a == "--kl-base") base_path = next();
    else if (a == "--json") json_path = next();
    else if (a == "--device") {
      device = next();
      if (device != "cpu" && device != "cuda") usage("--device " + device + ": expected cpu or cuda");
    } else if (a == "-h" || a == "--help") usage("");
    else usage("unknown option " + a);
  }
  if (model_path.empty() || text_path.empty()) usage("-m and -f are required");
  std::signal(SIGINT, on_sigint);
  try {
    std::ifstream in(text_path, std::ios::binary);
    if (!in) throw vireo::Error(vireo::ErrorCode::Io, "cannot read " + text_path);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();

    vireo::ModelOptions mo;
    mo.device = device == "cuda" ? vireo::Device::cuda(0) : vireo::Device::cpu();
    mo.dtype = vireo::DType::BF16;
    mo.n_threads = threads;
    mo.cancel = &g_cancel;
    const auto t0 = std::chrono::steady_clock::now();
    vireo::Model model = vireo::Model::load(model_path, mo);
    const vireo::Tokenizer& tok = model.tokenizer();
    std::vector<vireo::Token> tokens = tok.encode(text, {.add_special = true, .parse_special = false});
    // --chunks N: only the first N windows (llama.cpp's --chunks).
    const std::size_t stride = std::size_t(po.stride ? po.stride : po.ctx);
    if (chunks > 0 && tokens.size() > std::size_t(chunks - 1) * stride + std::size_t(po.ctx))
      tokens.resize(std::size_t(chunks - 1) * stride + std::size_t(po.ctx));
    // llama.cpp puts BOS at the start of every window when the vocabulary prepends it.
    if (!tokens.empty() && tok.bos() >= 0 && tokens.front() == tok.bos()) po.first_token = tok.bos();

    std::optional<vireo::LogProbRecord> base;
    if (!base_path.empty()) base = vireo::load_logprobs(base_path);
    const bool tty = isatty(STDERR_FILENO);
    po.cancel = &g_cancel;
    po.progress = [&](float f) {
      if (tty) fmt::print(stderr, "\rvireo-perplexity: {:5.1f}%", 100.0 * f);
    };
    fmt::print(stderr, "vireo-perplexity: {} tokens, {} windows of {} (stride {})\n", tokens.size(),
               vireo::perplexity_windows(tokens.size(), po), po.ctx, po.stride ? po.stride : po.ctx);
    vireo::LogProbRecord rec;
    const vireo::PerplexityResult r =
        vireo::perplexity(model, tokens, po, save_path.empty() ? nullptr : &rec, base ? &*base : nullptr);
    if (tty) fmt::print(stderr, "\n");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!save_path.empty()) vireo::save_logprobs(save_path, rec);

    fmt::print("model       {}\ntext        {} ({} tokens)\nwindows     {} x {} tokens, stride {}, {} scored\n",
               model_path, text_path, tokens.size(), r.n_windows, po.ctx, po.stride ? po.stride : po.ctx, r.n_scored);
    fmt::print("perplexity  {:.4f} (nll {:.5f} +- {:.5f})\n", r.ppl, r.nll, r.nll_stderr);
    if (r.has_reference)
      fmt::print("reference   perplexity {:.4f}\nKL          {:.6f} +- {:.6f} (max {:.4f}) nats\ntop-1 agree {:.4f}\n",
                 r.reference_ppl, r.kl, r.kl_stderr, r.kl_max, r.top1_agreement);
    fmt::print("time        {:.1f} s\n", secs);
    if (!json_path.empty()) {
      std::ofstream js(json_path);
      js << fmt::format(
          "{{\"model\": \"{}\", \"text\": \"{}\", \"tokens\": {}, \"ctx\": {}, \"stride\": {}, \"windows\": {}, "
          "\"scored\": {}, \"ppl\": {:.6f}, \"nll\": {:.7f}, \"nll_stderr\": {:.7f}",
          model_path, text_path, tokens.size(), po.ctx, po.stride ? po.stride : po.ctx, r.n_windows, r.n_scored,
          r.ppl, r.nll, r.nll_stderr);
      if (r.has_reference)
        js << fmt::format(", \"reference_ppl\": {:.6f}, \"kl\": {:.7f}, \"kl_stderr\": {:.7f}, \"top1_agreement\": {:.6f}",
                          r.reference_ppl, r.kl, r.kl_stderr, r.top1_agreement);
      js << fmt::format(", \"seconds\": {:.2f}}}\n", secs);
    }
  } catch (const vireo::Error& e) {
    std::cerr << "\n" << e.what() << "\n";
    return e.code() == vireo::ErrorCode::Cancelled ? 130 : 1;
  }
  return 0;
}
