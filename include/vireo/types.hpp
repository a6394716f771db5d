// Small vocabulary types shared by every public header.
#pragma once
#include <cstdint>
#include <string>
#include "vireo/export.h"

VIREO_CXX_API_BEGIN
namespace vireo {

using Token = std::int32_t;  ///< a token id, 0 <= id < vocab_size
using SeqId = std::int32_t;  ///< a sequence handle issued by a KVCache

/// Element type of activations / weights / KV storage on a backend.
enum class DType { F32, F16, BF16 };

inline const char* to_string(DType t) noexcept {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
  }
  return "?";
}

inline std::size_t dtype_size(DType t) noexcept { return t == DType::F32 ? 4 : 2; }

}  // namespace vireo
VIREO_CXX_API_END
