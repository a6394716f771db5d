// The HTTP side of vireo-server: the routes (/v1/completions, /v1/chat/completions,
// /v1/models, /health, /metrics) on a cpp-httplib server, turning requests into engine
// submissions and the engine's events into JSON or server-sent events.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace httplib { class Server; }
namespace vireo { class Model; }

namespace vireo_server {
class Engine;

struct ServerConfig {
  std::string model_name;        ///< the id /v1/models lists and requests must name (or omit)
  std::int64_t created = 0;      ///< Unix time the model was loaded
  int default_max_tokens_completion = 16;  ///< OpenAI's default for /v1/completions
  int default_max_tokens_chat = 256;       ///< capped by the context left after the prompt
  std::size_t max_body_bytes = 1 << 20;
};

/// Counted by the routes, exported by /metrics.
struct HttpCounters {
  std::atomic<std::int64_t> disconnects{0};  ///< streams whose client went away before the end
  /// Generation requests not yet answered (a stream counts until its last byte is written):
  /// shutdown waits for them before it stops the HTTP server, which would cut streams short.
  std::atomic<int> in_flight{0};
  std::mutex m;
  std::map<int, std::int64_t> responses;     ///< HTTP status -> count
};

/// Install the routes and the error handlers; `engine`, `model`, `cfg` and `counters` must
/// outlive the server.
void install_routes(httplib::Server& svr, Engine& engine, const vireo::Model& model, const ServerConfig& cfg,
                    HttpCounters& counters);

}  // namespace vireo_server
