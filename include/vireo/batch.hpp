// Batch: the tokens of one forward step. Many sequences at once, prefill chunks and single
// decode tokens mixed (continuous batching). Each token is appended to its sequence in the
// KV cache in the order it was added, so its position is the sequence's cached length plus
// its index among that sequence's tokens in this batch. Each token says whether the step
// must return its logits (speculative verification needs every drafted position).
//
// Token trees (speculative verification of several drafts at once): add_tree() adds a
// sequence's tokens with a parent each — another token of the same call, or none (a root,
// whose parent is the sequence's cached last token). A tree token attends to the cached
// prefix and to its own ancestors only, and its position is the cached length plus its
// depth. All tree tokens are appended to the cache; KVCache::compact() then keeps the
// accepted path. A sequence with a tree takes no other tokens in the same batch.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <vector>

#include "vireo/types.hpp"
#include "vireo/export.h"

VIREO_CXX_API_BEGIN
namespace vireo {

/// Which tokens of an add() call want logits.
enum class Want { None, Last, All };
inline constexpr Want Last = Want::Last;
inline constexpr Want All = Want::All;

class Batch {
 public:
  struct Entry {
    Token token;
    SeqId seq;
    bool logits;
    /// add_tree(): batch index of the parent token, or -1 for a root. Chain tokens: -2.
    std::int32_t parent = -2;
  };
  /// Largest tree one sequence may add in one step.
  static constexpr std::size_t kMaxTreeTokens = 64;

  void add(SeqId seq, std::span<const Token> tokens, Want want = Want::Last) {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      bool w = want == Want::All || (want == Want::Last && i + 1 == tokens.size());
      entries_.push_back({tokens[i], seq, w});
      n_logits_ += w;
    }
  }
  void add(SeqId seq, std::initializer_list<Token> tokens, Want want = Want::Last) {
    add(seq, std::span<const Token>(tokens.begin(), tokens.size()), want);
  }
  void add(SeqId seq, Token token, bool logits) {
    entries_.push_back({token, seq, logits});
    n_logits_ += logits;
  }
  /// Add a token tree for `seq`: parents[i] is the index (within `tokens`) of token i's
  /// parent, which must be < i, or -1 for a root. Model::forward checks the tree (same
  /// sizes, parents in range, at most kMaxTreeTokens tokens) and throws InvalidArgument
  /// naming the offending index.
  void add_tree(SeqId seq, std::span<const Token> tokens, std::span<const std::int32_t> parents, Want want = Want::All) {
    const std::size_t base = entries_.size();
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      bool w = want == Want::All || (want == Want::Last && i + 1 == tokens.size());
      const std::int32_t p = i < parents.size() ? parents[i] : std::int32_t(-3);  // -3: missing (refused)
      entries_.push_back({tokens[i], seq, w, p >= 0 ? std::int32_t(base) + p : p < -1 ? -3 : -1});
      n_logits_ += w;
    }
    if (parents.size() != tokens.size()) tree_size_mismatch_ = true;
  }
  /// Whether an add_tree() call was given a parents span of another length than its tokens.
  bool has_tree_size_mismatch() const noexcept { return tree_size_mismatch_; }
  void clear() noexcept { entries_.clear(); n_logits_ = 0; tree_size_mismatch_ = false; }
  std::size_t size() const noexcept { return entries_.size(); }
  bool empty() const noexcept { return entries_.empty(); }
  std::size_t num_logit_rows() const noexcept { return n_logits_; }
  std::span<const Entry> entries() const noexcept { return entries_; }

 private:
  std::vector<Entry> entries_;
  std::size_t n_logits_ = 0;
  bool tree_size_mismatch_ = false;
};

}  // namespace vireo
VIREO_CXX_API_END
