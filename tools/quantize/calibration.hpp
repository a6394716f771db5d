// Calibration statistics of every linear's input, captured through the CPU executor's
// observer hook (model/observer.hpp) while the model runs over calibration text.
//
// Linears called one after another on the same input rows (q/k/v, gate/up) share one
// record, named after each of their weights. Per record: the number of rows seen, the mean
// |x| per channel (AWQ), a sample of rows (every `sample_every`-th row, up to `max_sample`;
// AWQ's search), and optionally H = 2 X^T X over all rows (GPTQ), accumulated per call in
// float over contiguous transposed columns and summed in double.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/observer.hpp"
#include "vireo/model.hpp"

namespace vireo::quant {

struct InputStats {
  std::int64_t cols = 0, rows_seen = 0;
  std::vector<double> abs_sum;   ///< [cols]
  std::vector<float> sample;     ///< [n_sample, cols]
  std::vector<double> h;         ///< [cols, cols] = 2 X^T X (when collected)
  std::int64_t n_sample() const noexcept { return cols ? std::int64_t(sample.size()) / cols : 0; }
  std::vector<float> act_mean() const;
};

struct CalibrationOptions {
  int ctx = 512;             ///< tokens per forward window
  bool hessian = false;      ///< accumulate H (GPTQ)
  int max_sample = 512;      ///< rows kept per record (AWQ)
  int sample_every = 7;
  const std::atomic<bool>* cancel = nullptr;
  std::function<void(float)> progress;
};

class Calibration : public detail::LinearObserver {
 public:
  explicit Calibration(CalibrationOptions o) : opts_(std::move(o)) {}
  /// Run `model` (CPU) over `tokens` in windows of opts.ctx and collect. Throws
  /// InvalidArgument when tokens are fewer than one window; Cancelled.
  void run(const Model& model, std::span<const Token> tokens);
  /// The record of the input of weight `name` (e.g. "blk.3.attn_k.weight"); nullptr if no
  /// such linear ran.
  const InputStats* find(const std::string& weight_name) const;
  std::int64_t tokens_seen() const noexcept { return tokens_; }

  void on_linear(int layer, const detail::Op& op, const float* x, std::int64_t T, std::int64_t cols) override;

 private:
  CalibrationOptions opts_;
  std::vector<std::unique_ptr<InputStats>> records_;
  std::map<std::string, InputStats*, std::less<>> by_name_;
  const float* last_x_ = nullptr;
  std::int64_t last_T_ = 0;
  int last_layer_ = -1;
  InputStats* last_ = nullptr;
  std::int64_t tokens_ = 0;
};

}  // namespace vireo::quant
