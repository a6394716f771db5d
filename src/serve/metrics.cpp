// vireo::Metrics: request lifecycle bookkeeping, percentile summaries, and the JSON and
// Prometheus text exporters; plus the roofline helpers.
//
// Each running request keeps its start time and the time of its latest token in a map keyed
// by request id; latency samples go into three flat vectors (seconds, double). summary()
// copies and sorts each vector (O(n log n)) and reads the quantiles by linear interpolation
// between closest ranks. Exporters format doubles with fmt's shortest round-trip form;
// non-finite values become null in JSON and NaN / +Inf / -Inf in Prometheus.
#include "vireo/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "vireo/error.hpp"

namespace vireo {

// ---- percentiles -----------------------------------------------------------------------

double quantile_sorted(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) throw Error(ErrorCode::InvalidArgument, "quantile of an empty series");
  if (!(q >= 0.0 && q <= 1.0))
    throw Error(ErrorCode::InvalidArgument, fmt::format("quantile q = {} is outside [0, 1]", q));
  const double h = double(sorted.size() - 1) * q;
  const std::size_t lo = static_cast<std::size_t>(std::floor(h));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (h - double(lo)) * (sorted[hi] - sorted[lo]);
}

Percentiles compute_percentiles(std::vector<double> samples) {
  Percentiles p;
  if (samples.empty()) return p;
  std::sort(samples.begin(), samples.end());
  p.count = samples.size();
  p.p50 = quantile_sorted(samples, 0.50);
  p.p95 = quantile_sorted(samples, 0.95);
  p.p99 = quantile_sorted(samples, 0.99);
  p.sum = std::accumulate(samples.begin(), samples.end(), 0.0);
  p.mean = p.sum / double(p.count);
  p.max = samples.back();
  return p;
}

// ---- lifecycle ----------------------------------------------------------------------------

namespace {

double seconds(Metrics::TimePoint a, Metrics::TimePoint b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

void Metrics::touch(TimePoint t) {
  if (!any_event_) {
    first_event_ = last_event_ = t;
    any_event_ = true;
    return;
  }
  first_event_ = std::min(first_event_, t);
  last_event_ = std::max(last_event_, t);
}

Metrics::Request& Metrics::find(RequestId id, TimePoint t, const char* what) {
  auto it = running_.find(id);
  if (it == running_.end())
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("metrics: {} for request {}, which is not running", what, id));
  if (t < it->second.last)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("metrics: {} for request {} at {} s before its previous event", what,
                            id, seconds(t, it->second.last)));
  return it->second;
}

void Metrics::start(RequestId id, std::uint64_t prompt_tokens, TimePoint t) {
  if (running_.count(id))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("metrics: start of request {}, which is already running", id));
  running_.emplace(id, Request{t, t, false});
  prompt_tokens_ += prompt_tokens;
  touch(t);
}

void Metrics::first_token(RequestId id, TimePoint t) {
  Request& r = find(id, t, "first_token");
  if (r.has_first)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("metrics: second first_token for request {}", id));
  ttft_.push_back(seconds(r.start, t));
  r.has_first = true;
  r.last = t;
  ++output_tokens_;
  touch(t);
}

void Metrics::token(RequestId id, TimePoint t) {
  Request& r = find(id, t, "token");
  if (!r.has_first) {
    first_token(id, t);
    return;
  }
  itl_.push_back(seconds(r.last, t));
  r.last = t;
  ++output_tokens_;
  touch(t);
}

void Metrics::finish(RequestId id, TimePoint t) {
  Request& r = find(id, t, "finish");
  e2e_.push_back(seconds(r.start, t));
  running_.erase(id);
  touch(t);
}

void Metrics::record_cache(std::uint64_t hit_tokens, std::uint64_t query_tokens) {
  if (hit_tokens > query_tokens)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("metrics: cache hit of {} tokens out of a query of {} tokens",
                            hit_tokens, query_tokens));
  cache_hit_ += hit_tokens;
  cache_query_ += query_tokens;
}

namespace {

bool valid_label_name(std::string_view s) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!(alpha || (i > 0 && c >= '0' && c <= '9'))) return false;
  }
  return true;
}

