// vireo::Error: the one exception type of the C++ API. Every failure that a caller can
// cause (a hostile model file, a bad token id, a full KV cache, a CUDA failure) throws an
// Error whose code says what kind of problem it is and whose message names the offending
// values. State that was valid before the throwing call stays valid.
#pragma once
#include <stdexcept>
#include <string>
#include "vireo/export.h"

VIREO_CXX_API_BEGIN
namespace vireo {

enum class ErrorCode {
  InvalidArgument,  ///< a caller passed a bad value (token id, sequence id, option)
  InvalidModel,     ///< the model file is malformed, truncated or inconsistent
  Unsupported,      ///< well-formed but not supported (architecture, tensor type, device)
  CacheFull,        ///< the KV cache has no room for the requested tokens
  OutOfMemory,      ///< a host or device allocation failed
  Io,               ///< a file could not be opened, read or mapped
  Cuda,             ///< a CUDA/cuBLAS call failed (message has the CUDA error text)
  Cancelled,        ///< a long call was cancelled through its cancellation flag
  Overloaded,       ///< a queue is full (Scheduler::submit past SchedulerOptions::max_waiting); retry later
  Internal,         ///< a broken invariant inside vireo (a bug: please report)
};

inline const char* to_string(ErrorCode c) noexcept {
  switch (c) {
    case ErrorCode::InvalidArgument: return "invalid argument";
    case ErrorCode::InvalidModel: return "invalid model";
    case ErrorCode::Unsupported: return "unsupported";
    case ErrorCode::CacheFull: return "cache full";
    case ErrorCode::OutOfMemory: return "out of memory";
    case ErrorCode::Io: return "i/o error";
    case ErrorCode::Cuda: return "cuda error";
    case ErrorCode::Cancelled: return "cancelled";
    case ErrorCode::Overloaded: return "overloaded";
    case ErrorCode::Internal: return "internal error";
  }
  return "unknown error";
}

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(std::string("vireo: ") + to_string(code) + ": " + message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace vireo
VIREO_CXX_API_END
