// The cache check every speculative drafter starts a round with.
#pragma once
#include <fmt/format.h>

#include <algorithm>
#include <span>

#include "vireo/error.hpp"
#include "vireo/kv_cache.hpp"

namespace vireo::detail {

/// Make `cache`'s seq hold a prefix of `tokens` shorter than tokens (the last token is fed
/// by the round, for its logits); returns that length.
inline std::int64_t sync_prefix(KVCache& cache, SeqId seq, std::span<const Token> tokens, const char* which) {
  const std::span<const Token> held = cache.tokens(seq);
  if (held.size() > tokens.size() || !std::equal(held.begin(), held.end(), tokens.begin()))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("speculative step: the {} cache's sequence {} holds {} tokens that are not a prefix of "
                            "the {} tokens given",
                            which, seq, held.size(), tokens.size()));
  if (held.size() == tokens.size()) cache.truncate(seq, std::int64_t(tokens.size()) - 1);
  return cache.length(seq);
}

}  // namespace vireo::detail