bool valid_metric_prefix(std::string_view s) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!(alpha || (i > 0 && c >= '0' && c <= '9'))) return false;
  }
  return true;
}

}  // namespace

void Metrics::set_label(std::string name, std::string value) {
  if (!valid_label_name(name) || name.rfind("__", 0) == 0 || name == "quantile")
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("metrics: label name '{}' is not a valid Prometheus label name", name));
  labels_[std::move(name)] = std::move(value);
}

void Metrics::reset() {
  running_.clear();
  ttft_.clear();
  itl_.clear();
  e2e_.clear();
  prompt_tokens_ = output_tokens_ = 0;
  cache_hit_ = cache_query_ = 0;
  any_event_ = false;
}

Metrics::Summary Metrics::summary() const {
  Summary s;
  s.requests_finished = e2e_.size();
  s.requests_running = running_.size();
  s.prompt_tokens = prompt_tokens_;
  s.output_tokens = output_tokens_;
  s.duration_s = any_event_ ? seconds(first_event_, last_event_) : 0.0;
  if (s.duration_s > 0) {
    s.requests_per_s = double(s.requests_finished) / s.duration_s;
    s.output_tokens_per_s = double(s.output_tokens) / s.duration_s;
  }
  s.cache_hit_tokens = cache_hit_;
  s.cache_query_tokens = cache_query_;
  s.cache_hit_rate = cache_query_ ? double(cache_hit_) / double(cache_query_) : 0.0;
  s.ttft = compute_percentiles(ttft_);
  s.itl = compute_percentiles(itl_);
  s.e2e = compute_percentiles(e2e_);
  return s;
}

// ---- JSON ---------------------------------------------------------------------------------

namespace {

std::string json_number(double v) { return std::isfinite(v) ? fmt::format("{}", v) : "null"; }

// RFC 8259 string: quote, backslash and control characters escaped; other bytes (UTF-8)
// pass through unchanged.
std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20)
          out += fmt::format("\\u{:04x}", unsigned(c));
        else
          out += ch;
    }
  }
  out += '"';
  return out;
}

std::string json_percentiles(const Percentiles& p) {
  if (p.count == 0)
    return R"({"count":0,"p50":null,"p95":null,"p99":null,"mean":null,"max":null})";
  return fmt::format(R"({{"count":{},"p50":{},"p95":{},"p99":{},"mean":{},"max":{}}})", p.count,
                     json_number(p.p50), json_number(p.p95), json_number(p.p99),
                     json_number(p.mean), json_number(p.max));
}

}  // namespace

std::string Metrics::to_json() const {
  const Summary s = summary();
  std::string labels = "{";
  for (const auto& [k, v] : labels_) {
    if (labels.size() > 1) labels += ',';
    labels += json_string(k) + ':' + json_string(v);
  }
  labels += '}';
  return fmt::format(
      R"({{"requests":{{"finished":{},"running":{}}},)"
      R"("tokens":{{"prompt":{},"output":{}}},)"
      R"("duration_s":{},)"
      R"("throughput":{{"requests_per_s":{},"output_tokens_per_s":{}}},)"
      R"("cache":{{"hit_tokens":{},"query_tokens":{},"hit_rate":{}}},)"
      R"("latency_s":{{"ttft":{},"itl":{},"e2e":{}}},)"
      R"("labels":{}}})",
      s.requests_finished, s.requests_running, s.prompt_tokens, s.output_tokens,
      json_number(s.duration_s), json_number(s.requests_per_s), json_number(s.output_tokens_per_s),
      s.cache_hit_tokens, s.cache_query_tokens, json_number(s.cache_hit_rate),
      json_percentiles(s.ttft), json_percentiles(s.itl), json_percentiles(s.e2e), labels);
}

// ---- Prometheus ---------------------------------------------------------------------------

