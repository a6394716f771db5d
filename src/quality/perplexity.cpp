// Perplexity, KL divergence and top-1 agreement over windows of a token sequence
// (include/vireo/quality.hpp has the definitions). Each window is one forward of `ctx`
// tokens from an empty sequence of a private KV cache; only the scored positions ask for
// logits. Sums are in double; log-softmax uses the row's max for stability.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "vireo/error.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/model.hpp"
#include "vireo/quality.hpp"

namespace vireo {

int perplexity_windows(std::size_t n_tokens, const PerplexityOptions& opts) noexcept {
  const int stride = opts.stride > 0 ? opts.stride : opts.ctx;
  if (opts.ctx < 4 || stride < 1 || n_tokens < std::size_t(opts.ctx)) return 0;
  return int((n_tokens - std::size_t(opts.ctx)) / std::size_t(stride)) + 1;
}

namespace {

void check_options(const PerplexityOptions& o, int vocab, bool saving) {
  if (o.ctx < 4)
    throw Error(ErrorCode::InvalidArgument, fmt::format("perplexity: window of {} tokens (need at least 4)", o.ctx));
  if (o.stride < 0 || o.stride > o.ctx)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("perplexity: stride {} outside 1..{} (the window length; 0 = the window)", o.stride, o.ctx));
  if (saving && (o.top_k < 1 || o.top_k > vocab))
    throw Error(ErrorCode::InvalidArgument, fmt::format("perplexity: top_k {} outside 1..{}", o.top_k, vocab));
  if (o.first_token < -1 || o.first_token >= vocab)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("perplexity: first token {} outside the vocabulary of {}", o.first_token, vocab));
}

void check_reference(const LogProbRecord& ref, std::span<const Token> tokens, const PerplexityOptions& o,
                     int stride, int vocab, std::size_t n_scored) {
  if (ref.vocab != vocab)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("KL reference: vocabulary of {} tokens, this model has {}", ref.vocab, vocab));
  if (ref.ctx != o.ctx || ref.stride != stride || ref.first_token != o.first_token)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("KL reference: made with window {} stride {} first token {}, this run uses {} / {} / {}",
                            ref.ctx, ref.stride, ref.first_token, o.ctx, stride, o.first_token));
  if (ref.tokens.size() != tokens.size() || !std::equal(tokens.begin(), tokens.end(), ref.tokens.begin()))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("KL reference: made from another token sequence ({} tokens, this run has {})",
                            ref.tokens.size(), tokens.size()));
  if (ref.top_k < 1 || ref.n_scored() != n_scored || ref.logp.size() != ref.ids.size() ||
      ref.target_logp.size() != n_scored)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("KL reference: {} scored positions of top-{}, this run scores {}", ref.n_scored(),
                            ref.top_k, n_scored));
  for (std::size_t i = 0; i < ref.ids.size(); ++i)
    if (ref.ids[i] < 0 || ref.ids[i] >= vocab)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("KL reference: token id {} (entry {}) outside the vocabulary of {}", ref.ids[i], i, vocab));
}

struct Moments {
  double sum = 0, sum2 = 0, max = 0;
  std::int64_t n = 0;
  void add(double v) { sum += v; sum2 += v * v; max = std::max(max, v); ++n; }
  double mean() const { return n ? sum / double(n) : 0.0; }
  double stderr_() const {
    if (n < 2) return 0.0;
    const double m = mean(), var = std::max(0.0, sum2 / double(n) - m * m);
    return std::sqrt(var / double(n - 1));
  }
};

}  // namespace

