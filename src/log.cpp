// The library's log sink: one user-settable callback, stderr by default. The sink is held by a
// shared_ptr that log() copies under a short lock and calls with no lock held, so a callback
// may replace the sink or change the level from inside itself (it finishes as the sink it
// was), and threads log concurrently. A message logged by a sink while it runs on the same
// thread is dropped instead of recursing.
#include "vireo/log.hpp"

#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <utility>

namespace vireo {
namespace {
void to_stderr(LogLevel lvl, std::string_view msg) {
  static const char* names[] = {"debug", "info", "warn", "error"};
  std::fprintf(stderr, "vireo %s: %.*s\n", names[int(lvl)], int(msg.size()), msg.data());
}

std::mutex g_mu;
std::shared_ptr<const LogCallback> g_cb = std::make_shared<const LogCallback>(to_stderr);
std::atomic<int> g_level{int(LogLevel::Info)};
thread_local bool t_in_sink = false;
}  // namespace

void set_log_callback(LogCallback cb) {
  auto next = cb ? std::make_shared<const LogCallback>(std::move(cb)) : nullptr;
  std::shared_ptr<const LogCallback> old;
  {
    std::lock_guard lk(g_mu);
    old = std::exchange(g_cb, std::move(next));
  }
  // `old` is released here, outside the lock (a capturing callback's destructor may log).
}

void set_log_level(LogLevel level) { g_level = int(level); }

void log(LogLevel level, std::string_view message) {
  if (int(level) < g_level.load() || t_in_sink) return;
  std::shared_ptr<const LogCallback> cb;
  {
    std::lock_guard lk(g_mu);
    cb = g_cb;
  }
  if (!cb) return;
  t_in_sink = true;
  try {
    (*cb)(level, message);
  } catch (...) {
    t_in_sink = false;
    throw;
  }
  t_in_sink = false;
}

}  // namespace vireo