namespace {

std::string prom_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

// Label values escape backslash, double quote and line feed (exposition format 0.0.4).
std::string prom_label_value(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace

std::string Metrics::to_prometheus(std::string_view prefix) const {
  if (!valid_metric_prefix(prefix))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("metrics: '{}' is not a valid Prometheus metric name prefix", prefix));
  const Summary s = summary();
  const std::string pre(prefix);
  // Constant labels, "a=\"x\",b=\"y\"", joined with any per-sample label.
  std::string constant;
  for (const auto& [k, v] : labels_) {
    if (!constant.empty()) constant += ',';
    constant += k + "=\"" + prom_label_value(v) + '"';
  }
  auto braces = [&](const std::string& extra) {
    std::string all = constant;
    if (!extra.empty()) all += (all.empty() ? "" : ",") + extra;
    return all.empty() ? std::string() : "{" + all + "}";
  };
  std::string out;
  auto scalar = [&](const char* name, const char* type, const char* help, double v) {
    out += fmt::format("# HELP {}_{} {}\n# TYPE {}_{} {}\n{}_{}{} {}\n", pre, name, help, pre, name,
                       type, pre, name, braces(""), prom_number(v));
  };
  auto summary_series = [&](const char* name, const char* help, const Percentiles& p) {
    out += fmt::format("# HELP {}_{} {}\n# TYPE {}_{} summary\n", pre, name, help, pre, name);
    const double nan = std::nan("");
    const std::pair<const char*, double> qs[] = {
        {"0.5", p.count ? p.p50 : nan}, {"0.95", p.count ? p.p95 : nan}, {"0.99", p.count ? p.p99 : nan}};
    for (const auto& [q, v] : qs)
      out += fmt::format("{}_{}{} {}\n", pre, name, braces(fmt::format("quantile=\"{}\"", q)),
                         prom_number(v));
    out += fmt::format("{}_{}_sum{} {}\n", pre, name, braces(""), prom_number(p.sum));
    out += fmt::format("{}_{}_count{} {}\n", pre, name, braces(""), p.count);
  };
  scalar("requests_total", "counter", "Requests finished.", double(s.requests_finished));
  scalar("prompt_tokens_total", "counter", "Prompt tokens of started requests.",
         double(s.prompt_tokens));
  scalar("output_tokens_total", "counter", "Output tokens generated.", double(s.output_tokens));
  scalar("prefix_cache_hit_tokens_total", "counter", "Prompt tokens found in the prefix cache.",
         double(s.cache_hit_tokens));
  scalar("prefix_cache_query_tokens_total", "counter",
         "Prompt tokens looked up in the prefix cache.", double(s.cache_query_tokens));
  scalar("requests_running", "gauge", "Requests started and not finished.",
         double(s.requests_running));
  scalar("request_throughput", "gauge", "Finished requests per second over the observed span.",
         s.requests_per_s);
  scalar("output_token_throughput", "gauge", "Output tokens per second over the observed span.",
         s.output_tokens_per_s);
  scalar("prefix_cache_hit_rate", "gauge", "Fraction of looked-up prompt tokens that hit.",
         s.cache_hit_rate);
  summary_series("time_to_first_token_seconds", "Time from request start to its first token.",
                 s.ttft);
  summary_series("inter_token_latency_seconds", "Time between consecutive output tokens.", s.itl);
  summary_series("e2e_request_latency_seconds", "Time from request start to finish.", s.e2e);
  return out;
}

// ---- roofline -----------------------------------------------------------------------------

RooflineReport roofline(double work, double peak_rate, double measured_s) {
  auto check = [](double v, const char* name) {
    if (!(std::isfinite(v) && v > 0))
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("roofline: {} = {} must be finite and > 0", name, v));
  };
  check(work, "work");
  check(peak_rate, "peak_rate");
  check(measured_s, "measured_s");
  RooflineReport r;
  r.work = work;
  r.peak_rate = peak_rate;
  r.measured_s = measured_s;
  r.floor_s = work / peak_rate;
  r.achieved_rate = work / measured_s;
  r.fraction = r.floor_s / measured_s;
  return r;
}

std::string RooflineReport::to_json() const {
  return fmt::format(
      R"({{"work":{},"peak_rate":{},"measured_s":{},"floor_s":{},"achieved_rate":{},"fraction":{}}})",
      json_number(work), json_number(peak_rate), json_number(measured_s), json_number(floor_s),
      json_number(achieved_rate), json_number(fraction));
}

}  // namespace vireo
