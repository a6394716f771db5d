// Shared pieces of the C API (vireo.h): the handle structs behind the opaque C types, the
// guard that turns every exception into a vireo_status plus the thread's last-error message,
// and the argument checks every entry point uses (NULL pointers, UTF-8, token ranges).
#pragma once
#include <atomic>
#include <cstring>
#include <filesystem>
#include <optional>
#include <type_traits>
#include <string>
#include <string_view>
#include <vector>

#include "vireo/vireo.h"
#include "vireo/vireo.hpp"

struct vireo_model {
  /// The model-wide cancellation flag ModelOptions::cancel points at: set by a progress
  /// callback that returns false during load, or by a forward's abort callback.
  std::atomic<bool> cancel{false};
  std::optional<vireo::Model> model;
};

struct vireo_kv_cache {
  const vireo_model* owner = nullptr;
  std::optional<vireo::KVCache> cache;
};

struct vireo_batch {
  vireo::Batch batch;
};

struct vireo_logits {
  vireo::Logits logits;
};

struct vireo_sampler {
  std::optional<vireo::Sampler> sampler;
};

struct vireo_stream {
  const vireo_model* owner = nullptr;
  std::optional<vireo::StreamDecoder> decoder;
  std::string text;  ///< the last piece handed out
};

struct vireo_scheduler {
  const vireo_model* owner = nullptr;
  std::optional<vireo::Scheduler> scheduler;
  std::vector<vireo_token_event> events;  ///< the last step's events, handed out by pointer
};

struct vireo_speculative {
  const vireo_model* target = nullptr;
  const vireo_model* draft = nullptr;  ///< nullptr: prompt lookup
  std::optional<vireo::SpeculativeDecoder> decoder;
};

namespace vireo::capi {

/// A failure the C layer itself detects, with a status of the C API.
struct CError {
  vireo_status status;
  std::string message;
};

/// Record `message` as this thread's last error and return `status`. Never throws.
vireo_status fail(vireo_status status, std::string_view fn, std::string_view message) noexcept;
vireo_status to_status(ErrorCode code) noexcept;

/// Run `body`; map any exception to a status and a "fn: message" last error.
template <class F>
vireo_status guard(const char* fn, F&& body) noexcept {
  try {
    body();
    return VIREO_STATUS_OK;
  } catch (const CError& e) {
    return fail(e.status, fn, e.message);
  } catch (const Error& e) {
    return fail(to_status(e.code()), fn, e.what());
  } catch (const std::bad_alloc&) {
    return fail(VIREO_STATUS_OUT_OF_MEMORY, fn, "out of host memory");
  } catch (const std::exception& e) {
    return fail(VIREO_STATUS_INTERNAL, fn, e.what());
  } catch (...) {
    return fail(VIREO_STATUS_INTERNAL, fn, "unknown exception");
  }
}

[[noreturn]] void invalid(std::string message);

/// The integer a C caller stored in an enum. Read through its bytes: in C++, loading an enum
/// object that holds a value outside the enumeration's range (a C caller's (vireo_want)9) is
/// undefined behaviour, so the value is never loaded as the enum type.
template <class E>
int enum_value(const E& e) noexcept {
  std::underlying_type_t<E> v;
  std::memcpy(&v, &e, sizeof v);
  return static_cast<int>(v);
}

/// Throws INVALID_ARGUMENT "<what> is NULL" when p is null.
template <class T>
T* need(T* p, const char* what) {
  if (!p) invalid(std::string(what) + " is NULL");
  return p;
}

/// The loaded model behind a handle (throws for NULL).
const Model& model_of(const vireo_model* m);
/// Throws INVALID_ARGUMENT naming the first byte of `text` that breaks UTF-8 (overlong forms,
/// surrogates and code points above U+10FFFF included). `what` names the argument.
void check_utf8(std::string_view text, const char* what);
/// Throws INVALID_ARGUMENT for a token outside [0, vocab).
void check_tokens(const vireo_token* tokens, std::size_t n, int vocab, const char* what);
/// A NUL-terminated UTF-8 path argument (checked; NULL and bad UTF-8 are INVALID_ARGUMENT)
/// as a filesystem path (wide on Windows, so non-ASCII names work there too).
std::filesystem::path utf8_path(const char* path, const char* what);
/// Copy `text` (plus a NUL) to out / capacity as vireo_detokenize documents.
void write_text(const std::string& text, char* out, std::size_t capacity, std::size_t* out_len);

SamplerParams to_cpp(const vireo_sampler_params& p);

}  // namespace vireo::capi
