// Scheduler: a small, reusable batching loop over one Model and one KVCache. Callers own the
// loop: they submit() requests whenever they arrive and call step() as often as they like;
// each step() runs exactly ONE Model::forward and returns the tokens it produced (for
// streaming) and the requests that finished.
//
// Every request keeps `tokens` = prompt + generated so far and `cached` = how many of them are
// in its KV-cache sequence; tokens[cached..] are pending. A decode is a request with one
// pending token (the last one sampled), a prefill chunk is a slice of a longer pending range,
// and a request resumed after recompute-preemption is just a request whose pending range is
// its whole history again, so prefill, chunked prefill, decode and recompute are one case.
// A step wants logits only for a request whose pending range is fed to its end.
//
// Continuous batching (BatchingMode::Continuous), per step:
//   1. resume preempted requests first: swapped ones come back with KVCache::swap_in when the
//      pool has room for them plus one block per running request; recompute-preempted ones
//      sit at the front of the waiting queue;
//   2. take one token from every running decode (oldest admission first), then feed pending
//      prefill chunks of running requests, then admit waiting requests FCFS, while the
//      per-step token budget (max_batch_tokens) and the free blocks last (chunked prefill:
//      a long prompt is split over several steps and mixed with other requests' decodes).
//      Admission uses KVCache::add_sequence(tokens, &reused) when prefix caching is on, so
//      a cached prefix is skipped;
//   3. if the running decodes alone need more blocks than the pool has, preempt the most
//      recently admitted running request (PreemptionMode::Swap: KVCache::swap_out to host
//      memory; PreemptionMode::Recompute: drop its sequence and re-prefill prompt +
//      generated tokens later) and try again;
//   4. one forward; sample each logits row with the request's own Sampler (its own
//      SamplerParams and seeded RNG stream); a request finishes at max_new_tokens or at an
//      end-of-generation token (Tokenizer::is_eog, or Request::stop_tokens) and its
//      sequence is removed, freeing blocks for the next step.
// Static (dynamic) batching (BatchingMode::Static), for comparison: when nothing is running,
// take up to max_running waiting requests FCFS whose worst case fits the free blocks,
// prefill them (same token budget) and decode until ALL of them have finished; nothing new
// joins until the whole batch is done. With SchedulerOptions::static_padding (default) the
// step computes what a static-batching framework's rectangular [B, max prompt + max new]
// batch computes: every prompt is padded to the batch's longest prompt (the pad tokens go
// to a throwaway sequence per row, so the row's own output is unchanged) and every finished
// row keeps decoding a pad token until the batch ends; SchedulerStats::padding_tokens
// counts them. Without it, finished rows sit idle for free (a lower bound on static
// batching's cost). The worst case reserved is the whole rectangle, so static batching
// never preempts.
//
// Greedy requests (and seeded sampled ones) produce exactly the tokens of a run alone
// whenever the backend computes a row the same way whatever else the step holds. Neither
// backend guarantees that bit for bit: the CPU's f32 matmul takes a row through a two-token
// tile, a single-token dot or (from 24 tokens) a 16-row panel depending on its place in the
// step, and the fused quantized decode path sums in another order for small steps; the
// results differ in the last bits, which can flip a near-tie between two tokens (rare;
// vireo-bench stress counts such flips and checks that each is one).
//
// With SchedulerOptions::metrics set, every request is recorded in vireo::Metrics: start at
// its arrival time (submit), first_token / token as tokens are sampled, finish when it ends,
// and its prompt's prefix-cache hit at first admission.
//
// Overload control. cancel(id) ends a request at once (between steps, where the caller is):
// its blocks are freed and its FinishedRequest (FinishReason::Cancelled, the tokens sampled
// so far) is reported by the next step(). A Request::deadline is checked at the start of
// every step() for waiting, running and swapped requests alike: a request still waiting at
// its deadline would only produce a late answer, and a running one is using blocks someone
// else could use; it ends with FinishReason::Deadline and its partial output. So a request
// may overrun its deadline by at most one step. SchedulerOptions::max_waiting bounds the
// waiting queue: submit() throws Error(ErrorCode::Overloaded) instead of queueing, and the
// request is not in the scheduler (a server maps this to HTTP 429). Every submitted request
// ends exactly once, in exactly one FinishedRequest, with one of the four reasons.
//
// Text and stop strings. A request with stream_text or stop_strings is decoded as it is
// sampled (the model's tokenizer, special tokens skipped) through a TextStream: each
// TokenEvent::text is the text that became final with that token, and text that could still
// be the beginning of a stop string (or an incomplete UTF-8 character) is held back until a
// later token settles it. When a stop string completes, the request ends with
// FinishReason::Stop; its text ends just before the stop string (the stop string and
// anything after it are never streamed, as in OpenAI's API), while `output` keeps every
// sampled token, including those that spelled the stop string. A request that ends by
// length or an end-of-generation token releases its held-back tail with its last event. So
// the concatenated TokenEvent::text of a request equals its FinishedRequest::text, except
// for a cancelled or expired request, whose held-back tail appears only in
// FinishedRequest::text. Stop tokens and end-of-generation tokens are matched on tokens; a
// stop token's text stays in the text, an end-of-generation token has none.
//
// Errors: submit() throws InvalidArgument for an empty prompt, a duplicate id, max_new_tokens
// < 1, a request longer than the model's context, one that could not fit the whole pool
// even alone, bad sampling parameters or a logit_bias token outside the vocabulary, an
// empty stop string, or text wanted from a model without a tokenizer; Overloaded past
// max_waiting. step() propagates errors from forward/sampling (the scheduler is then in an
// unspecified but destructible state). One Scheduler is used by one thread at a time; the
// KVCache must outlive it and should not be used by others while it runs (other sequences
// in it only reduce the room the scheduler sees).
#pragma once
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "vireo/batch.hpp"
#include "vireo/metrics.hpp"
#include "vireo/model.hpp"
#include "vireo/sampler.hpp"
#include "vireo/types.hpp"
#include "vireo/export.h"

