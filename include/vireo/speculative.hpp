// Speculative decoding: a drafter proposes a few tokens, the target checks them.
// Two drafters:
//   - a draft model sharing the target's vocabulary;
//   - prompt lookup: the tokens that followed the latest earlier occurrence of the sequence's
//     last n-gram. It costs nothing and pays off where the output repeats its input
//     (editing, extraction, summaries that quote).
//
// With a draft model: the draft proposes a few tokens one at a time,
// the target scores all of them in one forward pass, and the exact speculative sampling rule
// (Leviathan et al. 2023; Chen et al. 2023) keeps a prefix of them: draft token x drawn
// from the draft's distribution q is accepted with probability min(1, p(x) / q(x)) under the
// target's distribution p. The first rejected one is replaced by a draw from
// norm(max(0, p - q)), and when every draft is accepted the target's next distribution gives
// one more token. The tokens that come out are distributed exactly as the target sampling
// them one at a time with the same Sampler settings (penalties, temperature, top-k, top-p,
// min-p: Sampler::distribution). Greedy (temperature <= 0) keeps the drafts that match the
// target's argmax, so it returns the target's greedy tokens.
//
// The caller keeps both KV caches and the token history; one round:
//   std::vector<Token> toks = prompt;
//   while (...) {
//     auto out = spec.step(toks, target_cache, tseq, draft_cache, dseq, sampler);
//     toks.insert(toks.end(), out.begin(), out.end());
//   }
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "vireo/kv_cache.hpp"
#include "vireo/model.hpp"
#include "vireo/sampler.hpp"
#include "vireo/types.hpp"

namespace vireo {

struct SpeculativeParams {
  int draft_tokens = 4;      ///< the most tokens the drafter proposes per round, 1..16
  int lookup_ngram = 3;      ///< prompt lookup: the longest n-gram matched (shorter ones are tried next), 1..16
  int lookup_min_ngram = 2;  ///< prompt lookup: the shortest n-gram that may propose drafts, 1..lookup_ngram
  /// The draft length follows the acceptance (as HF transformers' assisted generation does):
  /// +2 after a round that kept every draft, -1 after one that did not, within
  /// 1..draft_tokens. The length is fixed before each round, so the output distribution is
  /// unchanged. false: always draft_tokens.
  bool adaptive = true;
};

/// Counters over all rounds of one SpeculativeDecoder. (One decoder per sequence: the
/// counters and the adaptive draft length follow that sequence's rounds.)
struct SpeculativeStats {
  std::int64_t rounds = 0;    ///< step() calls that returned tokens
  std::int64_t drafted = 0;   ///< draft tokens proposed
  std::int64_t accepted = 0;  ///< draft tokens the target kept
  std::int64_t emitted = 0;   ///< tokens returned (accepted + one per round)
  /// Accepted / drafted: how good the drafter is for this text.
  double acceptance() const noexcept { return drafted ? double(accepted) / double(drafted) : 0.0; }
};

class SpeculativeDecoder {
 public:
  /// target and draft must share the vocabulary: the same vocab_size and, when both carry a
  /// tokenizer, the same token texts. Otherwise throws InvalidArgument naming the
  /// difference. Both models must outlive the decoder.
  SpeculativeDecoder(const Model& target, const Model& draft, SpeculativeParams params = {});
  /// Prompt lookup as the drafter (no draft model): the drafts are the tokens that followed
  /// the latest earlier occurrence of the last lookup_ngram tokens (then shorter n-grams); a
  /// round without a match is one plain decode step. The exact rule treats a lookup draft as
  /// drawn from a one-hot q, so it is kept with probability p(x) (greedy: when it is the
  /// argmax), and the output is distributed as the target's own.
  explicit SpeculativeDecoder(const Model& target, SpeculativeParams params = {});

  /// One round for the sequence `tokens` (prompt and everything generated so far, at least
  /// one token). target_cache's tseq and draft_cache's dseq must each hold a prefix of
  /// `tokens` (empty at the start); the round feeds what they miss, drafts, verifies, and
  /// returns 1 .. draft_tokens + 1 new tokens. `sampler` sets the target's sampling; its
  /// stream draws the acceptance tests and the replacement / extra token; the drafts come
  /// from a stream of the decoder's own. On return the target cache holds `tokens` followed
  /// by every returned token except the last (the next round feeds it), and the draft cache
  /// a prefix of that. Throws InvalidArgument
  /// (bad tokens, a cache holding something else), CacheFull and the models' errors; a
  /// round that throws leaves both caches holding a prefix of `tokens`.
  std::vector<Token> step(std::span<const Token> tokens, KVCache& target_cache, SeqId tseq, KVCache& draft_cache,
                          SeqId dseq, Sampler& sampler);
  /// One round with prompt lookup (the decoder made without a draft model; the other one
  /// throws InvalidArgument here, as this one does in the step() above).
  std::vector<Token> step(std::span<const Token> tokens, KVCache& target_cache, SeqId tseq, Sampler& sampler);

  const SpeculativeStats& stats() const noexcept { return stats_; }
  const SpeculativeParams& params() const noexcept { return params_; }

 private:
  void check_tokens(std::span<const Token> tokens) const;
  /// The target's forward over the last token and the drafts, the acceptance walk, the
  /// target cache cut back to tokens + accepted drafts. qs: the drafts' distributions, or
  /// nullptr for one-hot (prompt lookup).
  std::vector<Token> verify(std::span<const Token> tokens, KVCache& target_cache, SeqId tseq, std::int64_t tlen,
                            const std::vector<Token>& drafts, const std::vector<std::vector<float>>* qs,
                            Sampler& sampler);

  const Model* target_;
  const Model* draft_;  ///< nullptr: prompt lookup
  SpeculativeParams params_;
  SpeculativeStats stats_;
  std::uint64_t draft_counter_ = 0;  ///< the draft stream's next draw
  int cur_k_ = 0;                     ///< this round's draft length (adaptive)
  std::vector<float> p_, r_;         ///< scratch distributions
};

}  // namespace vireo
