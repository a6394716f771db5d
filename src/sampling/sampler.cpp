// CPU token sampler. One call turns a row of logits into one token:
//
//   1. validate the parameters, the logits (no NaN, no +inf) and the history ids;
//   2. the logit bias is added (a token outside the row is refused);
//      penalties over the last penalty_last_n history tokens: for every distinct token t with
//      c occurrences, logit = logit > 0 ? logit / rep : logit * rep, then
//      logit -= presence + frequency * c;
//   3. temperature <= 0: greedy argmax (ties to the lowest id), logprob = log softmax;
//   4. otherwise s_i = (logit_i - max) / T (<= 0, so a tiny T underflows to -inf instead of
//      overflowing to +inf) over the candidates with a finite logit;
//   5. each candidate is packed into one 64-bit key (score bits mapped to descending unsigned
//      order, id in the low word), so integer order = larger s first, ties to the lower id;
//      top-k is nth_element + sort of the k winners, nothing else gets sorted;
//   6. without top-k, the candidates are sorted lazily: a sorted prefix is grown
//      geometrically (nth_element on the rest, sort the new chunk) only as far as top-p,
//      min-p or the draw walk needs, so a peaked distribution costs O(vocab), and the worst
//      case is one full sort;
//   7. top-p keeps the shortest sorted prefix whose probability reaches top_p; min-p keeps
//      the prefix with w_i = exp(s_i) >= min_p (p_i / p_max = w_i because w_0 = 1);
//   8. draw: u = uniform01(seed, counter), walk the kept prefix in descending order and take
//      the first token whose cumulative weight exceeds u * Z_kept (inverse CDF).
//
// Weights exp(s_i) are computed once per candidate in float; sums are in double. The counter advances once per successful call; a call
// that throws leaves the sampler unchanged.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "sampling/philox.hpp"
#include "vireo/error.hpp"
#include "vireo/sampler.hpp"

namespace vireo {

float uniform01(std::uint64_t seed, std::uint64_t counter) noexcept {
  return detail::philox_uniform01(seed, counter);
}

namespace {

// Maps a float to an unsigned integer whose unsigned order is the float's descending order
// (for non-NaN values): the usual sign-flip trick for an ascending key, then bitwise NOT.
std::uint32_t descending_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return ~u;
}

std::int32_t id_of(std::uint64_t key) { return static_cast<std::int32_t>(key & 0xffffffffu); }

void validate(const SamplerParams& p) {
  if (std::isnan(p.temperature))
    throw Error(ErrorCode::InvalidArgument, "sampler temperature is NaN");
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("sampler top_p = {} is outside (0, 1]", p.top_p));
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("sampler min_p = {} is outside [0, 1]", p.min_p));
  if (p.top_k < 0)
    throw Error(ErrorCode::InvalidArgument, fmt::format("sampler top_k = {} is negative", p.top_k));
  if (!(std::isfinite(p.repetition_penalty) && p.repetition_penalty > 0.0f))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("sampler repetition_penalty = {} is not a finite positive number",
                            p.repetition_penalty));
  if (!std::isfinite(p.presence_penalty))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("sampler presence_penalty = {} is not finite", p.presence_penalty));
  if (!std::isfinite(p.frequency_penalty))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("sampler frequency_penalty = {} is not finite", p.frequency_penalty));
  if (p.penalty_last_n < -1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("sampler penalty_last_n = {} (must be >= -1)", p.penalty_last_n));
  for (std::size_t i = 0; i < p.logit_bias.size(); ++i) {
    const auto [t, b] = p.logit_bias[i];
    if (t < 0) throw Error(ErrorCode::InvalidArgument, fmt::format("sampler logit_bias[{}]: token {} is negative", i, t));
    if (std::isnan(b) || b == std::numeric_limits<float>::infinity())
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("sampler logit_bias[{}]: bias {} for token {} is NaN or +inf", i, b, t));
  }
}

}  // namespace

Sampler::Sampler(SamplerParams params) : params_(params) { validate(params_); }

void Sampler::ensure_sorted_(std::size_t need) {
  if (need <= sorted_) return;
  auto it = [this](std::size_t i) { return keys_.begin() + static_cast<std::ptrdiff_t>(i); };
  const std::size_t target = std::min(count_, std::max({need, 2 * sorted_, std::size_t(64)}));
  if (target < count_) std::nth_element(it(sorted_), it(target), it(count_));
  std::sort(it(sorted_), it(target));
  sorted_ = target;
}

