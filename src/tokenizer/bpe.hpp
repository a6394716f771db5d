// Merge engines of the two vocabulary families, over an index-linked symbol list. Both pop
// the candidate pair with the lowest priority rank first, ties broken by the leftmost
// position, and re-validate a popped pair against the current symbols (lazy deletion):
//
//   byte-level BPE (GPT-2 family): symbols are token ids (initially one per byte); a pair's
//     rank is its merge rank (as HF tokenizers' BPE orders its queue);
//   SentencePiece BPE ("llama"): symbols are byte ranges of the normalized text; a pair's
//     rank is the score order of the vocabulary entry it would form (highest score = rank 0,
//     equal scores share a rank), as sentencepiece's bpe_model and llama.cpp order theirs.
//     The vocabulary is keyed by text; lookups of a pair of known symbols (and of single
//     characters) are cached by id for the duration of one encode call, since long inputs
//     repeat the same few pairs.
//
// The queue: a binary heap of (rank, position) keys for short pieces; for long pieces
// (a run of thousands of one character is a single piece) a bucket queue, one position
// list per rank plus a small heap of the ranks that hold candidates. Positions mostly
// arrive in increasing order: a bucket appends those to a list consumed front to back, and
// keeps the few that arrive out of order in a small heap of its own, so long runs cost
// O(1) per candidate instead of O(log n) in a heap of millions of entries (and never worse
// than a heap). Both queues pop the same (rank, position) minimum, so they produce
// identical merges. No recursion; the working buffers are reused across pieces.
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

/// (left id, right id) -> (rank, merged id); an open-addressing table (the merge loop looks
/// a pair up several times per merge). The first entry added for a pair wins.
class MergeTable {
 public:
  void add(Token left, Token right, std::int32_t rank, Token result);
  const MergeResult* find(Token left, Token right) const noexcept {
    if (slots_.empty()) return nullptr;
    const std::uint64_t k = key(left, right);
    for (std::size_t i = slot_of(k);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == k) return &s.value;
      if (s.key == kEmpty) return nullptr;
    }
  }
  std::size_t size() const noexcept { return size_; }
  void clear() noexcept;
  /// One past the largest rank added (0 when empty).
  std::int32_t rank_limit() const noexcept { return rank_limit_; }

 private:
  struct Slot {
    std::uint64_t key;
    MergeResult value;
  };
  static constexpr std::uint64_t kEmpty = ~std::uint64_t(0);  // key of (-1, -1): never added
  static std::uint64_t key(Token l, Token r) noexcept {
    return (std::uint64_t(std::uint32_t(l)) << 32) | std::uint32_t(r);
  }
  std::size_t slot_of(std::uint64_t k) const noexcept {
    return std::size_t((k * 0x9E3779B97F4A7C15ull) >> shift_) & mask_;
  }
  void grow();
  std::vector<Slot> slots_;
  std::size_t mask_ = 0, size_ = 0;
  int shift_ = 64;
  std::int32_t rank_limit_ = 0;
};

/// The candidate queue of one merge loop (see the file comment).
class PairQueue {
 public:
  /// Starts an empty queue for `n_symbols` symbols with ranks in [0, rank_limit).
  void reset(std::size_t n_symbols, std::int32_t rank_limit);
  void push(std::int32_t rank, std::int32_t pos);
  /// Pops the (rank, pos) minimum into the arguments; false when empty.
  bool pop(std::int32_t& rank, std::int32_t& pos);

 private:
  struct Bucket {
    std::vector<std::int32_t> pos;   // ascending; pos[consumed..] are pending
    std::size_t consumed = 0;
    std::vector<std::int32_t> late;  // min-heap of pending positions that arrived out of order
    bool queued = false;
    bool empty() const noexcept { return consumed == pos.size() && late.empty(); }
    void clear() noexcept {
      pos.clear();
      late.clear();
      consumed = 0;
      queued = false;
    }
  };
  bool bucketed_ = false;
  std::vector<std::uint64_t> heap_;    // small pieces: rank << 32 | pos, min-heap
  std::vector<Bucket> buckets_;        // long pieces: one list per rank
  std::vector<std::int32_t> ranks_;    // min-heap of ranks whose bucket holds candidates
  std::vector<std::int32_t> touched_;  // buckets to clear on the next reset
};

/// Reusable buffers for one encode call.
struct MergeWorkspace {
  std::vector<Token> ids;
  std::vector<std::int32_t> prev, next, start, len;
  std::vector<std::int32_t> spm_size, spm_rank;  // SPM: the last candidate queued per symbol
  std::vector<Token> spm_id, spm_qid;  // SPM: id of each symbol's text (-1: none); queued merge's id
  MergeTable spm_pairs;  // SPM: (left id, right id) -> merged id (-1: not in the vocabulary), per call
  struct CpId {
    std::uint32_t cp;
    Token id;
  };
  std::vector<CpId> spm_chars;  // SPM: direct-mapped cache of single characters' ids
  PairQueue queue;
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
/// of its own). `mergeable` maps the normal vocabulary entries to ids; `score_rank` is
/// indexed by id (0 = highest score) and every value is below `rank_limit`. Appends the
/// final symbols to `out`.
void spm_merge(std::string_view text, const TokenMap& mergeable, const std::vector<std::int32_t>& score_rank,
               std::int32_t rank_limit, MergeWorkspace& ws, std::vector<SpmSymbol>& out);

}  // namespace vireo::detail