PerplexityResult perplexity(const Model& model, std::span<const Token> tokens, const PerplexityOptions& opts,
                            LogProbRecord* save, const LogProbRecord* compare_to) {
  const int vocab = model.config().vocab_size;
  check_options(opts, vocab, save != nullptr);
  const int ctx = opts.ctx, stride = opts.stride > 0 ? opts.stride : ctx;
  const int n_windows = perplexity_windows(tokens.size(), opts);
  if (n_windows == 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("perplexity: {} tokens are fewer than one window of {}", tokens.size(), ctx));
  for (std::size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("perplexity: token {} at position {} outside the vocabulary of {}", tokens[i], i, vocab));
  const int first = ctx / 2, per_window = ctx - 1 - first;
  const std::size_t n_scored = std::size_t(n_windows) * std::size_t(per_window);
  if (compare_to) check_reference(*compare_to, tokens, opts, stride, vocab, n_scored);

  LogProbRecord rec;
  if (save) {
    rec.ctx = ctx, rec.stride = stride, rec.top_k = opts.top_k, rec.vocab = vocab;
    rec.first_token = opts.first_token;
    rec.tokens.assign(tokens.begin(), tokens.end());
    rec.ids.reserve(n_scored * std::size_t(opts.top_k));
    rec.logp.reserve(n_scored * std::size_t(opts.top_k));
    rec.target_logp.reserve(n_scored);
  }

  KVCacheOptions kvo;
  kvo.block_size = 16;
  kvo.num_blocks = (ctx + kvo.block_size - 1) / kvo.block_size + 1;
  kvo.prefix_caching = false;
  KVCache cache(model, kvo);

  Moments nll, kl;
  std::int64_t agree = 0;
  double ref_nll = 0.0;
  std::vector<double> lp(static_cast<std::size_t>(vocab));
  std::vector<std::int32_t> order(static_cast<std::size_t>(vocab));
  std::vector<char> in_ref(static_cast<std::size_t>(vocab), 0);
  Batch batch;
  Logits logits;
  std::size_t scored = 0;
  for (int w = 0; w < n_windows; ++w) {
    if (opts.cancel && opts.cancel->load(std::memory_order_relaxed))
      throw Error(ErrorCode::Cancelled, fmt::format("perplexity cancelled after {} of {} windows", w, n_windows));
    const std::size_t start = std::size_t(w) * std::size_t(stride);
    batch.clear();
    const SeqId seq = cache.add_sequence();
    for (int p = 0; p < ctx; ++p) {
      const Token t = (p == 0 && opts.first_token >= 0) ? opts.first_token : tokens[start + std::size_t(p)];
      batch.add(seq, t, p >= first && p < ctx - 1);
    }
    try {
      model.forward(batch, cache, logits);
    } catch (...) {
      cache.remove(seq);
      throw;
    }
    cache.remove(seq);
    for (int r = 0; r < per_window; ++r, ++scored) {
      const std::span<const float> row = logits.row(std::size_t(r));
      const Token target = tokens[start + std::size_t(first + r + 1)];
      double mx = -INFINITY;
      for (float v : row) mx = std::max(mx, double(v));
      double se = 0.0;
      for (int i = 0; i < vocab; ++i) se += std::exp(double(row[std::size_t(i)]) - mx);
      const double lse = mx + std::log(se);
      for (int i = 0; i < vocab; ++i) lp[std::size_t(i)] = double(row[std::size_t(i)]) - lse;
      nll.add(-lp[std::size_t(target)]);
      std::int32_t argmax = 0;
      for (int i = 1; i < vocab; ++i)
        if (lp[std::size_t(i)] > lp[std::size_t(argmax)]) argmax = i;
      if (save) {
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + opts.top_k, order.end(), [&](std::int32_t a, std::int32_t b) {
          return lp[std::size_t(a)] > lp[std::size_t(b)] || (lp[std::size_t(a)] == lp[std::size_t(b)] && a < b);
        });
        for (int k = 0; k < opts.top_k; ++k) {
          rec.ids.push_back(order[std::size_t(k)]);
          rec.logp.push_back(float(lp[std::size_t(order[std::size_t(k)])]));
        }
        rec.target_logp.push_back(float(lp[std::size_t(target)]));
      }
      if (compare_to) {
        const std::size_t K = std::size_t(compare_to->top_k), off = scored * K;
        const Token* ids = compare_to->ids.data() + off;
        const float* rlp = compare_to->logp.data() + off;
        double d = 0.0, p_top = 0.0;
        for (std::size_t k = 0; k < K; ++k) {
          const double p = std::exp(double(rlp[k]));
          p_top += p;
          d += p * (double(rlp[k]) - lp[std::size_t(ids[k])]);
          in_ref[std::size_t(ids[k])] = 1;
        }
        double q_rest = 0.0;
        for (int i = 0; i < vocab; ++i)
          if (!in_ref[std::size_t(i)]) q_rest += std::exp(lp[std::size_t(i)]);
        for (std::size_t k = 0; k < K; ++k) in_ref[std::size_t(ids[k])] = 0;
        // No "other" outcome when the reference kept the whole vocabulary.
        const double p_rest = K >= std::size_t(vocab) ? 0.0 : std::max(0.0, 1.0 - p_top);
        if (p_rest > 0.0) d += p_rest * (std::log(p_rest) - std::log(std::max(q_rest, 1e-300)));
        kl.add(std::max(0.0, d));
        agree += ids[0] == argmax;
        ref_nll -= double(compare_to->target_logp[scored]);
      }
    }
    if (opts.progress) opts.progress(float(w + 1) / float(n_windows));
  }

  PerplexityResult res;
  res.n_scored = nll.n;
  res.n_windows = n_windows;
  res.nll = nll.mean();
  res.nll_stderr = nll.stderr_();
  res.ppl = std::exp(res.nll);
  if (compare_to) {
    res.has_reference = true;
    res.kl = kl.mean();
    res.kl_stderr = kl.stderr_();
    res.kl_max = kl.max;
    res.top1_agreement = double(agree) / double(nll.n);
    res.reference_ppl = std::exp(ref_nll / double(nll.n));
  }
  if (save) *save = std::move(rec);
  return res;
}

}  // namespace vireo
