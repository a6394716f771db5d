// The sizes the CUDA backend is built for: every workspace, plan buffer and graph bucket is
// allocated for these at load, so that a forward step never allocates.
#pragma once
#include <cstdint>

namespace vireo::detail::cuda_backend {

constexpr int kMaxTokens = 4096;    ///< tokens of one forward step
constexpr int kLogitChunk = 256;    ///< logits rows projected at once
constexpr int kMaxSampleRows = 64;  ///< rows forward_sample samples on the GPU (<= kLogitChunk)
constexpr std::int64_t kMaxBlockIds = std::int64_t(1) << 22;  ///< block-table entries of one step
constexpr int kMaxGraphTokens = 64;                           ///< largest decode step replayed from a CUDA graph

}  // namespace vireo::detail::cuda_backend