VIREO_CXX_API_BEGIN
namespace vireo {
class KVCache;

enum class BatchingMode { Continuous, Static };
enum class PreemptionMode { Swap, Recompute };
/// Why a request ended: max_new_tokens reached; an end-of-generation token, a stop token or
/// a stop string; Scheduler::cancel; its deadline passed.
enum class FinishReason { Length, Stop, Cancelled, Deadline };
/// "length", "stop", "cancelled", "deadline".
const char* to_string(FinishReason r) noexcept;

struct Request {
  std::uint64_t id = 0;  ///< caller's id, unique among the requests the scheduler holds
  std::vector<Token> prompt;
  int max_new_tokens = 64;
  SamplerParams sampling{};   ///< temperature <= 0: greedy; set seed per request for distinct streams
  bool stop_at_eog = true;    ///< stop at the model tokenizer's end-of-generation tokens
  std::vector<Token> stop_tokens;  ///< more tokens that end the request (kept in the output)
  /// Text that ends the request (OpenAI's `stop`; see "Text and stop strings" above). Needs
  /// the model's tokenizer; implies stream_text.
  std::vector<std::string> stop_strings;
  /// Decode the output as it is sampled: TokenEvent::text and FinishedRequest::text.
  bool stream_text = false;
  /// The request ends with FinishReason::Deadline at the first step boundary at or after
  /// this time, whether it is waiting, running or swapped (default: never).
  Metrics::TimePoint deadline = Metrics::TimePoint::max();
};

struct SchedulerOptions {
  BatchingMode mode = BatchingMode::Continuous;
  PreemptionMode preemption = PreemptionMode::Swap;
  int max_batch_tokens = 256;  ///< token budget of one forward (decodes + prefill chunks)
  int max_running = 32;        ///< sequences in flight; the static batch size B. <= max_batch_tokens
  /// Admit with add_sequence(tokens, &reused) so cached prefixes are skipped (needs a cache
  /// built with KVCacheOptions::prefix_caching).
  bool prefix_caching = true;
  /// Static mode: compute the rectangle's padding as static batching does (see above).
  bool static_padding = true;
  /// Admission limit: submit() refuses a request with ErrorCode::Overloaded while this many
  /// are waiting (never admitted, or preempted by recompute). 0: no limit.
  std::size_t max_waiting = 0;
  Metrics* metrics = nullptr;  ///< optional; not owned
};

/// One sampled token (a step returns them in batch order, for streaming).
struct TokenEvent {
  std::uint64_t id = 0;
  Token token = -1;
  float logprob = 0.0f;
  bool first = false;     ///< the request's first output token
  bool finished = false;  ///< the request ended with this token
  /// Text released with this token (stream_text / stop_strings requests; may be empty while
  /// text is held back). The last event of a request carries the flushed tail.
  std::string text;
};

struct FinishedRequest {
  std::uint64_t id = 0;
  std::vector<Token> prompt;
  std::vector<Token> output;  ///< every sampled token (a stop string's tokens included)
  /// The output text without the stop string and what followed it (stream_text /
  /// stop_strings requests; "" otherwise).
  std::string text;
  FinishReason reason = FinishReason::Length;
  int preemptions = 0;
  std::int64_t cached_prompt_tokens = 0;  ///< prompt tokens served by the prefix cache at first admission
  Metrics::TimePoint arrival{}, first_token{}, finish{};
};

struct StepResult {
  std::vector<TokenEvent> tokens;
  std::vector<FinishedRequest> finished;
  int batch_tokens = 0;    ///< tokens fed to the forward
  int decode_tokens = 0;   ///< of those, single-token decodes
  int prefill_tokens = 0;  ///< of those, prompt (or recompute) chunk tokens
  int preempted = 0;       ///< requests preempted in this step
  int resumed = 0;         ///< swapped requests brought back in this step
  int admitted = 0;        ///< waiting requests that got a sequence in this step
};

struct SchedulerStats {
  std::int64_t steps = 0;
  std::int64_t forward_tokens = 0;
  std::int64_t prefill_tokens = 0;
  std::int64_t decode_tokens = 0;
  std::int64_t output_tokens = 0;
  std::int64_t preemptions_swap = 0;
  std::int64_t preemptions_recompute = 0;
  std::int64_t recomputed_tokens = 0;  ///< tokens re-prefilled because of recompute preemption
  std::int64_t idle_slot_steps = 0;    ///< static batching: finished rows waiting for their batch
  std::int64_t padding_tokens = 0;     ///< static batching: pad tokens computed (static_padding)
  std::int64_t finished = 0;   ///< requests that ended, for any reason
  std::int64_t cancelled = 0;  ///< of those, by cancel()
  std::int64_t deadline = 0;   ///< of those, past their deadline
  std::int64_t rejected = 0;   ///< submit() calls refused by max_waiting (never counted above)
};

class Scheduler {
 public:
  /// `model` and `cache` must outlive the scheduler. Throws InvalidArgument for
  /// max_batch_tokens < 1, max_running < 1 or max_running > max_batch_tokens.
  Scheduler(const Model& model, KVCache& cache, SchedulerOptions opts = {});
  Scheduler(Scheduler&&) noexcept;
  Scheduler& operator=(Scheduler&&) noexcept;
  ~Scheduler();

