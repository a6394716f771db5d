// Routes of vireo-server (see routes.hpp). A generation request is parsed and checked
// (openai_api), tokenized here on the handler thread (the Model and its Tokenizer are
// immutable and shared), and submitted to the engine; the handler then either waits for the
// final event (a JSON response) or streams the events as server-sent events from a chunked
// content provider. When the client goes away mid-stream, a write fails, the provider
// returns false, and the releaser cancels the request. Every error is an OpenAI-style JSON
// body with a status: 400 bad request, 404 unknown route or model, 413 body too large, 429
// queue full, 500 engine failure, 503 shutting down.
#include "routes.hpp"

#include <fmt/format.h>
#include <httplib.h>

#include <chrono>
#include <memory>
#include <random>

#include "engine.hpp"
#include "openai_api.hpp"

namespace vireo_server {

using nlohmann::json;

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(dump(j), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
  if (e.status == 429) res.set_header("Retry-After", "1");
  send_json(res, e.status, error_body(e));
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string new_id(const char* prefix) {
  static std::atomic<std::uint64_t> counter{0};
  static const std::uint64_t salt = std::random_device{}();
  return fmt::format("{}-{:08x}{:08x}", prefix, std::uint32_t(salt), std::uint32_t(++counter));
}

std::uint64_t random_seed() {
  static std::mutex m;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard<std::mutex> lk(m);
  return rng();
}

// Prompt tokens, sampling and limits of a checked request.
vireo::Request to_request(const GenRequest& g, const vireo::Model& model, const ServerConfig& cfg) {
  const vireo::Tokenizer& tok = model.tokenizer();
  vireo::Request r;
  try {
    if (g.chat) {
      // Only the template's own markers are special: "<|im_end|>" typed by a user stays text.
      r.prompt = tok.encode_chat(g.messages, true);
    } else if (!g.prompt_tokens.empty()) {
      r.prompt = g.prompt_tokens;
    } else {
      // A completion prompt is user text: "<|im_end|>" written in it stays text.
      r.prompt = tok.encode(g.prompt, {.add_special = true, .parse_special = false});
    }
  } catch (const vireo::Error& e) {
    throw ApiError{400, e.what(), "invalid_request_error", g.chat ? "messages" : "prompt", ""};
  }
  if (r.prompt.empty()) throw ApiError{400, "the prompt encodes to no tokens", "invalid_request_error", "prompt", ""};
  const int vocab = model.config().vocab_size;
  for (vireo::Token t : r.prompt)
    if (t < 0 || t >= vocab)
      throw ApiError{400, fmt::format("prompt token {} is outside the vocabulary of {}", t, vocab),
                     "invalid_request_error", "prompt", ""};
  for (const auto& [t, bias] : g.logit_bias)
    if (t >= vocab)
      throw ApiError{400, fmt::format("logit_bias token {} is outside the vocabulary of {}", t, vocab),
                     "invalid_request_error", "logit_bias", ""};
  if (g.max_tokens) {
    r.max_new_tokens = *g.max_tokens;
  } else {
    const int left = model.config().context_length > 0 ? model.config().context_length - int(r.prompt.size()) : 1 << 30;
    r.max_new_tokens = std::max(1, std::min(g.chat ? cfg.default_max_tokens_chat : cfg.default_max_tokens_completion, left));
  }
  r.sampling.temperature = g.temperature;
  r.sampling.top_p = g.top_p;
  r.sampling.presence_penalty = g.presence_penalty;
  r.sampling.frequency_penalty = g.frequency_penalty;
  r.sampling.seed = g.seed ? *g.seed : random_seed();
  r.sampling.logit_bias = g.logit_bias;
  r.stop_strings = g.stop;
  return r;
}

Submission submit_or_throw(Engine& engine, vireo::Request r) {
  Submission s = engine.submit(std::move(r));
  switch (s.status) {
    case Submission::Status::Accepted: return s;
    case Submission::Status::Overloaded: throw ApiError{429, s.message, "server_overloaded", "", "queue_full"};
    case Submission::Status::Invalid: throw ApiError{400, s.message, "invalid_request_error", "", ""};
    case Submission::Status::Unavailable: break;
  }
  throw ApiError{503, s.message, "server_unavailable", "", ""};
}

// The state a streaming response carries between provider calls.
struct Stream {
  std::shared_ptr<void> flight;  // counts this request in HttpCounters::in_flight while alive
  GenRequest req;
  std::string id, model;
  std::int64_t created = 0;
  Submission sub;
  std::size_t sent = 0;  // text bytes streamed
  bool first = true;
  bool done = false;
  std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();
};

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

// SSE text for the events that arrived (empty: nothing to send yet).
std::string render(Stream& st, std::vector<Event>& evs) {
  std::string out;
  auto piece = [&](const std::string& text, std::optional<vireo::FinishReason> reason) {
    out += sse(st.req.chat ? chat_chunk(st.id, st.created, st.model, text, st.first, reason)
                           : completion_chunk(st.id, st.created, st.model, text, reason));
    st.first = false;
  };
  if (st.first && st.req.chat) piece("", std::nullopt);  // the role comes first, as OpenAI's does
  for (Event& e : evs) {
    if (!e.final) {
      st.sent += e.text.size();
      piece(e.text, std::nullopt);
      continue;
    }
    if (!e.error.empty()) {
      out += sse(error_body({500, e.error, "server_error", "", ""}));
    } else {
      // A request ended early keeps its held-back tail: send what the pieces did not.
      if (e.text.size() > st.sent) piece(e.text.substr(st.sent), std::nullopt);
      piece("", e.reason);
      if (st.req.include_usage)
        out += sse(usage_chunk(st.id, st.created, st.model, st.req.chat, {e.prompt_tokens, e.completion_tokens}));
    }
    out += "data: [DONE]\n\n";
    st.done = true;
    break;
  }
  return out;
}

void generate(const httplib::Request& http, httplib::Response& res, bool chat, Engine& engine,
              const vireo::Model& model, const ServerConfig& cfg, HttpCounters& counters) {
  auto st = std::make_shared<Stream>();
  counters.in_flight.fetch_add(1);
  st->flight = std::shared_ptr<void>(nullptr, [&counters](void*) { counters.in_flight.fetch_sub(1); });
  GenRequest g = parse_request(http.body, chat);
  if (!g.model.empty() && g.model != cfg.model_name)
    throw ApiError{404, fmt::format("The model '{}' does not exist (this server has '{}')", g.model, cfg.model_name),
                   "invalid_request_error", "model", "model_not_found"};
  vireo::Request r = to_request(g, model, cfg);
  const std::size_t n_prompt = r.prompt.size();
  st->id = new_id(chat ? "chatcmpl" : "cmpl");
  st->model = cfg.model_name;
  st->created = unix_now();
  st->sub = submit_or_throw(engine, std::move(r));
  st->req = std::move(g);

  if (!st->req.stream) {
    std::vector<Event> evs;
    while (evs.empty() || !evs.back().final) st->sub.events->pop_all(evs, std::chrono::milliseconds(1000));
    const Event& fin = evs.back();
    if (!fin.error.empty()) throw ApiError{500, fin.error, "server_error", "", ""};
    const Usage usage{n_prompt, fin.completion_tokens};
    send_json(res, 200,
              chat ? chat_response(st->id, st->created, st->model, fin.text, fin.reason, usage)
                   : completion_response(st->id, st->created, st->model, fin.text, fin.reason, usage));
    return;
  }

  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [st](std::size_t, httplib::DataSink& sink) {
        std::vector<Event> evs;
        st->sub.events->pop_all(evs, std::chrono::milliseconds(200));
        std::string out = render(*st, evs);
        const auto now = std::chrono::steady_clock::now();
        // A comment line now and then while nothing comes (a long queue or prefill): a
        // client that went away is noticed by the failing write.
        if (out.empty() && now - st->last_write > std::chrono::seconds(1)) out = ": keep-alive\n\n";
        if (out.empty()) return true;
        if (!sink.is_writable() || !sink.write(out.data(), out.size())) return false;
        st->last_write = now;
        if (st->done) sink.done();
        return true;
      },
      [st, &engine, &counters](bool) {
        if (st->done) return;
        counters.disconnects.fetch_add(1);
        engine.cancel(st->sub.id);
      });
}

std::string http_metrics(HttpCounters& c) {
  std::string t =
      "# HELP vireo_http_responses_total HTTP responses by status code.\n# TYPE vireo_http_responses_total counter\n";
  {
    std::lock_guard<std::mutex> lk(c.m);
    for (const auto& [code, n] : c.responses) t += fmt::format("vireo_http_responses_total{{code=\"{}\"}} {}\n", code, n);
  }
  t += fmt::format(
      "# HELP vireo_client_disconnects_total Streams whose client went away before the end.\n"
      "# TYPE vireo_client_disconnects_total counter\nvireo_client_disconnects_total {}\n",
      c.disconnects.load());
  return t;
}

}  // namespace

