// Speculative decoding with Medusa heads (see vireo/speculative.hpp and vireo/medusa.hpp).
//
// One round for tokens t_0 .. t_{n-1}: the target cache holds t_0 .. t_{n-2}, and the
// decoder keeps the hidden state of t_{n-2} from the previous round (a first round, or a
// cache that changed in between, recomputes it with one forward). The heads turn that
// hidden state into candidates for the positions after t_{n-1}; the tree is t_{n-1} (the
// root) with the candidates under it. One target forward over the tree gives the logits of
// every node; the walk from the root follows the child whose token is the target's greedy
// choice at its parent, and stops where no child matches. Returned: the matched children's
// tokens and the target's greedy choice at the last matched node, so the output is exactly
// the target's greedy continuation. The cache keeps the root and the matched children
// (KVCache::compact), and the last matched node's hidden state serves the next round.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <queue>

#include "sampling/spec_prefix.hpp"
#include "vireo/batch.hpp"
#include "vireo/error.hpp"
#include "vireo/medusa.hpp"
#include "vireo/speculative.hpp"

namespace vireo {
namespace {

/// Indices of the n largest values of v, largest first.
std::vector<Token> top_n(const std::vector<float>& v, int n) {
  std::vector<Token> idx(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) idx[i] = Token(i);
  n = std::min<int>(n, int(v.size()));
  std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), [&](Token a, Token b) {
    return v[std::size_t(a)] > v[std::size_t(b)] || (v[std::size_t(a)] == v[std::size_t(b)] && a < b);
  });
  idx.resize(std::size_t(n));
  return idx;
}

/// Softmax probabilities of the entries `ids` of logits row v.
std::vector<float> probs_of(const std::vector<float>& v, const std::vector<Token>& ids) {
  const float mx = *std::max_element(v.begin(), v.end());
  double z = 0.0;
  for (float x : v) z += std::exp(double(x - mx));
  std::vector<float> p;
  for (Token t : ids) p.push_back(float(std::exp(double(v[std::size_t(t)] - mx)) / z));
  return p;
}

}  // namespace

SpeculativeDecoder::SpeculativeDecoder(const MedusaHeads& heads, TreeParams tree, SpeculativeParams params)
    : target_(&heads.base()), draft_(nullptr), heads_(&heads), tree_(std::move(tree)), params_(params),
      cur_k_(params.draft_tokens) {
  if (tree_.max_tree_tokens < 2 || tree_.max_tree_tokens > int(Batch::kMaxTreeTokens))
    throw Error(ErrorCode::InvalidArgument, fmt::format("Medusa tree: max_tree_tokens = {} is outside 2..{}",
                                                        tree_.max_tree_tokens, Batch::kMaxTreeTokens));
  if (tree_.top_k.empty() || tree_.top_k.size() > std::size_t(heads.head_count()))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("Medusa tree: top_k has {} depths; the heads give 1..{}", tree_.top_k.size(),
                            heads.head_count()));
  for (int k : tree_.top_k)
    if (k < 1 || k > 64) throw Error(ErrorCode::InvalidArgument, fmt::format("Medusa tree: top_k {} is outside 1..64", k));
}

void SpeculativeDecoder::build_tree(std::vector<Token>& toks, std::vector<std::int32_t>& parents) const {
  if (hidden_.empty()) return;  // no context for the heads yet: the root alone
  std::vector<std::vector<float>> hl;
  heads_->logits(hidden_, hl);
  const int depths = int(tree_.top_k.size());
  const int budget = tree_.max_tree_tokens;
  if (!tree_.dynamic) {
    std::vector<std::int32_t> level = {0};
    for (int d = 0; d < depths && int(toks.size()) < budget; ++d) {
      const std::vector<Token> cand = top_n(hl[std::size_t(d)], tree_.top_k[std::size_t(d)]);
      std::vector<std::int32_t> next;
      for (std::int32_t p : level)
        for (Token t : cand) {
          if (int(toks.size()) >= budget) break;
          next.push_back(std::int32_t(toks.size()));
          toks.push_back(t);
          parents.push_back(p);
        }
      level = std::move(next);
    }
    return;
  }
  // Best first by the product of the heads' probabilities along the path.
  const int width = *std::max_element(tree_.top_k.begin(), tree_.top_k.end());
  std::vector<std::vector<Token>> cand(static_cast<std::size_t>(depths));
  std::vector<std::vector<float>> prob(static_cast<std::size_t>(depths));
  for (int d = 0; d < depths; ++d) {
    cand[std::size_t(d)] = top_n(hl[std::size_t(d)], width);
    prob[std::size_t(d)] = probs_of(hl[std::size_t(d)], cand[std::size_t(d)]);
  }
  struct Item {
    float score;
    std::int32_t parent;
    int depth, rank;
    bool operator<(const Item& o) const { return score < o.score; }
  };
  std::priority_queue<Item> q;
  for (int r = 0; r < width; ++r) q.push({prob[0][std::size_t(r)], 0, 0, r});
  while (!q.empty() && int(toks.size()) < budget) {
    const Item it = q.top();
    q.pop();
    const std::int32_t me = std::int32_t(toks.size());
    toks.push_back(cand[std::size_t(it.depth)][std::size_t(it.rank)]);
    parents.push_back(it.parent);
    if (it.depth + 1 < depths)
      for (int r = 0; r < width; ++r) q.push({it.score * prob[std::size_t(it.depth + 1)][std::size_t(r)], me, it.depth + 1, r});
  }
}