// Steps 1-7 of the header comment: validation, penalties, then either the greedy token
// (k.greedy) or the kept prefix keys_[0, k.kept) with weights in scratch_'s second half.
Sampler::Kept Sampler::keep_(std::span<const float> logits, std::span<const Token> history) {
  const SamplerParams& p = params_;
  const std::size_t n = logits.size();
  if (n == 0) throw Error(ErrorCode::InvalidArgument, "sampler got an empty row of logits");
  if (n > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
    throw Error(ErrorCode::InvalidArgument, fmt::format("sampler row of {} logits is too long", n));
  for (std::size_t i = 0; i < n; ++i) {
    const float v = logits[i];
    if (std::isnan(v) || v == std::numeric_limits<float>::infinity())
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("sampler logit {} of token {} is not a number or +inf", v, i));
  }
  for (std::size_t i = 0; i < history.size(); ++i) {
    const Token t = history[i];
    if (t < 0 || static_cast<std::size_t>(t) >= n)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("sampler history[{}] = token {} is outside the vocabulary [0, {})",
                              i, t, n));
  }

  // First half: the (penalised, then scaled) logits; second half: weights (see below).
  scratch_.resize(2 * n);
  std::copy(logits.begin(), logits.end(), scratch_.begin());

  // ---- logit bias ------------------------------------------------------------------------
  for (std::size_t i = 0; i < p.logit_bias.size(); ++i) {
    const auto [t, b] = p.logit_bias[i];
    if (static_cast<std::size_t>(t) >= n)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("sampler logit_bias[{}]: token {} is outside the vocabulary [0, {})", i, t, n));
    float& v = scratch_[static_cast<std::size_t>(t)];
    v += b;
    if (v == std::numeric_limits<float>::infinity())
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("sampler logit_bias[{}]: bias {} turned the logit of token {} into +inf", i, b, t));
  }

  // ---- penalties -----------------------------------------------------------------------
  const bool penalise = p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f ||
                        p.frequency_penalty != 0.0f;
  if (penalise && p.penalty_last_n != 0 && !history.empty()) {
    const std::size_t window = p.penalty_last_n < 0
                                   ? history.size()
                                   : std::min(history.size(), std::size_t(p.penalty_last_n));
    // Distinct tokens and counts of the window: sort a copy (the window is short) and walk
    // its runs.
    index_.resize(window);
    std::copy(history.end() - static_cast<std::ptrdiff_t>(window), history.end(), index_.begin());
    std::sort(index_.begin(), index_.begin() + static_cast<std::ptrdiff_t>(window));
    for (std::size_t i = 0; i < window;) {
      const std::int32_t t = index_[i];
      std::size_t j = i;
      while (j < window && index_[j] == t) ++j;
      const float count = static_cast<float>(j - i);
      float v = scratch_[static_cast<std::size_t>(t)];
      v = v > 0.0f ? v / p.repetition_penalty : v * p.repetition_penalty;
      v -= p.presence_penalty + p.frequency_penalty * count;
      if (std::isnan(v) || v == std::numeric_limits<float>::infinity())
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("sampler penalties turned the logit {} of token {} into {}",
                                scratch_[static_cast<std::size_t>(t)], t, v));
      scratch_[static_cast<std::size_t>(t)] = v;
      i = j;
    }
  }

  // ---- max and candidates ----------------------------------------------------------------
  float lmax = -std::numeric_limits<float>::infinity();
  std::size_t best = n;
  for (std::size_t i = 0; i < n; ++i) {
    if (scratch_[i] > lmax) {  // strict: ties keep the lowest id
      lmax = scratch_[i];
      best = i;
    }
  }
  if (best == n)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("sampler: all {} logits are -inf after the logit bias and penalties", n));

  // ---- greedy --------------------------------------------------------------------------
  if (p.temperature <= 0.0f) {
    double z = 0.0;
    for (std::size_t i = 0; i < n; ++i) z += double(std::exp(scratch_[i] - lmax));
    return {true, best, z, 0};
  }

  // ---- temperature: s_i = (l_i - max) / T over the finite candidates ------------------------
  // Each candidate becomes one 64-bit key: high word = its score mapped to an unsigned integer
  // that sorts descending, low word = its id. Plain integer order on the keys is then "larger
  // score first, ties to the lower id", and nth_element / sort run on flat integers instead of
  // through an indirect comparator.
  const float temp = p.temperature;
  keys_.resize(n);
  std::size_t count = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (scratch_[i] == -std::numeric_limits<float>::infinity()) continue;
    const float si = (scratch_[i] - lmax) / temp + 0.0f;  // + 0.0f: no -0.0
    scratch_[i] = si;
    keys_[count++] = (std::uint64_t(descending_bits(si)) << 32) | std::uint64_t(i);
  }
  const float* s = scratch_.data();
  auto it = [this](std::size_t i) { return keys_.begin() + static_cast<std::ptrdiff_t>(i); };

  sorted_ = 0;  // keys_[0, sorted_) is sorted and ranks before keys_[sorted_, count_)
  if (p.top_k > 0 && static_cast<std::size_t>(p.top_k) < count) {
    const std::size_t k = static_cast<std::size_t>(p.top_k);
    std::nth_element(it(0), it(k), it(count));
    count = k;
    std::sort(it(0), it(k));
    sorted_ = k;
  }
  count_ = count;
  // Make keys_[0, need) sorted, growing the sorted prefix at least geometrically.
  auto ensure_sorted = [this](std::size_t need) { ensure_sorted_(need); };

  // Weights w_i = exp(s_i) in (0, 1] (0 on underflow), once per candidate left after top-k,
  // stored in the second half of scratch_; sums are in double.
  float* w = scratch_.data() + n;
  double z = 0.0;  // normaliser over the candidates left after top-k
  for (std::size_t i = 0; i < count; ++i) {
    const std::int32_t id = id_of(keys_[i]);
    w[id] = std::exp(s[id]);
    z += double(w[id]);
  }
  auto weight = [&](std::size_t rank) { return double(w[id_of(keys_[rank])]); };

  // ---- top-p: shortest sorted prefix with probability mass >= top_p -----------------------
  std::size_t kept = count;
  if (p.top_p < 1.0f) {
    const double target = double(p.top_p) * z;
    double cum = 0.0;
    for (std::size_t i = 0; i < count; ++i) {
      ensure_sorted(i + 1);
      cum += weight(i);
      if (cum >= target) {
        kept = i + 1;
        break;
      }
    }
  }
  // ---- min-p: p_i >= min_p * p_max  <=>  w_i >= min_p (w of the top token is 1) ---------------
  if (p.min_p > 0.0f) {
    for (std::size_t i = 1; i < kept; ++i) {  // rank 0 has weight 1 >= min_p: always kept
      ensure_sorted(i + 1);
      if (weight(i) < double(p.min_p)) {
        kept = i;
        break;
      }
    }
  }
  double z_kept = z;
  if (kept < count) {
    ensure_sorted(kept);
    z_kept = 0.0;
    for (std::size_t i = 0; i < kept; ++i) z_kept += weight(i);
  }
  return {false, 0, z_kept, kept};
}

