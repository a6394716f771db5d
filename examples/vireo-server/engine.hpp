// The engine of vireo-server: one thread owns the KV cache and the Scheduler and runs the
// caller-owned loop (vireo-serve's loop, driven by HTTP requests). HTTP handler threads never
// touch the scheduler: they post work to the engine's inbox, which the engine thread drains
// between steps, and read their request's events from a per-request Channel. So a submit is
// answered (accepted, or refused as overloaded / invalid) within one step, and a cancel (a
// client that went away) frees the request's blocks at the next step boundary.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "vireo/vireo.hpp"

namespace vireo_server {

/// What the engine tells a handler about its request, in order: text pieces, then one final
/// event (the request's end, or the engine's failure).
struct Event {
  std::string text;        ///< a piece of output text (not final) / the whole text (final)
  bool final = false;
  vireo::FinishReason reason = vireo::FinishReason::Length;
  std::size_t prompt_tokens = 0, completion_tokens = 0;  ///< final only
  std::string error;       ///< final only: non-empty when the engine failed
};

/// A single-producer (engine), single-consumer (handler) queue of Events.
class Channel {
 public:
  void push(Event e);
  /// Waits up to `timeout` for events; moves every queued one into `out` (appending).
  void pop_all(std::vector<Event>& out, std::chrono::milliseconds timeout);

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<Event> q_;
};

struct EngineOptions {
  int max_running = 8;
  int max_batch_tokens = 256;
  std::size_t max_waiting = 64;
  std::int64_t kv_tokens = 8192;
  int block_size = 16;
  double request_timeout_s = 0;  ///< > 0: every request's deadline is arrival + this
};

/// The outcome of Engine::submit.
struct Submission {
  enum class Status { Accepted, Overloaded, Invalid, Unavailable } status = Status::Unavailable;
  std::string message;              ///< why, when not accepted
  std::uint64_t id = 0;             ///< the request's id, when accepted
  std::shared_ptr<Channel> events;  ///< the request's events, when accepted
};

/// Counters the engine keeps besides vireo::Metrics (read through prometheus()).
struct EngineCounters {
  std::int64_t accepted = 0, rejected_overloaded = 0, rejected_invalid = 0;
  std::int64_t finished_length = 0, finished_stop = 0, cancelled = 0, deadline = 0, cancel_requests = 0;
};

class Engine {
 public:
  /// `model` must outlive the engine. Starts the engine thread.
  Engine(const vireo::Model& model, EngineOptions opts);
  ~Engine();  ///< stop()s and joins
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// Queue a request (its id is assigned here; prompt, sampling and limits are the caller's).
  /// Blocks until the engine has taken or refused it (at most one step).
  Submission submit(vireo::Request req);
  /// Ask the engine to cancel request `id` (no-op when it has already ended).
  void cancel(std::uint64_t id);
  /// Prometheus text: vireo::Metrics' export plus the scheduler's and the engine's counters.
  std::string prometheus();
  /// False once the engine thread has failed (a forward threw) or stopped.
  bool healthy() const;
  /// Refuse new requests, cancel the live ones (their channels get their final events),
  /// and end the engine thread. Idempotent.
  void stop();

 private:
  void loop();
  void dispatch(vireo::StepResult& r);
  void fail_all(const std::string& why);
  /// Run `fn` on the engine thread between steps; false when the engine is not running.
  bool post(std::function<void()> fn);

  const vireo::Model& model_;
  EngineOptions opts_;
  vireo::KVCache cache_;
  vireo::Metrics metrics_;
  vireo::Scheduler sched_;
  std::map<std::uint64_t, std::shared_ptr<Channel>> live_;  // engine thread only
  std::uint64_t next_id_ = 1;                                 // engine thread only
  EngineCounters counters_;                                   // engine thread only

  mutable std::mutex m_;  // guards inbox_, running_, failure_
  std::condition_variable cv_;
  std::vector<std::function<void()>> inbox_;
  bool running_ = true;
  std::string failure_;
  std::thread thread_;
};

}  // namespace vireo_server