void install_routes(httplib::Server& svr, Engine& engine, const vireo::Model& model, const ServerConfig& cfg,
                    HttpCounters& counters) {
  auto guarded = [&](bool chat) {
    return [&, chat](const httplib::Request& req, httplib::Response& res) {
      try {
        generate(req, res, chat, engine, model, cfg, counters);
      } catch (const ApiError& e) {
        send_error(res, e);
      }
    };
  };
  svr.Post("/v1/completions", guarded(false));
  svr.Post("/v1/chat/completions", guarded(true));
  svr.Get("/v1/models", [&](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200,
              {{"object", "list"},
               {"data", json::array({{{"id", cfg.model_name},
                                      {"object", "model"},
                                      {"created", cfg.created},
                                      {"owned_by", "vireo"}}})}});
  });
  svr.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    if (engine.healthy()) send_json(res, 200, {{"status", "ok"}});
    else send_json(res, 503, {{"status", "unavailable"}});
  });
  svr.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(engine.prometheus() + http_metrics(counters), "text/plain; version=0.0.4");
  });
  // Errors httplib answers itself (no route, a body over the limit) get OpenAI-style bodies.
  svr.set_error_handler([&](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    ApiError e{res.status, "", "invalid_request_error", "", ""};
    if (res.status == 404) e.message = fmt::format("no route for {} {}", req.method, req.path);
    else if (res.status == 413)
      e.message = fmt::format("the request body is larger than the limit of {} bytes", cfg.max_body_bytes);
    else e.message = fmt::format("HTTP {}", res.status);
    send_error(res, e);
  });
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, {500, what, "server_error", "", ""});
  });
  svr.set_logger([&](const httplib::Request&, const httplib::Response& res) {
    std::lock_guard<std::mutex> lk(counters.m);
    ++counters.responses[res.status];
  });
}

}  // namespace vireo_server