Sampled Sampler::sample(std::span<const float> logits, std::span<const Token> history) {
  const Kept k = keep_(logits, history);
  if (k.greedy) {
    ++counter_;
    return {static_cast<Token>(k.best), static_cast<float>(-std::log(k.z))};
  }
  const std::size_t n = logits.size(), kept = k.kept;
  const double z_kept = k.z;
  const float* s = scratch_.data();
  const float* w = scratch_.data() + n;
  auto weight = [&](std::size_t rank) { return double(w[id_of(keys_[rank])]); };
  auto ensure_sorted = [this](std::size_t need) { ensure_sorted_(need); };

  // ---- draw by inverse CDF in descending order ------------------------------------------------
  const double u = double(uniform01(params_.seed, counter_));
  const double target = u * z_kept;
  double cum = 0.0;
  // If rounding leaves cum <= target at the end (z_kept may be summed in another order), take
  // the last token with a positive weight; a weight that underflowed to 0 is never drawn.
  std::size_t pick = 0;
  bool found = false;
  for (std::size_t i = 0; i < kept && !found; ++i) {
    ensure_sorted(i + 1);
    const double wi = weight(i);
    cum += wi;
    if (wi > 0.0) pick = i;
    found = cum > target;
  }
  const std::int32_t token = id_of(keys_[pick]);
  ++counter_;
  return {token, static_cast<float>(double(s[token]) - std::log(z_kept))};
}

void Sampler::distribution(std::span<const float> logits, std::span<const Token> history, std::vector<float>& probs) {
  const Kept k = keep_(logits, history);
  const std::size_t n = logits.size();
  probs.assign(n, 0.0f);
  if (k.greedy) {
    probs[k.best] = 1.0f;
    return;
  }
  const float* w = scratch_.data() + n;
  for (std::size_t i = 0; i < k.kept; ++i) {
    const std::int32_t id = id_of(keys_[i]);
    probs[std::size_t(id)] = float(double(w[id]) / k.z);
  }
}

}  // namespace vireo
