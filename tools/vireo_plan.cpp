// vireo-plan: how much memory a model, a context length and a number of concurrent
// sequences take on the CPU or a GPU, before loading anything (vireo::plan), printed as a
// table; with --rps, the GPUs a request rate needs as well. See --help.
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "vireo/error.hpp"
#include "vireo/plan.hpp"

namespace {

const char* kHelp = R"(usage: vireo-plan [model.gguf | --shape L,D,H,KV,HD,FF,V[,CTX] | --lecture] [options]

Memory a model takes with a context and concurrency, from the GGUF header (nothing is loaded).
  --device cpu|cuda        where it runs (default cpu)
  --dtype bf16|f16|f32     GPU weights and K/V (default bf16)
  --gpu-quantized          GPU: keep Q8_0 / Q4_0 / Q4_1 matrices quantized
  --kv model|int8          K/V storage (default model: f32 on the CPU, dtype on a GPU)
  --context N              tokens per sequence (default: the model's context length)
  --concurrency N          sequences held at once (default 1)
  --block-size N           KV block size in tokens (default 16)
  --batch-tokens N         CPU: tokens of the largest step (workspace; default 512)
  --device-mem GiB         memory of one device, a GPU's or the host's (default 80)
  --budget GiB             memory for the largest context x concurrency (default: --device-mem)
  --reserve GiB            runtime overhead per device (default 1 on a GPU, 0 on the CPU)
  --shape L,D,H,KV,HD,FF,V[,CTX]  plan a Llama-shaped model instead of a file: layers, d_model,
                           heads, KV heads, head dim, FFN size, vocabulary, context
  --weight-type T          its matrices' storage: f32 f16 bf16 q8_0 q4_0 q4_1 (default f16)
  --rps R                  requests per second the service receives
  --cache-hit F            fraction of them served from a cache (default 0)
  --rps-per-gpu X          requests per second one GPU sustains within the latency limit
  --lecture                the lecture's example (below)

KV bytes per token = 2 * layers * kv_heads * head_dim * bytes (int8: head_dim + 4 per row).
"devices needed": the fewest devices of --device-mem that hold weights + KV split evenly
(tensor / pipeline parallelism), each with its own workspace and reserve. With --rps, the GPUs
the request rate needs: ceil(rps * (1 - cache_hit) / rps_per_gpu); a deployment needs the
larger of the two counts.

The lecture's example (--lecture): its KV formula on a GPT-2 XL shape (48 layers, d_model
1600, 25 heads, head dim 64), fp16, batch 16 x 1000 tokens: 2*16*1000*48*25*64*2 =
4,915,200,000 bytes (4.58 GiB; the lecture writes "4.5GB"). Weights + KV + workspace fit one
80 GiB GPU (devices needed: 1; the weights are planned as a Llama-shaped network with three
FFN matrices, an upper bound for GPT-2's two). Its capacity example: 2K rps, 20% served from a
cache (1.6K rps on average, 1.8K at peak), one GPU sustaining 1 to 6 rps under the 3 s limit:
at peak, ceil(1800 / 6) = 300 GPUs at best (1800 at 1 rps per GPU), against a budget of 200.
Memory is not what limits this deployment; throughput is.
)";

double num(const char* flag, const char* v) {
  char* end = nullptr;
  const double x = std::strtod(v, &end);
  if (!v[0] || *end || !std::isfinite(x) || x < 0)
    throw vireo::Error(vireo::ErrorCode::InvalidArgument, fmt::format("{} needs a non-negative number, got '{}'", flag, v));
  return x;
}

std::int64_t integer(const char* flag, const char* v) {
  const double x = num(flag, v);
  if (x != std::floor(x) || x > 1e15)
    throw vireo::Error(vireo::ErrorCode::InvalidArgument, fmt::format("{} needs an integer, got '{}'", flag, v));
  return std::int64_t(x);
}

vireo::gguf::TensorType weight_type(const std::string& s) {
  using T = vireo::gguf::TensorType;
  if (s == "f32") return T::F32;
  if (s == "f16") return T::F16;
  if (s == "bf16") return T::BF16;
  if (s == "q8_0") return T::Q8_0;
  if (s == "q4_0") return T::Q4_0;
  if (s == "q4_1") return T::Q4_1;
  throw vireo::Error(vireo::ErrorCode::InvalidArgument, "--weight-type: unknown type '" + s + "'");
}

vireo::ModelConfig shape(const std::string& s) {
  std::int64_t v[8] = {0, 0, 0, 0, 0, 0, 0, 4096};
  int n = 0;
  std::size_t at = 0;
  while (n < 8 && at <= s.size()) {
    const std::size_t comma = s.find(',', at);
    const std::string part = s.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    v[n++] = integer("--shape", part.c_str());
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  if (n < 7)
    throw vireo::Error(vireo::ErrorCode::InvalidArgument, "--shape needs L,D,H,KV,HD,FF,V[,CTX], got '" + s + "'");
  vireo::ModelConfig c;
  c.name = "shape " + s;
  c.n_layers = int(v[0]);
  c.d_model = int(v[1]);
  c.n_heads = int(v[2]);
  c.n_kv_heads = int(v[3]);
  c.head_dim = int(v[4]);
  c.d_ff = int(v[5]);
  c.vocab_size = int(v[6]);
  c.context_length = int(v[7]);
  return c;
}

std::string gib(std::uint64_t b) { return fmt::format("{:.2f} GiB", double(b) / double(1ull << 30)); }

void print(const vireo::MemoryPlan& p) {
  const auto& c = p.config;
  const auto& o = p.options;
  const bool gpu = o.device == vireo::DeviceKind::CUDA;
  fmt::print("model      {} ({}): {} layers, d_model {}, {} heads, {} KV heads, head dim {}, d_ff {}, vocab {}\n",
             c.name.empty() ? "?" : c.name, c.arch, c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.d_ff,
             c.vocab_size);
  fmt::print("device     {}{}, K/V {}, {} x {} tokens, blocks of {}\n", gpu ? "cuda " : "cpu",
             gpu ? vireo::to_string(o.dtype) : "", o.kv_precision == vireo::KVPrecision::Int8 ? "int8" : "model type",
             o.concurrency, o.context, o.block_size);
  fmt::print("\n{:<34} {:>16} {:>12}\n", "", "bytes", "");
  auto row = [](const std::string& what, std::uint64_t b) { fmt::print("{:<34} {:>16} {:>12}\n", what, b, gib(b)); };
  row("weights", p.weight_bytes);
  if (p.file_bytes) row("  (model file, mapped on the host)", p.file_bytes);
  fmt::print("{:<34} {:>16}\n", "KV per token", p.kv_bytes_per_token);
  row(fmt::format("KV cache ({} x {} tokens)", o.concurrency, o.context), p.kv_bytes);
  row("workspace", p.workspace_bytes);
  row("reserve", p.reserve_bytes);
  row("total", p.total_bytes);
  fmt::print("\none device of {}: {}\n", gib(o.device_memory_bytes), p.fits ? "fits" : "does not fit");
  if (p.devices_needed)
    fmt::print("devices needed (weights + KV split evenly): {}\n", p.devices_needed);
  else
    fmt::print("devices needed: none suffices (workspace + reserve exceed one device)\n");
  fmt::print("budget {}: {} KV tokens; longest context at {} sequences: {}; most sequences of {} tokens: {}\n",
             gib(o.memory_budget_bytes), p.budget_kv_tokens, o.concurrency, p.budget_max_context, o.context,
             p.budget_max_concurrency);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::optional<std::string> path, shape_arg;
    std::string wtype = "f16";
    vireo::PlanOptions o;
    double rps = -1, hit = 0, per_gpu = -1;
    bool lecture = false;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> const char* {
        if (i + 1 >= argc) throw vireo::Error(vireo::ErrorCode::InvalidArgument, a + " needs a value");
        return argv[++i];
      };
      if (a == "-h" || a == "--help") {
        std::fputs(kHelp, stdout);
        return 0;
      }
      if (a == "--device") {
        const std::string d = next();
        if (d != "cpu" && d != "cuda") throw vireo::Error(vireo::ErrorCode::InvalidArgument, "--device: cpu or cuda");
        o.device = d == "cpu" ? vireo::DeviceKind::CPU : vireo::DeviceKind::CUDA;
      } else if (a == "--dtype") {
        const std::string d = next();
        if (d == "bf16") o.dtype = vireo::DType::BF16;
        else if (d == "f16") o.dtype = vireo::DType::F16;
        else if (d == "f32") o.dtype = vireo::DType::F32;
        else throw vireo::Error(vireo::ErrorCode::InvalidArgument, "--dtype: bf16, f16 or f32");
      } else if (a == "--gpu-quantized") {
        o.gpu_quantized = true;
      } else if (a == "--kv") {
        const std::string k = next();
        if (k != "model" && k != "int8") throw vireo::Error(vireo::ErrorCode::InvalidArgument, "--kv: model or int8");
        o.kv_precision = k == "int8" ? vireo::KVPrecision::Int8 : vireo::KVPrecision::Model;
      } else if (a == "--context") {
        o.context = integer("--context", next());
      } else if (a == "--concurrency") {
        o.concurrency = integer("--concurrency", next());
      } else if (a == "--block-size") {
        o.block_size = int(integer("--block-size", next()));
      } else if (a == "--batch-tokens") {
        o.max_batch_tokens = int(integer("--batch-tokens", next()));
      } else if (a == "--device-mem") {
        o.device_memory_bytes = std::uint64_t(num("--device-mem", next()) * double(1ull << 30));
      } else if (a == "--budget") {
        o.memory_budget_bytes = std::uint64_t(num("--budget", next()) * double(1ull << 30));
      } else if (a == "--reserve") {
        o.reserve_bytes = std::int64_t(num("--reserve", next()) * double(1ull << 30));
      } else if (a == "--shape") {
        shape_arg = next();
      } else if (a == "--weight-type") {
        wtype = next();
      } else if (a == "--rps") {
        rps = num("--rps", next());
      } else if (a == "--cache-hit") {
        hit = num("--cache-hit", next());
        if (hit > 1) throw vireo::Error(vireo::ErrorCode::InvalidArgument, "--cache-hit is a fraction in [0, 1]");
      } else if (a == "--rps-per-gpu") {
        per_gpu = num("--rps-per-gpu", next());
      } else if (a == "--lecture") {
        lecture = true;
      } else if (!a.empty() && a[0] != '-' && !path) {
        path = a;
      } else {
        throw vireo::Error(vireo::ErrorCode::InvalidArgument, "unknown argument '" + a + "' (see --help)");
      }
    }
    if (lecture) {
      // GPT-2 XL's shape, fp16, batch 16 x 1000 tokens on 80 GiB GPUs; 1.8K rps at peak
      // (2K rps less 20% cache hits on average, 1.6K), 6 rps per GPU at best.
      shape_arg = "48,1600,25,25,64,6400,50257,1024";
      wtype = "f16";
      o.device = vireo::DeviceKind::CUDA;
      o.dtype = vireo::DType::F16;
      o.context = 1000;
      o.concurrency = 16;
      o.block_size = 8;  // 1000 tokens in whole blocks, as the formula counts them
      if (rps < 0) rps = 1800;
      if (per_gpu < 0) per_gpu = 6;
    }
    if (!path && !shape_arg) {
      std::fputs(kHelp, stderr);
      return 2;
    }
    const vireo::MemoryPlan p =
        path ? vireo::plan(*path, o) : vireo::plan(shape(*shape_arg), weight_type(wtype), o);
    print(p);
    if (rps >= 0) {
      if (per_gpu <= 0) throw vireo::Error(vireo::ErrorCode::InvalidArgument, "--rps needs --rps-per-gpu > 0");
      const double served = rps * (1 - hit);
      const auto gpus = std::int64_t(std::ceil(served / per_gpu - 1e-9));
      fmt::print("throughput: {:.0f} rps x (1 - {:.2f}) = {:.0f} rps to serve / {:.2f} rps per GPU = {} GPUs\n", rps, hit,
                 served, per_gpu, gpus);
      fmt::print("needed: {} GPUs (the larger of the memory and the throughput counts)\n",
                 std::max<std::int64_t>(gpus, p.devices_needed));
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vireo-plan: %s\n", e.what());
    return 1;
  }
}