std::vector<Token> SpeculativeDecoder::medusa_step(std::span<const Token> tokens, KVCache& cache, SeqId seq,
                                                   Sampler& sampler) {
  if (sampler.params().temperature > 0.0f)
    throw Error(ErrorCode::Unsupported,
                "speculative step: Medusa tree verification with sampling (temperature > 0) is not implemented; use "
                "a greedy sampler");
  check_tokens(tokens);
  const std::int64_t n = std::int64_t(tokens.size());
  std::int64_t len = detail::sync_prefix(cache, seq, tokens, "target");
  const bool have = !hidden_.empty() && hidden_cache_ == &cache && hidden_seq_ == seq && hidden_len_ == n - 1 &&
                    len == n - 1;
  try {
    if (!have) {
      hidden_.clear();
      if (n >= 2) {
        // The hidden state of t_{n-2}: feed the cache up to and including it.
        if (len == n - 1) {
          cache.truncate(seq, n - 2);
          len = n - 2;
        }
        Batch b;
        b.add(seq, tokens.subspan(std::size_t(len), std::size_t(n - 1 - len)), Want::Last);
        Logits lg;
        lg.request_hidden(true);
        target_->forward(b, cache, lg);
        hidden_.assign(lg.hidden_row(0).begin(), lg.hidden_row(0).end());
      }
    }
    std::vector<Token> toks = {tokens.back()};
    std::vector<std::int32_t> parents = {-1};
    build_tree(toks, parents);

    Batch b;
    b.add_tree(seq, toks, parents, Want::All);
    Logits lg;
    lg.request_hidden(true);
    target_->forward(b, cache, lg);

    // Greedy walk: the child whose token is the target's choice at its parent.
    std::vector<Token> hist(tokens.begin(), tokens.end());
    std::vector<std::int32_t> path = {0};
    std::vector<float> p;
    Token choice = 0;
    for (;;) {
      const std::int32_t node = path.back();
      sampler.distribution(lg.row(std::size_t(node)), hist, p);
      choice = Token(std::max_element(p.begin(), p.end()) - p.begin());
      std::int32_t next = -1;
      for (std::size_t c = std::size_t(node) + 1; c < toks.size() && next < 0; ++c)
        if (parents[c] == node && toks[c] == choice) next = std::int32_t(c);
      if (next < 0) break;
      path.push_back(next);
      hist.push_back(choice);
    }
    cache.compact(seq, n - 1, path);
    std::vector<Token> out;
    for (std::size_t i = 1; i < path.size(); ++i) out.push_back(toks[std::size_t(path[i])]);
    out.push_back(choice);

    hidden_.assign(lg.hidden_row(std::size_t(path.back())).begin(), lg.hidden_row(std::size_t(path.back())).end());
    hidden_cache_ = &cache;
    hidden_seq_ = seq;
    hidden_len_ = cache.length(seq);
    ++stats_.rounds;
    stats_.drafted += std::int64_t(toks.size()) - 1;
    stats_.accepted += std::int64_t(path.size()) - 1;
    stats_.emitted += std::int64_t(out.size());
    if (stats_.accepted_at_depth.size() < tree_.top_k.size()) stats_.accepted_at_depth.resize(tree_.top_k.size(), 0);
    for (std::size_t d = 1; d < path.size(); ++d) ++stats_.accepted_at_depth[d - 1];
    return out;
  } catch (...) {
    hidden_.clear();
    if (cache.length(seq) > n - 1) cache.truncate(seq, n - 1);
    throw;
  }
}

}  // namespace vireo
