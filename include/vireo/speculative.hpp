// Speculative decoding: a drafter proposes a few tokens, the target checks them.
// Three drafters:
//   - a draft model sharing the target's vocabulary;
//   - prompt lookup: the tokens that followed the latest earlier occurrence of the sequence's
//     last n-gram. It costs nothing and pays off where the output repeats its input
//     (editing, extraction, summaries that quote);
//   - Medusa heads (vireo/medusa.hpp): a token tree drafted from the heads' top candidates
//     (a static sparse tree or one grown by cumulative probability, EAGLE-2 style), verified
//     in one forward of the target (Batch::add_tree); the longest branch that agrees with
//     the target's greedy choice is kept (KVCache::compact). Greedy decoding only, so far.
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
#include "vireo/export.h"

VIREO_CXX_API_BEGIN
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

/// The candidate tree of Medusa drafting.
struct TreeParams {
  /// Static tree: depth d + 1 holds the top top_k[d] tokens of head d under every node of
  /// depth d (breadth first), while the tree has room.
  std::vector<int> top_k = {4, 3, 2};
  /// Dynamic tree (EAGLE-2 style): nodes are added best first by the product of the heads'
  /// probabilities along their path (each node offers its head's top max(top_k) tokens).
  bool dynamic = false;
  int max_tree_tokens = 32;  ///< tree size including the root, 2..Batch::kMaxTreeTokens
};

/// Counters over all rounds of one SpeculativeDecoder. (One decoder per sequence: the
/// counters and the adaptive draft length follow that sequence's rounds.)
struct SpeculativeStats {
  std::int64_t rounds = 0;    ///< step() calls that returned tokens
  std::int64_t drafted = 0;   ///< draft tokens proposed
  std::int64_t accepted = 0;  ///< draft tokens the target kept
  std::int64_t emitted = 0;   ///< tokens returned (accepted + one per round)
  /// Tree drafting: rounds whose accepted branch reached depth d + 1 (d = 0, 1, ...).
  std::vector<std::int64_t> accepted_at_depth;
  /// Accepted / drafted: how good the drafter is for this text.
  double acceptance() const noexcept { return drafted ? double(accepted) / double(drafted) : 0.0; }
  /// Tokens per target forward.
  double mean_accepted() const noexcept { return rounds ? double(emitted) / double(rounds) : 0.0; }
};

class MedusaHeads;

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
  /// Medusa heads as the drafter (heads.base() is the target; the heads must outlive the
  /// decoder). The sampler must be greedy (temperature <= 0): step() throws Unsupported
  /// otherwise. Runs where the target supports token trees and hidden states (the CPU).
  SpeculativeDecoder(const MedusaHeads& heads, TreeParams tree, SpeculativeParams params = {});

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
  /// One round with prompt lookup or Medusa heads (the decoder made without a draft model;
  /// the other one throws InvalidArgument here, as this one does in the step() above). With
  /// Medusa heads the target cache holds `tokens` and every returned token but the last on
  /// return, as with the other drafters.
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

  std::vector<Token> medusa_step(std::span<const Token> tokens, KVCache& target_cache, SeqId tseq, Sampler& sampler);
  void build_tree(std::vector<Token>& toks, std::vector<std::int32_t>& parents) const;

  const Model* target_;
  const Model* draft_;  ///< nullptr: prompt lookup or Medusa
  const MedusaHeads* heads_ = nullptr;
  TreeParams tree_;
  /// Medusa: the hidden state of the last token the target cache holds, for the next
  /// round's heads, and which cache, sequence and length it belongs to.
  std::vector<float> hidden_;
  const KVCache* hidden_cache_ = nullptr;
  SeqId hidden_seq_ = -1;
  std::int64_t hidden_len_ = -1;
  SpeculativeParams params_;
  SpeculativeStats stats_;
  std::uint64_t draft_counter_ = 0;  ///< the draft stream's next draw
  int cur_k_ = 0;                     ///< this round's draft length (adaptive)
  std::vector<float> p_, r_;         ///< scratch distributions
};

}  // namespace vireo
VIREO_CXX_API_END
