// vireo-quantize: requantize a GGUF model (any type vireo reads, dequantized to fp32 first)
// to Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q3_K, Q4_K, Q5_K or Q6_K by round-to-nearest,
// GPTQ or AWQ (tools/quantize/model_quantizer.hpp has the per-tensor rules and fallbacks).
//
//   vireo-quantize IN.gguf OUT.gguf TYPE [--method rtn|gptq|awq] [--calib TEXT]
//                  [--calib-tokens N] [--calib-ctx 512] [--embd-type TYPE] [--act-order]
//                  [--damp 0.01] [--threads N]
//
// A progress bar goes to a terminal; Ctrl-C stops cleanly (exit 130) and leaves no file.
#include <fmt/format.h>

#include <csignal>
#include <fstream>
#include <iostream>
#include <sstream>
#include <unistd.h>

#include "quantize/model_quantizer.hpp"
#include "vireo/error.hpp"
#include "vireo/gguf.hpp"
#include "vireo/model.hpp"
#include "vireo/tokenizer.hpp"

namespace {

std::atomic<bool> g_cancel{false};
extern "C" void on_sigint(int) { g_cancel.store(true); }

[[noreturn]] void usage(const std::string& why) {
  if (!why.empty()) std::cerr << "vireo-quantize: " << why << "\n";
  std::cerr << "usage: vireo-quantize IN.gguf OUT.gguf TYPE [--method rtn|gptq|awq] [--calib TEXT]\n"
               "                      [--calib-tokens N] [--calib-ctx 512] [--embd-type TYPE] [--act-order]\n"
               "                      [--damp 0.01] [--threads N]\n"
               "TYPE: Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 IQ4_NL Q3_K Q4_K Q5_K Q6_K F16 BF16 F32\n";
  std::exit(2);
}

vireo::gguf::TensorType parse_type(const std::string& s) {
  using T = vireo::gguf::TensorType;
  for (T t : {T::Q8_0, T::Q4_0, T::Q4_1, T::Q5_0, T::Q5_1, T::IQ4_NL, T::Q3_K, T::Q4_K, T::Q5_K, T::Q6_K, T::F16,
              T::BF16, T::F32})
    if (s == vireo::gguf::to_string(t)) return t;
  usage("unknown type " + s);
}

int parse_int(const std::string& flag, const std::string& v, long lo, long hi) {
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
  std::vector<std::string> pos;
  vireo::quant::ModelQuantizeOptions o;
  std::string calib_path;
  int calib_tokens = 8192;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--method") {
      const std::string m = next();
      if (m == "rtn") o.method = vireo::quant::Method::RTN;
      else if (m == "gptq") o.method = vireo::quant::Method::GPTQ;
      else if (m == "awq") o.method = vireo::quant::Method::AWQ;
      else usage("--method " + m + ": expected rtn, gptq or awq");
    } else if (a == "--calib") calib_path = next();
    else if (a == "--calib-tokens") calib_tokens = parse_int(a, next(), 1, 1 << 24);
    else if (a == "--calib-ctx") o.calib_ctx = parse_int(a, next(), 1, 1 << 16);
    else if (a == "--embd-type") o.embd_type = parse_type(next());
    else if (a == "--act-order") o.gptq.act_order = true;
    else if (a == "--damp") {
      const std::string v = next();
      char* end = nullptr;
      o.gptq.damp = std::strtod(v.c_str(), &end);
      if (end != v.c_str() + v.size() || !(o.gptq.damp >= 0.0 && o.gptq.damp <= 10.0)) usage("--damp " + v + ": expected 0..10");
    } else if (a == "--threads" || a == "-t") o.n_threads = parse_int(a, next(), 0, 1024);
    else if (a == "-h" || a == "--help") usage("");
    else if (!a.empty() && a[0] == '-') usage("unknown option " + a);
    else pos.push_back(a);
  }
  if (pos.size() != 3) usage("expected IN.gguf OUT.gguf TYPE");
  o.type = parse_type(pos[2]);
  if (o.method != vireo::quant::Method::RTN && calib_path.empty()) usage("--method gptq / awq need --calib TEXT");
  std::signal(SIGINT, on_sigint);
  const bool tty = isatty(STDERR_FILENO);
  o.cancel = &g_cancel;
  o.progress = [&](const std::string& stage, float f) {
    if (!tty) return;
    const int w = 30, filled = int(f * float(w));
    fmt::print(stderr, "\r{:10} [{}{}] {:5.1f}%", stage, std::string(std::size_t(filled), '#'),
               std::string(std::size_t(w - filled), ' '), 100.0 * f);
    if (f >= 1.0f) fmt::print(stderr, "\n");
  };
  o.log = [&](const std::string& m) {
    if (tty) fmt::print(stderr, "\r");
    fmt::print(stderr, "vireo-quantize: {}\n", m);
  };
  try {
    if (!calib_path.empty() && o.method != vireo::quant::Method::RTN) {
      std::ifstream in(calib_path, std::ios::binary);
      if (!in) throw vireo::Error(vireo::ErrorCode::Io, "cannot read " + calib_path);
      std::stringstream ss;
      ss << in.rdbuf();
      // The tokenizer only: a model loaded just to encode would map the weights twice.
      const vireo::gguf::File f = vireo::gguf::File::open(pos[0]);
      const vireo::Tokenizer tok = vireo::Tokenizer::from_gguf(f);
      o.calibration = tok.encode(ss.str(), {.add_special = false, .parse_special = false});
      const std::size_t want = std::size_t(calib_tokens) / std::size_t(o.calib_ctx) * std::size_t(o.calib_ctx);
      if (o.calibration.size() < std::size_t(o.calib_ctx) || want == 0)
        throw vireo::Error(vireo::ErrorCode::InvalidArgument,
                           fmt::format("calibration text {}: {} tokens, fewer than one window of {}", calib_path,
                                       o.calibration.size(), o.calib_ctx));
      if (o.calibration.size() > want) o.calibration.resize(want);
      fmt::print(stderr, "vireo-quantize: {} calibration tokens ({} windows of {})\n", o.calibration.size(),
                 o.calibration.size() / std::size_t(o.calib_ctx), o.calib_ctx);
    }
    vireo::quant::quantize_model(pos[0], pos[1], o);
    fmt::print(stderr, "vireo-quantize: wrote {}\n", pos[1]);
  } catch (const vireo::Error& e) {
    std::cerr << "\n" << e.what() << "\n";
    return e.code() == vireo::ErrorCode::Cancelled ? 130 : 1;
  }
  return 0;
}