  /// Queue a request (FCFS). `arrival` is its arrival time for the metrics (default: now).
  /// Throws Error(ErrorCode::Overloaded) when max_waiting requests are waiting (nothing is
  /// queued; a server answers 429), InvalidArgument for a bad request (see Errors above).
  void submit(Request req, Metrics::TimePoint arrival = Metrics::Clock::now());
  /// End request `id` now: its KV sequence (resident or swapped) is freed at once (the
  /// scheduler is between steps) and its FinishedRequest, reason Cancelled with the tokens
  /// generated so far, comes in the next step()'s `finished`. The id stays taken until then.
  /// Returns false, changing nothing, for an id that is unknown, already finished or
  /// already cancelled.
  bool cancel(std::uint64_t id);
  /// End the requests past their deadline, then run one forward over the scheduled tokens
  /// (none when nothing is left to run). Returns an empty result when idle().
  StepResult step();
  /// Step until every submitted request has finished; returns them in finishing order.
  std::vector<FinishedRequest> run_to_completion();

  /// Nothing waiting, running or swapped, and no cancelled / expired request left to report.
  bool idle() const noexcept;
  std::size_t num_waiting() const noexcept;  ///< not admitted, or preempted by recompute
  std::size_t num_running() const noexcept;  ///< holding a resident sequence
  std::size_t num_swapped() const noexcept;  ///< preempted by swap
  const SchedulerStats& stats() const noexcept;
  const SchedulerOptions& options() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vireo
VIREO_CXX_API_END
