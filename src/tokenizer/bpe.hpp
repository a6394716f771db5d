// Merge engines of the two vocabulary families, both over an index-linked symbol list with
// a binary heap of candidate pairs (lazy deletion: a popped pair is re-validated against the
// current symbols and skipped when stale). O(n log n) in the symbols of one piece, no
// recursion, and the working buffers are reused across pieces.
//
//   byte-level BPE (GPT-2 family): symbols are token ids (initially one per byte); the pair
//     with the lowest merge rank is merged first, ties broken by leftmost position (as HF
//     tokenizers' BPE does).
//   SentencePiece BPE ("llama"): symbols are byte ranges of the normalized text; the pair
//     whose concatenation is the vocabulary entry with the highest score is merged first,
//     ties broken by leftmost position (as sentencepiece's bpe_model and llama.cpp do).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "vireo/types.hpp"

namespace vireo::detail {

/// Heterogeneous string hash so maps keyed by std::string accept std::string_view lookups.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, Token, StringHash, std::equal_to<>>;

struct MergeResult {
  std::int32_t rank;
  Token result;
};

/// (left id, right id) -> (rank, merged id).
class MergeTable {
 public:
  void add(Token left, Token right, std::int32_t rank, Token result) {
    map_.try_emplace(key(left, right), MergeResult{rank, result});
  }
  const MergeResult* find(Token left, Token right) const noexcept {
    auto it = map_.find(key(left, right));
    return it == map_.end() ? nullptr : &it->second;
  }
  std::size_t size() const noexcept { return map_.size(); }

 private:
  static std::uint64_t key(Token l, Token r) noexcept {
    return (std::uint64_t(std::uint32_t(l)) << 32) | std::uint32_t(r);
  }
  std::unordered_map<std::uint64_t, MergeResult> map_;
};

/// Reusable buffers for one encode call.
struct MergeWorkspace {
  struct Pair {            // SPM candidate
    float score;           // score of the merged entry (higher pops first)
    std::int32_t left;     // index of the left symbol (ties pop leftmost first)
    std::int32_t right;    // index of the right symbol
    std::size_t size;      // byte length of the merged text when queued (stale check)
  };
  std::vector<Token> ids;
  std::vector<std::int32_t> prev, next, start, len;
  std::vector<std::uint64_t> heap;  // BPE: rank << 32 | left index
  std::vector<Pair> spm_heap;
};

/// Merges `ws.ids` (one id per initial symbol) in place; on return ws.ids holds the result.
void bpe_merge(const MergeTable& merges, MergeWorkspace& ws);

/// One final SentencePiece symbol: its id, or -1 (then the bytes text[start, start+len) go
/// through byte fallback).
struct SpmSymbol {
  Token id;
  std::size_t start, len;
};

/// SentencePiece merge over `text` split into UTF-8 characters (an invalid byte is a symbol
/// of its own). `mergeable` maps the normal vocabulary entries to ids; `scores` is indexed
/// by id. Appends the final symbols to `out`.
void spm_merge(std::string_view text, const TokenMap& mergeable, const std::vector<float>& scores,
               MergeWorkspace& ws, std::vector<SpmSymbol>& out);

}  // namespace vireo::detail
