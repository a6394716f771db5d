// Speculative decoding with a draft model (see vireo/speculative.hpp).
#include "vireo/speculative.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <exception>

#include "vireo/batch.hpp"
#include "vireo/error.hpp"
#include "vireo/tokenizer.hpp"
#include "sampling/spec_prefix.hpp"

namespace vireo {
using detail::sync_prefix;
namespace {

/// Inverse-CDF draw from unnormalised non-negative weights in token order; the last token
/// with a positive weight when rounding leaves the walk short.
Token draw(const std::vector<float>& w, double u) {
  double total = 0.0;
  for (float v : w) total += double(v);
  const double target = u * total;
  double cum = 0.0;
  Token last = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (w[i] <= 0.0f) continue;
    cum += double(w[i]);
    last = Token(i);
    if (cum > target) return last;
  }
  return last;
}

/// The draft stream's seed: the target sampler's seed mixed (splitmix64), so that the
/// drafts and the acceptance tests do not share random numbers.
std::uint64_t draft_seed(std::uint64_t seed) {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Feed tokens[from, size - 1) without logits (the prompt, or what an earlier round left).
void feed_prefix(const Model& m, KVCache& cache, SeqId seq, std::span<const Token> tokens, std::int64_t from,
                 Logits& lg) {
  if (from + 1 >= std::int64_t(tokens.size())) return;
  Batch b;
  b.add(seq, tokens.subspan(std::size_t(from), tokens.size() - 1 - std::size_t(from)), Want::None);
  m.forward(b, cache, lg);
}

/// params with draft_tokens checked (both drafters).
SpeculativeParams checked(SpeculativeParams params) {
  if (params.draft_tokens < 1 || params.draft_tokens > 16)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("speculative decoding: draft_tokens = {} is outside 1..16", params.draft_tokens));
  return params;
}

}  // namespace

SpeculativeDecoder::SpeculativeDecoder(const Model& target, const Model& draft, SpeculativeParams params)
    : target_(&target), draft_(&draft), params_(checked(params)), cur_k_(params_.draft_tokens) {
  const int tv = target.config().vocab_size, dv = draft.config().vocab_size;
  if (tv != dv)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("speculative decoding: the draft model's vocabulary has {} tokens and the target's {}; "
                            "the two must share one vocabulary",
                            dv, tv));
  if (target.has_tokenizer() && draft.has_tokenizer()) {
    const Tokenizer& a = target.tokenizer();
    const Tokenizer& b = draft.tokenizer();
    if (a.vocab_size() != b.vocab_size())
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("speculative decoding: the draft tokenizer has {} tokens and the target's {}",
                              b.vocab_size(), a.vocab_size()));
    for (Token t = 0; t < a.vocab_size(); ++t)
      if (a.token_text(t) != b.token_text(t))
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("speculative decoding: token {} is '{}' in the target's vocabulary and '{}' in the "
                                "draft's; the two must share one vocabulary",
                                t, a.token_text(t), b.token_text(t)));
  }
}

SpeculativeDecoder::SpeculativeDecoder(const Model& target, SpeculativeParams params)
    : target_(&target), draft_(nullptr), params_(checked(params)), cur_k_(params_.draft_tokens) {
  if (params_.lookup_ngram < 1 || params_.lookup_ngram > 16)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("speculative decoding: lookup_ngram = {} is outside 1..16", params_.lookup_ngram));
  if (params_.lookup_min_ngram < 1 || params_.lookup_min_ngram > params_.lookup_ngram)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("speculative decoding: lookup_min_ngram = {} is outside 1..lookup_ngram ({})",
                            params_.lookup_min_ngram, params_.lookup_ngram));
}

void SpeculativeDecoder::check_tokens(std::span<const Token> tokens) const {
  const int V = target_->config().vocab_size;
  if (tokens.empty()) throw Error(ErrorCode::InvalidArgument, "speculative step: no tokens (give at least the prompt)");
  for (std::size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= V)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("speculative step: token {} at position {} is outside the vocabulary [0, {})", tokens[i],
                              i, V));
}

std::vector<Token> SpeculativeDecoder::step(std::span<const Token> tokens, KVCache& target_cache, SeqId tseq,
                                            Sampler& sampler) {
  if (draft_)
    throw Error(ErrorCode::InvalidArgument,
                "speculative step: this decoder drafts with a model; call step() with the draft's cache");
  if (heads_) return medusa_step(tokens, target_cache, tseq, sampler);
  check_tokens(tokens);
  const std::int64_t n = std::int64_t(tokens.size());
  const std::int64_t tlen = sync_prefix(target_cache, tseq, tokens, "target");
  // Prompt lookup: the latest earlier occurrence of the sequence's last m tokens (m from
  // lookup_ngram down to lookup_min_ngram) proposes the tokens that followed it.
  std::vector<Token> drafts;
  const int k = cur_k_;
  for (int m = std::min<int>(params_.lookup_ngram, int(n) - 1); m >= params_.lookup_min_ngram && drafts.empty(); --m) {
    const Token* tail = tokens.data() + (n - m);
    for (std::int64_t start = n - m - 1; start >= 0; --start) {
      if (!std::equal(tail, tail + m, tokens.data() + start)) continue;
      const std::int64_t from = start + m;  // < n: at least one token follows the match
      for (std::int64_t j = from; j < n && j < from + k; ++j) drafts.push_back(tokens[std::size_t(j)]);
      break;
    }
  }
  try {
    return verify(tokens, target_cache, tseq, tlen, drafts, nullptr, sampler);
  } catch (...) {
    if (target_cache.length(tseq) > n) target_cache.truncate(tseq, n);
    throw;
  }
}

