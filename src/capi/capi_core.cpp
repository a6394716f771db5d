// C API basics: the thread-local last error, status names, the version, argument checks
// shared by the other capi files, and logging. The log trampoline is installed in the C++
// sink; the C callback and its user data sit behind one mutex that is not held during the
// call, and calls are serialized by another, so a callback can call vireo_log_set /
// vireo_log_set_level on itself without deadlocking.
#include <cstdio>
#include <mutex>
#include <new>

#include "capi/capi_internal.hpp"
#include "platform/path.hpp"

namespace vireo::capi {
namespace {
thread_local std::string t_last_error;
}

vireo_status fail(vireo_status status, std::string_view fn, std::string_view message) noexcept {
  try {
    t_last_error.assign(fn);
    t_last_error += ": ";
    t_last_error += message;
  } catch (...) {
    t_last_error.clear();  // no memory for the message; the status still says what happened
  }
  return status;
}

vireo_status to_status(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::InvalidArgument: return VIREO_STATUS_INVALID_ARGUMENT;
    case ErrorCode::InvalidModel: return VIREO_STATUS_INVALID_MODEL;
    case ErrorCode::Unsupported: return VIREO_STATUS_UNSUPPORTED;
    case ErrorCode::CacheFull: return VIREO_STATUS_CACHE_FULL;
    case ErrorCode::OutOfMemory: return VIREO_STATUS_OUT_OF_MEMORY;
    case ErrorCode::Io: return VIREO_STATUS_IO;
    case ErrorCode::Cuda: return VIREO_STATUS_CUDA;
    case ErrorCode::Cancelled: return VIREO_STATUS_CANCELLED;
    case ErrorCode::Internal: return VIREO_STATUS_INTERNAL;
    case ErrorCode::Overloaded: return VIREO_STATUS_OVERLOADED;
  }
  return VIREO_STATUS_INTERNAL;
}

void invalid(std::string message) { throw CError{VIREO_STATUS_INVALID_ARGUMENT, std::move(message)}; }

const Model& model_of(const vireo_model* m) {
  need(m, "model");
  if (!m->model) invalid("model handle holds no model");
  return *m->model;
}

std::filesystem::path utf8_path(const char* path, const char* what) {
  need(path, what);
  const std::string_view s(path);
  check_utf8(s, what);
  return vireo::platform::path_from_utf8(s);
}

void check_utf8(std::string_view s, const char* what) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned c = p[i];
    std::size_t len = 0;
    unsigned cp = 0, min = 0;
    if (c < 0x80) { ++i; continue; }
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; min = 0x10000; }
    bool ok = len != 0 && i + len <= n;
    for (std::size_t k = 1; ok && k < len; ++k) {
      ok = (p[i + k] & 0xC0) == 0x80;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    ok = ok && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (!ok) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "%s is not valid UTF-8 (byte 0x%02X at offset %zu)", what, c, i);
      invalid(buf);
    }
    i += len;
  }
}

void check_tokens(const vireo_token* tokens, std::size_t n, int vocab, const char* what) {
  if (n && !tokens) invalid(std::string(what) + " is NULL but its count is " + std::to_string(n));
  for (std::size_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      invalid(std::string(what) + "[" + std::to_string(i) + "] = " + std::to_string(tokens[i]) +
              " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
}

void write_text(const std::string& text, char* out, std::size_t capacity, std::size_t* out_len) {
  need(out_len, "out_len");
  if (capacity < text.size() + 1) {
    *out_len = text.size();
    throw CError{VIREO_STATUS_BUFFER_TOO_SMALL, "the text needs " + std::to_string(text.size() + 1) +
                                                    " bytes (NUL included) but the buffer holds " +
                                                    std::to_string(capacity)};
  }
  need(out, "out_text");
  text.copy(out, text.size());
  out[text.size()] = '\0';
  *out_len = text.size();
}

SamplerParams to_cpp(const vireo_sampler_params& p) {
  SamplerParams s;
  s.temperature = p.temperature;
  s.top_k = p.top_k;
  s.top_p = p.top_p;
  s.min_p = p.min_p;
  s.repetition_penalty = p.repetition_penalty;
  s.presence_penalty = p.presence_penalty;
  s.frequency_penalty = p.frequency_penalty;
  s.penalty_last_n = p.penalty_last_n;
  s.seed = p.seed;
  return s;
}

namespace {

std::mutex g_log_mu;  // guards the two values below, never held while the callback runs
vireo_log_fn g_log_fn = nullptr;
void* g_log_user = nullptr;
std::mutex g_call_mu;  // one message at a time into a C sink (vireo_log_fn's contract)

void trampoline(LogLevel level, std::string_view message) {
  vireo_log_fn fn;
  void* user;
  {
    std::lock_guard lk(g_log_mu);
    fn = g_log_fn;
    user = g_log_user;
  }
  if (!fn) {
    static const char* names[] = {"debug", "info", "warn", "error"};
    std::fprintf(stderr, "vireo %s: %.*s\n", names[int(level)], int(message.size()), message.data());
    return;
  }
  try {
    const std::string text(message);  // the callback gets a NUL-terminated copy
    // vireo_log_set / vireo_log_set_level from inside fn take other locks (g_log_mu, and
    // vireo::set_log_callback's, which log() does not hold while a sink runs).
    std::lock_guard call(g_call_mu);
    fn(static_cast<vireo_log_level>(level), text.c_str(), user);
  } catch (const std::bad_alloc&) {
    // No memory for the copy: the message is dropped rather than thrown into the caller.
  }
}

}  // namespace
}  // namespace vireo::capi

using namespace vireo::capi;

extern "C" {

const char* vireo_last_error(void) { return t_last_error.c_str(); }

const char* vireo_status_string(vireo_status status) {
  switch (enum_value(status)) {
    case VIREO_STATUS_OK: return "ok";
    case VIREO_STATUS_INVALID_ARGUMENT: return "invalid argument";
    case VIREO_STATUS_INVALID_MODEL: return "invalid model";
    case VIREO_STATUS_UNSUPPORTED: return "unsupported";
    case VIREO_STATUS_CACHE_FULL: return "cache full";
    case VIREO_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VIREO_STATUS_IO: return "i/o error";
    case VIREO_STATUS_CUDA: return "cuda error";
    case VIREO_STATUS_CANCELLED: return "cancelled";
    case VIREO_STATUS_INTERNAL: return "internal error";
    case VIREO_STATUS_BUFFER_TOO_SMALL: return "buffer too small";
    case VIREO_STATUS_OVERLOADED: return "overloaded";
  }
  return "unknown status";
}

#define VIREO_STR2(x) #x
#define VIREO_STR(x) VIREO_STR2(x)
const char* vireo_version_string(void) {
  return VIREO_STR(VIREO_VERSION_MAJOR) "." VIREO_STR(VIREO_VERSION_MINOR) "." VIREO_STR(VIREO_VERSION_PATCH);
}

void vireo_log_set(vireo_log_fn fn, void* user_data) {
  {
    std::lock_guard lk(g_log_mu);
    g_log_fn = fn;
    g_log_user = user_data;
  }
  try {
    vireo::set_log_callback(&trampoline);
  } catch (...) {
    // set_log_callback copies a function pointer into a std::function: it cannot fail in
    // practice; if it did, the previous sink stays.
  }
}

void vireo_log_set_level(vireo_log_level level) {
  int l = enum_value(level);
  l = l < 0 ? 0 : l > 3 ? 3 : l;
  vireo::set_log_level(static_cast<vireo::LogLevel>(l));
}

}  // extern "C"
