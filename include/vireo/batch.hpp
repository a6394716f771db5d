// Batch: the tokens of one forward step. Many sequences at once, prefill chunks and single
// decode tokens mixed (continuous batching). Each token is appended to its sequence in the
// KV cache in the order it was added, so its position is the sequence's cached length plus
// its index among that sequence's tokens in this batch. Each token says whether the step
// must return its logits (speculative verification needs every drafted position).
#pragma once
#include <cstddef>
#include <initializer_list>
#include <span>
#include <vector>

#include "vireo/types.hpp"

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
  };

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
  void clear() noexcept { entries_.clear(); n_logits_ = 0; }
  std::size_t size() const noexcept { return entries_.size(); }
  bool empty() const noexcept { return entries_.empty(); }
  std::size_t num_logit_rows() const noexcept { return n_logits_; }
  std::span<const Entry> entries() const noexcept { return entries_; }

 private:
  std::vector<Entry> entries_;
  std::size_t n_logits_ = 0;
};

}  // namespace vireo
