// Engine: the engine thread's loop (drain the inbox, step the scheduler, hand each request's
// events to its channel) and the handler-side calls that post work into the inbox.
#include "engine.hpp"

#include <fmt/format.h>

namespace vireo_server {

void Channel::push(Event e) {
  {
    std::lock_guard<std::mutex> lk(m_);
    q_.push_back(std::move(e));
  }
  cv_.notify_one();
}

void Channel::pop_all(std::vector<Event>& out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(m_);
  cv_.wait_for(lk, timeout, [&] { return !q_.empty(); });
  for (auto& e : q_) out.push_back(std::move(e));
  q_.clear();
}

namespace {

vireo::KVCacheOptions cache_options(const EngineOptions& o) {
  vireo::KVCacheOptions c;
  c.block_size = o.block_size;
  c.num_blocks = (o.kv_tokens + o.block_size - 1) / o.block_size;
  c.prefix_caching = true;
  return c;
}

vireo::SchedulerOptions scheduler_options(const EngineOptions& o, vireo::Metrics* m) {
  vireo::SchedulerOptions s;
  s.mode = vireo::BatchingMode::Continuous;
  s.preemption = vireo::PreemptionMode::Swap;
  s.max_batch_tokens = o.max_batch_tokens;
  s.max_running = o.max_running;
  s.max_waiting = o.max_waiting;
  s.prefix_caching = true;
  s.metrics = m;
  return s;
}

}  // namespace

Engine::Engine(const vireo::Model& model, EngineOptions opts)
    : model_(model),
      opts_(opts),
      cache_(model, cache_options(opts)),
      sched_(model, cache_, scheduler_options(opts, &metrics_)) {
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  stop();
  if (thread_.joinable()) thread_.join();
}

bool Engine::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lk(m_);
    if (!running_) return false;
    inbox_.push_back(std::move(fn));
  }
  cv_.notify_one();
  return true;
}

bool Engine::healthy() const {
  std::lock_guard<std::mutex> lk(m_);
  return running_ && failure_.empty();
}

Submission Engine::submit(vireo::Request req) {
  auto done = std::make_shared<std::promise<Submission>>();
  std::future<Submission> result = done->get_future();
  const auto arrival = vireo::Metrics::Clock::now();
  auto job = [this, done, arrival, req = std::move(req)]() mutable {
    Submission s;
    req.id = next_id_++;
    req.stream_text = true;
    if (opts_.request_timeout_s > 0)
      req.deadline = arrival + std::chrono::duration_cast<vireo::Metrics::Clock::duration>(
                                   std::chrono::duration<double>(opts_.request_timeout_s));
    try {
      const std::uint64_t id = req.id;
      sched_.submit(std::move(req), arrival);
      s.status = Submission::Status::Accepted;
      s.id = id;
      s.events = std::make_shared<Channel>();
      live_[id] = s.events;
      ++counters_.accepted;
    } catch (const vireo::Error& e) {
      const bool busy = e.code() == vireo::ErrorCode::Overloaded;
      s.status = busy ? Submission::Status::Overloaded : Submission::Status::Invalid;
      ++(busy ? counters_.rejected_overloaded : counters_.rejected_invalid);
      s.message = e.what();
    }
    done->set_value(std::move(s));
  };
  if (!post(std::move(job))) return {Submission::Status::Unavailable, "the server is shutting down", 0, nullptr};
  // The engine either runs the job or drops it when it stops (the promise is then broken).
  try {
    return result.get();
  } catch (const std::future_error&) {
    return {Submission::Status::Unavailable, "the server is shutting down", 0, nullptr};
  }
}

void Engine::cancel(std::uint64_t id) {
  post([this, id] {
    ++counters_.cancel_requests;
    sched_.cancel(id);  // false when it already ended: its final event is on its way
  });
}

