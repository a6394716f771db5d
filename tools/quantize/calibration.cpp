// Calibration statistics through the linear observer (see calibration.hpp).
#include "quantize/calibration.hpp"

#include <fmt/format.h>

#include "model/backend.hpp"
#include "model/model_impl.hpp"
#include "model/access.hpp"
#include "vireo/error.hpp"
#include "vireo/kv_cache.hpp"

namespace vireo::quant {

std::vector<float> InputStats::act_mean() const {
  std::vector<float> m(static_cast<std::size_t>(cols));
  for (std::int64_t c = 0; c < cols; ++c) m[std::size_t(c)] = float(abs_sum[std::size_t(c)] / double(std::max<std::int64_t>(1, rows_seen)));
  return m;
}

const InputStats* Calibration::find(const std::string& weight_name) const {
  const auto it = by_name_.find(weight_name);
  return it == by_name_.end() ? nullptr : it->second;
}

void Calibration::on_linear(int layer, const detail::Op& op, const float* x, std::int64_t T, std::int64_t cols) {
  const std::string name(op.w.name);
  if (x == last_x_ && T == last_T_ && layer == last_layer_ && last_ && last_->cols == cols) {
    by_name_.emplace(name, last_);  // same rows as the previous linear: one record
    return;
  }
  InputStats* st;
  if (auto it = by_name_.find(name); it != by_name_.end()) {
    st = it->second;
  } else {
    records_.push_back(std::make_unique<InputStats>());
    st = records_.back().get();
    st->cols = cols;
    st->abs_sum.assign(std::size_t(cols), 0.0);
    if (opts_.hessian) st->h.assign(std::size_t(cols * cols), 0.0);
    by_name_.emplace(name, st);
  }
  last_x_ = x, last_T_ = T, last_layer_ = layer, last_ = st;
  for (std::int64_t t = 0; t < T; ++t) {
    const float* xt = x + t * cols;
    for (std::int64_t c = 0; c < cols; ++c) st->abs_sum[std::size_t(c)] += std::abs(double(xt[c]));
    if ((st->rows_seen + t) % opts_.sample_every == opts_.sample_every / 2 && st->n_sample() < opts_.max_sample)
      st->sample.insert(st->sample.end(), xt, xt + cols);
  }
  st->rows_seen += T;
  if (opts_.hessian) {
    std::vector<float> xt(static_cast<std::size_t>(cols * T));  // transposed: [cols, T]
    for (std::int64_t t = 0; t < T; ++t)
      for (std::int64_t c = 0; c < cols; ++c) xt[std::size_t(c * T + t)] = x[t * cols + c];
    for (std::int64_t i = 0; i < cols; ++i) {
      const float* a = &xt[std::size_t(i * T)];
      double* hi = &st->h[std::size_t(i * cols)];
      for (std::int64_t j = i; j < cols; ++j) {
        const float* b = &xt[std::size_t(j * T)];
        float acc = 0.0f;
        for (std::int64_t t = 0; t < T; ++t) acc += a[t] * b[t];
        hi[j] += 2.0 * double(acc);
      }
    }
    // Only the upper triangle is accumulated; run() mirrors it at the end.
  }
}

void Calibration::run(const Model& model, std::span<const Token> tokens) {
  const int ctx = opts_.ctx;
  const std::size_t n_windows = tokens.size() / std::size_t(ctx);
  if (ctx < 1 || n_windows == 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("calibration: {} tokens are fewer than one window of {}", tokens.size(), ctx));
  detail::Backend& be = *vireo::detail::Access::model(model).backend;
  be.set_linear_observer(this);
  struct Reset {
    detail::Backend& b;
    ~Reset() { b.set_linear_observer(nullptr); }
  } reset{be};
  KVCacheOptions kvo;
  kvo.num_blocks = (ctx + 15) / 16 + 1;
  kvo.prefix_caching = false;
  KVCache cache(model, kvo);
  Batch batch;
  Logits logits;
  for (std::size_t w = 0; w < n_windows; ++w) {
    if (opts_.cancel && opts_.cancel->load())
      throw Error(ErrorCode::Cancelled, fmt::format("calibration cancelled after {} of {} windows", w, n_windows));
    batch.clear();
    const SeqId seq = cache.add_sequence();
    batch.add(seq, tokens.subspan(w * std::size_t(ctx), std::size_t(ctx)), Last);
    last_x_ = nullptr, last_ = nullptr;
    model.forward(batch, cache, logits);
    cache.remove(seq);
    tokens_ += ctx;
    if (opts_.progress) opts_.progress(float(w + 1) / float(n_windows));
  }
  if (opts_.hessian)
    for (auto& r : records_)
      for (std::int64_t i = 0; i < r->cols; ++i)
        for (std::int64_t j = 0; j < i; ++j) r->h[std::size_t(i * r->cols + j)] = r->h[std::size_t(j * r->cols + i)];
}

}  // namespace vireo::quant
