// Serving metrics: per-request latency (time to first token, inter-token latency, end-to-end),
// token counts, throughput and prefix-cache hit rate, summarised as percentiles and exported
// as JSON or in the Prometheus text exposition format (version 0.0.4). Also the roofline
// helpers that benchmarks use to print the fraction of the hardware floor they reach.
//
// A request's life: start(id, prompt_tokens) -> first_token(id) -> token(id) ... -> finish(id).
// TTFT is first_token - start, each token() adds one inter-token latency (time since the
// previous token), E2E is finish - start. TTFT and ITL samples are recorded as the events
// arrive (so in-flight requests already show up); E2E and the request count when a request
// finishes. Every sample is kept, so memory grows with the number of tokens observed (8 bytes
// per token): call reset() between benchmark phases or periodically in a long-running server.
//
// Percentiles use linear interpolation between closest ranks (Hyndman & Fan type 7, NumPy's
// default): for sorted samples x[0..n-1] and quantile q, h = (n - 1) q and
// P(q) = x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h]).
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>
#include "vireo/export.h"

VIREO_CXX_API_BEGIN
namespace vireo {

/// Summary statistics of one latency series, in seconds. All zero when count == 0.
struct Percentiles {
  std::size_t count = 0;
  double p50 = 0, p95 = 0, p99 = 0, mean = 0, max = 0;
  double sum = 0;  ///< total of the samples (Prometheus summaries export it as _sum)
};

/// Percentiles of `samples` (any order) by linear interpolation between closest ranks.
Percentiles compute_percentiles(std::vector<double> samples);
/// One quantile q in [0, 1] of `sorted` (ascending, non-empty) by the same definition.
double quantile_sorted(const std::vector<double>& sorted, double q);

/// Collects request timings. Thread-compatible, not thread-safe: a const method may run
/// concurrently with other const methods, but callers that record from several threads must
/// serialise all calls themselves (e.g. one mutex around the Metrics object).
class Metrics {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  using RequestId = std::uint64_t;

  struct Summary {
    std::size_t requests_finished = 0;
    std::size_t requests_running = 0;  ///< started, not finished
    std::uint64_t prompt_tokens = 0;   ///< over every started request
    std::uint64_t output_tokens = 0;   ///< over every request, as tokens arrive
    /// Wall time from the first start() to the latest event recorded (seconds).
    double duration_s = 0;
    double requests_per_s = 0;       ///< requests_finished / duration_s (0 if no duration)
    double output_tokens_per_s = 0;  ///< output_tokens / duration_s (0 if no duration)
    std::uint64_t cache_hit_tokens = 0;
    std::uint64_t cache_query_tokens = 0;
    double cache_hit_rate = 0;  ///< hit / query tokens (0 when nothing was queried)
    Percentiles ttft, itl, e2e;  ///< seconds
  };

  /// A request arrives with `prompt_tokens` tokens of prompt. Throws InvalidArgument if `id`
  /// is already running.
  void start(RequestId id, std::uint64_t prompt_tokens, TimePoint t);
  /// The first output token of `id` is ready. Throws InvalidArgument for an unknown id, a
  /// second first_token, or a time before the previous event of the request.
  void first_token(RequestId id, TimePoint t);
  /// Another output token. The first token() of a request with no first_token() counts as
  /// its first token. Same errors as first_token().
  void token(RequestId id, TimePoint t);
  /// The request is done (or cancelled): records its E2E latency and forgets it.
  void finish(RequestId id, TimePoint t);

  void start(RequestId id, std::uint64_t prompt_tokens) { start(id, prompt_tokens, Clock::now()); }
  void first_token(RequestId id) { first_token(id, Clock::now()); }
  void token(RequestId id) { token(id, Clock::now()); }
  void finish(RequestId id) { finish(id, Clock::now()); }

  /// A prefix-cache lookup matched `hit_tokens` of `query_tokens` prompt tokens. Throws
  /// InvalidArgument if hit_tokens > query_tokens.
  void record_cache(std::uint64_t hit_tokens, std::uint64_t query_tokens);

  /// A constant label attached to every exported series (model name, device, ...). The name
  /// must match [a-zA-Z_][a-zA-Z0-9_]*, not start with "__" and not be "quantile"; the value
  /// is any UTF-8 text (escaped on export). Setting a name again replaces its value.
  void set_label(std::string name, std::string value);

  /// Forget every sample, request and counter (labels stay).
  void reset();

  Summary summary() const;
  /// {"requests": {...}, "tokens": {...}, "throughput": {...}, "cache": {...},
  ///  "latency_s": {"ttft": {"count","p50","p95","p99","mean","max"}, "itl": ..., "e2e": ...},
  ///  "labels": {...}}. Empty series give null statistics.
  std::string to_json() const;
  /// Prometheus text format: counters <prefix>_requests_total, _prompt_tokens_total,
  /// _output_tokens_total, _prefix_cache_hit_tokens_total, _prefix_cache_query_tokens_total;
  /// gauges _requests_running, _request_throughput, _output_token_throughput,
  /// _prefix_cache_hit_rate; summaries (quantiles 0.5, 0.95, 0.99) _time_to_first_token_seconds,
  /// _inter_token_latency_seconds, _e2e_request_latency_seconds. Throws InvalidArgument if
  /// `prefix` is not a valid metric name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*).
  std::string to_prometheus(std::string_view prefix = "vireo") const;

 private:
  struct Request {
    TimePoint start;
    TimePoint last;  ///< time of the latest token (or the start)
    bool has_first = false;
  };
  Request& find(RequestId id, TimePoint t, const char* what);
  void touch(TimePoint t);

  std::map<RequestId, Request> running_;
  std::vector<double> ttft_, itl_, e2e_;
  std::uint64_t prompt_tokens_ = 0, output_tokens_ = 0;
  std::uint64_t cache_hit_ = 0, cache_query_ = 0;
  bool any_event_ = false;
  TimePoint first_event_{}, last_event_{};
  std::map<std::string, std::string> labels_;
};

/// How close a measured run came to its hardware floor. Decode is memory-bound: the floor is
/// bytes moved / memory bandwidth. Prefill is compute-bound: the floor is FLOPs / peak rate.
struct RooflineReport {
  double work = 0;              ///< bytes (decode) or FLOPs (prefill)
  double peak_rate = 0;         ///< bytes/s or FLOP/s of the hardware
  double measured_s = 0;        ///< measured time for `work`
  double floor_s = 0;           ///< work / peak_rate
  double achieved_rate = 0;     ///< work / measured_s
  double fraction = 0;          ///< floor_s / measured_s = achieved_rate / peak_rate (1 = at the floor)
  /// {"work":..,"peak_rate":..,"measured_s":..,"floor_s":..,"achieved_rate":..,"fraction":..}
  std::string to_json() const;
};

/// Throws InvalidArgument unless every argument is finite and > 0.
RooflineReport roofline(double work, double peak_rate, double measured_s);
/// Decode step: `bytes` read (weights + KV) at `bandwidth_bytes_per_s`.
inline RooflineReport decode_roofline(double bytes, double bandwidth_bytes_per_s, double measured_s) {
  return roofline(bytes, bandwidth_bytes_per_s, measured_s);
}
/// Prefill: `flops` (about 2 * params * tokens) at `flops_per_s`.
inline RooflineReport prefill_roofline(double flops, double flops_per_s, double measured_s) {
  return roofline(flops, flops_per_s, measured_s);
}

}  // namespace vireo
VIREO_CXX_API_END