std::string Engine::prometheus() {
  auto done = std::make_shared<std::promise<std::string>>();
  std::future<std::string> text = done->get_future();
  const bool posted = post([this, done] {
    const vireo::SchedulerStats& st = sched_.stats();
    const vireo::KVCacheStats kv = cache_.stats();
    std::string t = metrics_.to_prometheus("vireo");
    auto counter = [&](const char* name, const char* help, std::int64_t v) {
      t += fmt::format("# HELP vireo_{0} {1}\n# TYPE vireo_{0} counter\nvireo_{0} {2}\n", name, help, v);
    };
    auto gauge = [&](const char* name, const char* help, double v) {
      t += fmt::format("# HELP vireo_{0} {1}\n# TYPE vireo_{0} gauge\nvireo_{0} {2}\n", name, help, v);
    };
    counter("scheduler_steps_total", "Scheduler steps (one forward each).", st.steps);
    counter("scheduler_preemptions_total", "Requests preempted (swap or recompute).",
            st.preemptions_swap + st.preemptions_recompute);
    counter("requests_accepted_total", "Requests queued by the scheduler.", counters_.accepted);
    counter("requests_rejected_overloaded_total", "Requests refused because the queue was full (HTTP 429).",
            counters_.rejected_overloaded);
    counter("requests_rejected_invalid_total", "Requests the scheduler refused as invalid (HTTP 400).",
            counters_.rejected_invalid);
    counter("requests_finished_length_total", "Requests that reached max_tokens.", counters_.finished_length);
    counter("requests_finished_stop_total", "Requests ended by an end-of-generation token or a stop string.",
            counters_.finished_stop);
    counter("requests_cancelled_total", "Requests cancelled (client disconnect or shutdown).", counters_.cancelled);
    counter("requests_deadline_total", "Requests ended by the server's request timeout.", counters_.deadline);
    counter("cancel_requests_total", "Cancellations asked for by handlers (disconnects).", counters_.cancel_requests);
    gauge("requests_waiting", "Requests waiting for admission.", double(sched_.num_waiting()));
    gauge("requests_swapped", "Requests preempted to host memory.", double(sched_.num_swapped()));
    gauge("kv_blocks_used", "KV blocks referenced by sequences.", double(kv.blocks_used));
    gauge("kv_blocks_total", "KV blocks in the pool.", double(cache_.num_blocks()));
    done->set_value(std::move(t));
  });
  if (posted) {
    try {
      return text.get();
    } catch (const std::future_error&) {
    }
  }
  return "# HELP vireo_up Whether the engine is running.\n# TYPE vireo_up gauge\nvireo_up 0\n";
}

void Engine::dispatch(vireo::StepResult& r) {
  for (auto& ev : r.tokens) {
    if (ev.text.empty()) continue;
    auto it = live_.find(ev.id);
    if (it != live_.end()) it->second->push({.text = std::move(ev.text)});
  }
  for (auto& f : r.finished) {
    switch (f.reason) {
      case vireo::FinishReason::Length: ++counters_.finished_length; break;
      case vireo::FinishReason::Stop: ++counters_.finished_stop; break;
      case vireo::FinishReason::Cancelled: ++counters_.cancelled; break;
      case vireo::FinishReason::Deadline: ++counters_.deadline; break;
    }
    auto it = live_.find(f.id);
    if (it == live_.end()) continue;
    it->second->push({.text = std::move(f.text),
                      .final = true,
                      .reason = f.reason,
                      .prompt_tokens = f.prompt.size(),
                      .completion_tokens = f.output.size()});
    live_.erase(it);
  }
}

void Engine::fail_all(const std::string& why) {
  for (auto& [id, ch] : live_) ch->push({.final = true, .reason = vireo::FinishReason::Cancelled, .error = why});
  live_.clear();
}

void Engine::loop() {
  std::vector<std::function<void()>> jobs;
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(m_);
      cv_.wait(lk, [&] { return !inbox_.empty() || !sched_.idle() || !running_; });
      jobs.swap(inbox_);
      if (!running_) break;
    }
    for (auto& job : jobs) job();
    jobs.clear();
    if (sched_.idle()) continue;
    try {
      vireo::StepResult r = sched_.step();
      dispatch(r);
    } catch (const std::exception& e) {
      // The scheduler's state is unspecified after a failed step: answer everyone, stop.
      fail_all(fmt::format("the engine failed: {}", e.what()));
      std::lock_guard<std::mutex> lk(m_);
      failure_ = e.what();
      running_ = false;
      inbox_.clear();  // their promises break: submitters see "unavailable"
      return;
    }
  }
  // stop(): the jobs already taken (none are run), then every live request ends cancelled.
  jobs.clear();
  for (auto& [id, ch] : live_) sched_.cancel(id);
  try {
    while (!sched_.idle()) {
      vireo::StepResult r = sched_.step();
      dispatch(r);
    }
  } catch (const std::exception& e) {
    fail_all(e.what());
  }
  fail_all("the server is shutting down");
}

void Engine::stop() {
  {
    std::lock_guard<std::mutex> lk(m_);
    running_ = false;
  }
  cv_.notify_one();
}

}  // namespace vireo_server
