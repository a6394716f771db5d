// Quality measurement: perplexity of a token sequence, and the divergence of a model's
// next-token distributions from a reference run's (what a quantization costs).
//
// Perplexity follows llama.cpp's `llama-perplexity`: the tokens are cut into windows of
// `ctx` tokens starting every `stride` tokens (default: stride = ctx, disjoint windows, as
// llama.cpp does); each window is evaluated from an empty cache, optionally with its first
// token replaced by BOS, and only the predictions of the second half of the window are scored
// (positions ctx/2 .. ctx-2 predict tokens ctx/2+1 .. ctx-1), so every scored token sees at
// least ctx/2 tokens of context. PPL = exp(mean negative log-likelihood).
//
// A run can save, for every scored position, the reference's top-k log-probabilities
// (LogProbRecord, written with save_logprobs). A later run of another model over the same
// tokens then reports the KL divergence KL(reference || model) and how often both agree on
// the most likely token, as llama.cpp's --kl-divergence does. llama.cpp saves the whole
// distribution; vireo keeps the reference's top k and lumps the rest of the vocabulary into
// one "other" outcome, which makes the figure a lower bound of the full KL (log-sum
// inequality), equal to it when the reference's mass outside its top k is zero.
#pragma once
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <vector>

#include "vireo/types.hpp"
#include "vireo/export.h"

VIREO_CXX_API_BEGIN
namespace vireo {
class Model;

struct PerplexityOptions {
  int ctx = 512;     ///< window length in tokens (>= 4)
  int stride = 0;    ///< start of one window to the next; 0 = ctx; 1..ctx
  /// Replaces the first token of every window (llama.cpp does so with BOS when the
  /// vocabulary adds one); -1 keeps the text's own token.
  Token first_token = -1;
  int top_k = 64;    ///< log-probs kept per scored position when saving a reference
  const std::atomic<bool>* cancel = nullptr;  ///< checked between windows
  std::function<void(float)> progress;        ///< fraction of windows done, in [0, 1]
};

/// The reference's top-k next-token log-probs at every scored position of one run.
struct LogProbRecord {
  int ctx = 0, stride = 0, top_k = 0, vocab = 0;
  Token first_token = -1;
  std::vector<Token> tokens;  ///< the whole evaluated sequence
  std::vector<Token> ids;     ///< [n_scored, top_k], most likely first
  std::vector<float> logp;    ///< [n_scored, top_k], natural log
  std::vector<float> target_logp;  ///< [n_scored]: log-prob of the token that followed
  std::size_t n_scored() const noexcept { return top_k ? ids.size() / std::size_t(top_k) : 0; }
};

struct PerplexityResult {
  std::int64_t n_scored = 0;   ///< predictions scored
  int n_windows = 0;
  double nll = 0.0;            ///< mean negative log-likelihood (nats)
  double nll_stderr = 0.0;     ///< standard error of that mean
  double ppl = 0.0;            ///< exp(nll)
  // Against a reference (compare_to given):
  bool has_reference = false;
  double kl = 0.0;             ///< mean KL(reference || model), nats, top-k + "other" bucket
  double kl_stderr = 0.0;
  double kl_max = 0.0;
  double top1_agreement = 0.0; ///< fraction of positions where both argmaxes agree
  double reference_ppl = 0.0;  ///< the reference run's perplexity of the same tokens
};

/// Windows `tokens` may hold with these options (0 when shorter than one window).
int perplexity_windows(std::size_t n_tokens, const PerplexityOptions& opts) noexcept;

/// Evaluate `tokens` through model.forward (any device). `save`: filled with this run's
/// top-k log-probs; `compare_to`: a reference run of the same tokens and options, for KL and
/// top-1 agreement. Throws InvalidArgument for bad options, fewer tokens than one window, an
/// out-of-range token, or a reference made from other tokens / options; Cancelled.
PerplexityResult perplexity(const Model& model, std::span<const Token> tokens, const PerplexityOptions& opts,
                            LogProbRecord* save = nullptr, const LogProbRecord* compare_to = nullptr);

/// Binary file of a LogProbRecord (little-endian, versioned). load_logprobs validates every
/// size against the file and throws Io / InvalidArgument naming the problem.
void save_logprobs(const std::filesystem::path& path, const LogProbRecord& rec);
LogProbRecord load_logprobs(const std::filesystem::path& path);

}  // namespace vireo
VIREO_CXX_API_END
