// vireo-server: an OpenAI-compatible HTTP server over vireo::Scheduler, the reference example
// of the caller-owned loop behind a network front. POST /v1/completions and
// /v1/chat/completions (JSON or server-sent events with "stream": true), GET /v1/models,
// /health and /metrics (Prometheus text). One engine thread owns the KV cache and the
// scheduler (engine.cpp); cpp-httplib's worker threads parse, tokenize and wait on their
// request's events (routes.cpp); the OpenAI JSON mapping is openai_api.cpp.
//
// usage: vireo-server [options]   (--help lists them)
// SIGINT / SIGTERM: new requests get 503, live ones end cancelled, the server exits 0.
#include <fmt/format.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <string>
#include <thread>

#include "engine.hpp"
#include "routes.hpp"
#include "vireo/vireo.hpp"

namespace {

const char* kUsage =
    "usage: vireo-server [options]\n"
    "  -m, --model PATH          GGUF model (default models/SmolLM2-135M-Instruct.Q4_1.gguf)\n"
    "      --model-name NAME     the model id clients send (default: the file name without .gguf)\n"
    "      --host ADDR           listen address (default 127.0.0.1)\n"
    "      --port N              TCP port; 0 picks a free one (default 8080)\n"
    "  -t, --threads N           CPU threads for the model (default: all cores)\n"
    "      --device cpu|cuda|best  (default best)\n"
    "      --max-running N       sequences decoded together (default 8)\n"
    "      --max-batch-tokens N  tokens per step (default 256)\n"
    "      --max-waiting N       queued requests before 429 (default 64)\n"
    "      --kv-tokens N         KV cache size in tokens (default 8192)\n"
    "      --request-timeout S   end a request S seconds after it arrived (default 0 = never)\n"
    "      --max-tokens-default N  chat max_tokens when the request has none (default 256)\n"
    "      --max-body-bytes N    larger request bodies get 413 (default 1048576)\n"
    "      --http-threads N      HTTP worker threads = concurrent connections (default 32)\n"
    "      --log                 one line per request on stderr\n";

long long parse_int(const std::string& opt, const std::string& v, long long lo, long long hi) {
  std::size_t used = 0;
  long long x = 0;
  try {
    x = std::stoll(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || v.empty() || x < lo || x > hi)
    throw vireo::Error(vireo::ErrorCode::InvalidArgument,
                       fmt::format("{} '{}': expected an integer in {}..{}", opt, v, lo, hi));
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path = "models/SmolLM2-135M-Instruct.Q4_1.gguf", model_name, host = "127.0.0.1", device = "best";
  int port = 8080, threads = 0, http_threads = 32;
  bool log = false;
  vireo_server::EngineOptions eo;
  vireo_server::ServerConfig cfg;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw vireo::Error(vireo::ErrorCode::InvalidArgument, "missing value after " + a);
        return argv[++i];
      };
      if (a == "-m" || a == "--model") model_path = next();
      else if (a == "--model-name") model_name = next();
      else if (a == "--host") host = next();
      else if (a == "--port") port = int(parse_int(a, next(), 0, 65535));
      else if (a == "-t" || a == "--threads") threads = int(parse_int(a, next(), 0, 4096));
      else if (a == "--device") {
        device = next();
        if (device != "cpu" && device != "cuda" && device != "best")
          throw vireo::Error(vireo::ErrorCode::InvalidArgument, "--device must be cpu, cuda or best, got '" + device + "'");
      }
      else if (a == "--max-running") eo.max_running = int(parse_int(a, next(), 1, 4096));
      else if (a == "--max-batch-tokens") eo.max_batch_tokens = int(parse_int(a, next(), 1, 1 << 20));
      else if (a == "--max-waiting") eo.max_waiting = std::size_t(parse_int(a, next(), 0, 1 << 24));
      else if (a == "--kv-tokens") eo.kv_tokens = parse_int(a, next(), 16, 1ll << 32);
      else if (a == "--request-timeout") eo.request_timeout_s = double(parse_int(a, next(), 0, 86400));
      else if (a == "--max-tokens-default") cfg.default_max_tokens_chat = int(parse_int(a, next(), 1, 1 << 24));
      else if (a == "--max-body-bytes") cfg.max_body_bytes = std::size_t(parse_int(a, next(), 64, 1ll << 32));
      else if (a == "--http-threads") http_threads = int(parse_int(a, next(), 1, 4096));
      else if (a == "--log") log = true;
      else if (a == "-h" || a == "--help") {
        std::fputs(kUsage, stdout);
        return 0;
      } else {
        std::fprintf(stderr, "vireo-server: unknown option '%s'\n%s", a.c_str(), kUsage);
        return 2;
      }
    }
    if (eo.max_running > eo.max_batch_tokens) eo.max_running = eo.max_batch_tokens;

