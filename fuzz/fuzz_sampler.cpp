// Fuzz target: the Sampler on fuzzed parameters, logits and history. The input holds the
// parameters as raw values (floats may be NaN, infinite, negative), then a vocabulary size,
// the logits (raw floats, so NaN and infinities occur) and a history of token ids (some out
// of range). A bad parameter or logit must be refused with vireo::Error (InvalidArgument);
// otherwise sample() returns an id inside the row with a finite log-probability <= 0 whose
// token has non-zero probability under distribution() (and log-probability logprob; greedy:
// probability 1), whose probabilities are finite, non-negative and sum to 1; the same seed and counter draw the same token again.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.hpp"
#include "vireo/error.hpp"
#include "vireo/sampler.hpp"

using namespace vireo;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Bytes in(data, size);
  SamplerParams p;
  const std::uint8_t on = in.byte();  // which parameters the input sets (others stay default)
  if (on & 1) p.temperature = in.take<float>();
  if (on & 2) p.top_k = in.take<std::int32_t>();
  if (on & 4) p.top_p = in.take<float>();
  if (on & 8) p.min_p = in.take<float>();
  if (on & 16) p.repetition_penalty = in.take<float>();
  if (on & 32) p.presence_penalty = in.take<float>();
  if (on & 64) p.frequency_penalty = in.take<float>();
  if (on & 128) p.penalty_last_n = in.take<std::int32_t>();
  p.seed = in.take<std::uint64_t>();
  const int vocab = in.range(1, 600);
  std::vector<float> logits(static_cast<std::size_t>(vocab));
  const std::uint8_t style = in.byte();
  for (auto& l : logits) {
    // Raw floats (any bit pattern) or small integers (ties, ranks near the cut-offs).
    l = (style & 1) ? in.take<float>() : float(std::int8_t(in.byte())) / 8.0f;
  }
  std::vector<Token> history;
  while (!in.empty() && history.size() < 256) history.push_back(Token(in.range(-2, vocab + 1)));

  Sampler s(SamplerParams{});
  try {
    s = Sampler(p);
  } catch (const Error& e) {
    VIREO_FUZZ_CHECK(e.code() == ErrorCode::InvalidArgument, e.what());
    return 0;
  }
  Sampled got;
  try {
    got = s.sample(logits, history);
  } catch (const Error& e) {
    VIREO_FUZZ_CHECK(e.code() == ErrorCode::InvalidArgument, e.what());
    return 0;
  }
  VIREO_FUZZ_CHECK(got.token >= 0 && got.token < vocab, "token " + std::to_string(got.token) + " outside the row");
  VIREO_FUZZ_CHECK(std::isfinite(got.logprob) && got.logprob <= 1e-6f, "logprob " + std::to_string(got.logprob));
  std::vector<float> probs;
  s.distribution(logits, history, probs);
  VIREO_FUZZ_CHECK(probs.size() == logits.size(), "distribution size");
  double sum = 0;
  for (float q : probs) {
    VIREO_FUZZ_CHECK(std::isfinite(q) && q >= 0.0f && q <= 1.0f + 1e-6f, "probability " + std::to_string(q));
    sum += q;
  }
  VIREO_FUZZ_CHECK(std::fabs(sum - 1.0) < 1e-3, "probabilities sum to " + std::to_string(sum));
  VIREO_FUZZ_CHECK(probs[std::size_t(got.token)] > 0.0f, "sampled a token of probability 0");
  if (p.temperature <= 0.0f)  // greedy: one-hot on the token (logprob is the softmax's, not 0)
    VIREO_FUZZ_CHECK(probs[std::size_t(got.token)] == 1.0f, "greedy distribution is not one-hot on the token");
  else
    VIREO_FUZZ_CHECK(std::fabs(std::log(double(probs[std::size_t(got.token)])) - got.logprob) < 1e-2 + 1e-3 * std::fabs(got.logprob),
                   "logprob " + std::to_string(got.logprob) + " vs log p " + std::to_string(std::log(probs[std::size_t(got.token)])));
  Sampler again(p);
  VIREO_FUZZ_CHECK(again.sample(logits, history).token == got.token, "the same seed drew another token");
  return 0;
}
