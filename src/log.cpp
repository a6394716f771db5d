// The library's log sink: one user-settable callback behind a mutex, stderr by default.
#include "vireo/log.hpp"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace vireo {
namespace {
std::mutex g_mu;
LogCallback g_cb = [](LogLevel lvl, std::string_view msg) {
  static const char* names[] = {"debug", "info", "warn", "error"};
  std::fprintf(stderr, "vireo %s: %.*s\n", names[int(lvl)], int(msg.size()), msg.data());
};
std::atomic<int> g_level{int(LogLevel::Info)};
}  // namespace

void set_log_callback(LogCallback cb) {
  std::lock_guard lk(g_mu);
  g_cb = std::move(cb);
}

void set_log_level(LogLevel level) { g_level = int(level); }

void log(LogLevel level, std::string_view message) {
  if (int(level) < g_level.load()) return;
  std::lock_guard lk(g_mu);
  if (g_cb) g_cb(level, message);
}

}  // namespace vireo