    // SIGINT / SIGTERM go to one thread that stops the server; every other thread has them
    // blocked (the mask is inherited, so set it before any thread starts).
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is an error return, not a signal

    vireo::ModelOptions mo;
    mo.n_threads = threads;
    mo.device = device == "cpu" ? vireo::Device::cpu() : device == "cuda" ? vireo::Device::cuda() : vireo::Device::best();
    const vireo::Model model = vireo::Model::load(model_path, mo);
    if (!model.has_tokenizer())
      throw vireo::Error(vireo::ErrorCode::InvalidArgument, model_path + " has no tokenizer");
    cfg.model_name = model_name.empty() ? std::filesystem::path(model_path).stem().string() : model_name;
    cfg.created = std::int64_t(std::time(nullptr));

    vireo_server::Engine engine(model, eo);
    vireo_server::HttpCounters counters;
    httplib::Server svr;
    svr.new_task_queue = [http_threads] { return new httplib::ThreadPool(std::size_t(http_threads)); };
    svr.set_payload_max_length(cfg.max_body_bytes);
    vireo_server::install_routes(svr, engine, model, cfg, counters);
    if (log) {
      // Replaces the counting logger: count and print.
      svr.set_logger([&](const httplib::Request& req, const httplib::Response& res) {
        {
          std::lock_guard<std::mutex> lk(counters.m);
          ++counters.responses[res.status];
        }
        std::fprintf(stderr, "%s %s -> %d\n", req.method.c_str(), req.path.c_str(), res.status);
      });
    }
    const int bound = port == 0 ? svr.bind_to_any_port(host) : (svr.bind_to_port(host, port) ? port : -1);
    if (bound < 0) throw vireo::Error(vireo::ErrorCode::Io, fmt::format("cannot listen on {}:{}", host, port));

    // The stopper waits for SIGINT / SIGTERM; main wakes it with SIGTERM when the server ends
    // on its own (a failed listen), so it must not have gone already: `woken` says whether
    // a signal has reached it.
    std::atomic<bool> woken{false};
    std::thread stopper([&] {
      int sig = 0;
      sigwait(&stop_signals, &sig);
      const bool from_outside = !woken.exchange(true);
      if (from_outside)
        std::fprintf(stderr, "vireo-server: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
      engine.stop();  // live requests end now (cancelled), so their handlers answer
      // Stopping the HTTP server cuts streams still being written: let them end first.
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (counters.in_flight.load() > 0 && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      svr.stop();
    });
    std::printf("vireo-server: model %s (%s), listening on http://%s:%d\n", cfg.model_name.c_str(),
                model.device().name().c_str(), host.c_str(), bound);
    std::fflush(stdout);
    const bool ok = svr.listen_after_bind();
    engine.stop();
    if (!woken.exchange(true)) pthread_kill(stopper.native_handle(), SIGTERM);
    stopper.join();
    std::fprintf(stderr, "vireo-server: stopped\n");
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vireo-server: %s\n", e.what());
    return 1;
  }
}
