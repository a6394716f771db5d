// Token sampling: greedy, temperature, top-k, top-p, min-p, and repetition / presence /
// frequency penalties. Randomness comes from a counter-based generator (the same
// (seed, counter) always gives the same number on every platform and backend), so a run is
// reproducible from its seed and each row of a batch can carry its own stream.
//
// Order of operations (as in llama.cpp): logit bias -> penalties -> temperature -> top-k
// -> top-p -> min-p -> draw. temperature <= 0 means greedy (argmax after bias and penalties).
#pragma once
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "vireo/types.hpp"
#include "vireo/export.h"

VIREO_CXX_API_BEGIN
namespace vireo {

struct SamplerParams {
  float temperature = 1.0f;      ///< <= 0: greedy
  int top_k = 0;                 ///< 0: off
  float top_p = 1.0f;            ///< 1: off
  float min_p = 0.0f;            ///< 0: off; keep tokens with p >= min_p * p_max
  float repetition_penalty = 1.0f;  ///< 1: off; CTRL-style divide positive / multiply negative logits
  float presence_penalty = 0.0f;    ///< subtracted once from every token seen in the window
  float frequency_penalty = 0.0f;   ///< subtracted per occurrence in the window
  int penalty_last_n = 64;          ///< window of history the penalties look at (-1: all)
  std::uint64_t seed = 0;
  /// Added to a token's logit before anything else (OpenAI's logit_bias). -infinity bans the
  /// token; NaN and +infinity are refused. A token may appear more than once (the biases
  /// add up); one outside the vocabulary is refused when sampling.
  std::vector<std::pair<Token, float>> logit_bias;
};

struct Sampled {
  Token token = -1;
  /// log-probability of `token` under the distribution it was drawn from (after penalties,
  /// temperature and truncation; for greedy, the softmax of the penalised logits).
  float logprob = 0.0f;
};

/// Counter-based RNG (Philox-4x32-10): uniform float in [0, 1) for (seed, counter).
float uniform01(std::uint64_t seed, std::uint64_t counter) noexcept;

class Sampler {
 public:
  explicit Sampler(SamplerParams params = {});
  /// Sample one token from a row of logits. `history` is the sequence so far (prompt and
  /// generated tokens) for the penalties. Throws InvalidArgument on an empty row, NaN logits
  /// or bad parameters. Each call advances the stream counter by one.
  Sampled sample(std::span<const float> logits, std::span<const Token> history = {});
  /// The distribution sample() draws from for these logits and history, as probabilities
  /// per token (penalties, temperature, top-k, top-p and min-p applied; greedy: one-hot on
  /// the argmax). Does not advance the stream. Throws as sample() does.
  void distribution(std::span<const float> logits, std::span<const Token> history, std::vector<float>& probs);
  const SamplerParams& params() const noexcept { return params_; }
  /// The counter of the next draw: draw number c of a stream uses uniform01(seed, c).
  std::uint64_t counter() const noexcept { return counter_; }
  /// Account for a draw made elsewhere with counter() (the GPU sampler): the stream moves on
  /// exactly as after sample().
  void advance() noexcept { ++counter_; }
  /// Whether any penalty is on (penalties need the token history, so they run on the host).
  bool has_penalties() const noexcept {
    return params_.repetition_penalty != 1.0f || params_.presence_penalty != 0.0f ||
           params_.frequency_penalty != 0.0f;
  }
  /// Whether this sampler must run on the host (penalties or a logit bias): the GPU sampler
  /// only takes temperature, top-k, top-p and min-p.
  bool host_only() const noexcept { return has_penalties() || !params_.logit_bias.empty(); }
  void reseed(std::uint64_t seed) noexcept { params_.seed = seed; counter_ = 0; }

 private:
  SamplerParams params_;
  std::uint64_t counter_ = 0;
  std::vector<float> scratch_;       ///< [2 * vocab]: scaled logits, then their weights
  std::vector<std::int32_t> index_;  ///< penalty window scratch
  std::vector<std::uint64_t> keys_;  ///< candidates as (descending score, id) sort keys
  std::size_t count_ = 0;            ///< candidates in keys_ (after top-k)
  std::size_t sorted_ = 0;           ///< keys_[0, sorted_) is sorted and ranks first
  struct Kept {
    bool greedy = false;
    std::size_t best = 0;  ///< greedy: the argmax
    double z = 0.0;        ///< greedy: the softmax normaliser over exp(l - max); else the kept weights' sum
    std::size_t kept = 0;  ///< not greedy: keys_[0, kept) survive top-k / top-p / min-p
  };
  Kept keep_(std::span<const float> logits, std::span<const Token> history);
  void ensure_sorted_(std::size_t need);
};

}  // namespace vireo
VIREO_CXX_API_END