std::vector<Token> SpeculativeDecoder::step(std::span<const Token> tokens, KVCache& target_cache, SeqId tseq,
                                            KVCache& draft_cache, SeqId dseq, Sampler& sampler) {
  if (!draft_)
    throw Error(ErrorCode::InvalidArgument,
                "speculative step: this decoder drafts by prompt lookup; call step() without a draft cache");
  check_tokens(tokens);
  const std::int64_t n = std::int64_t(tokens.size());
  const std::int64_t tlen = sync_prefix(target_cache, tseq, tokens, "target");
  const std::int64_t dlen = sync_prefix(draft_cache, dseq, tokens, "draft");
  const int k = cur_k_;

  // On a throw, both caches go back to a prefix of `tokens` (a forward that throws leaves
  // its cache as it was; the drafts fed before it are dropped here).
  auto restore = [&] {
    if (target_cache.length(tseq) > n) target_cache.truncate(tseq, n);
    if (draft_cache.length(dseq) > n) draft_cache.truncate(dseq, n);
  };
  try {
    Logits lg;
    Batch b;
    // History for the penalties: tokens, then the drafts as they come.
    std::vector<Token> hist(tokens.begin(), tokens.end());
    hist.reserve(std::size_t(n + k + 1));

    // ---- draft: k tokens, one draft forward each --------------------------------------------
    SamplerParams dp = sampler.params();
    dp.seed = draft_seed(dp.seed);
    Sampler dsam(dp);
    std::vector<std::vector<float>> qs(static_cast<std::size_t>(k));
    std::vector<Token> drafts;
    feed_prefix(*draft_, draft_cache, dseq, tokens, dlen, lg);
    Token next = tokens.back();
    for (int i = 0; i < k; ++i) {
      b.clear();
      b.add(dseq, {next}, Want::Last);
      draft_->forward(b, draft_cache, lg);
      dsam.distribution(lg.row(0), hist, qs[std::size_t(i)]);
      next = draw(qs[std::size_t(i)], double(uniform01(dp.seed, draft_counter_++)));
      drafts.push_back(next);
      hist.push_back(next);
    }

    std::vector<Token> out = verify(tokens, target_cache, tseq, tlen, drafts, &qs, sampler);
    const std::int64_t keep = std::int64_t(target_cache.length(tseq));  // n + accepted
    if (draft_cache.length(dseq) > keep) draft_cache.truncate(dseq, keep);
    return out;
  } catch (...) {
    restore();
    throw;
  }
}

std::vector<Token> SpeculativeDecoder::verify(std::span<const Token> tokens, KVCache& target_cache, SeqId tseq,
                                              std::int64_t tlen, const std::vector<Token>& drafts,
                                              const std::vector<std::vector<float>>* qs, Sampler& sampler) {
  const std::int64_t n = std::int64_t(tokens.size());
  const int k = int(drafts.size());
  std::vector<Token> hist(tokens.begin(), tokens.end());
  hist.insert(hist.end(), drafts.begin(), drafts.end());
  // ---- target: the last token and every draft in one forward, a logits row each -----------
  Logits lg;
  feed_prefix(*target_, target_cache, tseq, tokens, tlen, lg);
  std::vector<Token> ver;
  ver.reserve(std::size_t(k + 1));
  ver.push_back(tokens.back());
  ver.insert(ver.end(), drafts.begin(), drafts.end());
  Batch b;
  b.add(tseq, ver, Want::All);
  target_->forward(b, target_cache, lg);

  // ---- accept a prefix of the drafts ----------------------------------------------------------
  // q: the draft model's distribution, or (prompt lookup) one-hot on the draft token.
  const std::uint64_t seed = sampler.params().seed;
  std::vector<Token> out;
  int accepted = 0;
  for (int i = 0; i < k; ++i) {
    const std::span<const Token> h(hist.data(), std::size_t(n + i));
    sampler.distribution(lg.row(std::size_t(i)), h, p_);
    const Token x = drafts[std::size_t(i)];
    const double px = p_[std::size_t(x)], qx = qs ? (*qs)[std::size_t(i)][std::size_t(x)] : 1.0;
    const double u = double(uniform01(seed, sampler.counter()));
    sampler.advance();
    const double ratio = qx > 0.0 ? px / qx : (px > 0.0 ? 1.0 : 0.0);
    if (u < ratio) {
      out.push_back(x);
      ++accepted;
      continue;
    }
    // Rejected: draw from norm(max(0, p - q)); it has mass whenever p(x) < q(x). A one-hot q
    // (prompt lookup) leaves p with x removed.
    r_.resize(p_.size());
    bool any = false;
    for (std::size_t t = 0; t < p_.size(); ++t) {
      r_[t] = qs ? std::max(0.0f, p_[t] - (*qs)[std::size_t(i)][t]) : (Token(t) == x ? 0.0f : p_[t]);
      any = any || r_[t] > 0.0f;
    }
    const double u2 = double(uniform01(seed, sampler.counter()));
    sampler.advance();
    out.push_back(draw(any ? r_ : p_, u2));
    break;
  }
  if (accepted == k) out.push_back(sampler.sample(lg.row(std::size_t(k)), hist).token);

  // Keep the tokens and the accepted drafts; the last returned token is fed next round.
  target_cache.truncate(tseq, n + accepted);
  if (params_.adaptive && k > 0)
    cur_k_ = accepted == k ? std::min(params_.draft_tokens, cur_k_ + 2) : std::max(1, cur_k_ - 1);
  ++stats_.rounds;
  stats_.drafted += k;
  stats_.accepted += accepted;
  stats_.emitted += std::int64_t(out.size());
  return out;
}

}  // namespace vireo
