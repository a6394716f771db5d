// The step profiler (profiler.hpp).
#include "backend/profiler.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include <fmt/format.h>

#include "cuda_api.hpp"
#include "vireo/log.hpp"

namespace vireo::detail::cuda_backend {

StepProfiler::~StepProfiler() {
  report();
  for (void* e : events_) cudaEventDestroy(static_cast<cudaEvent_t>(e));
}

void StepProfiler::mark(const char* stage, void* stream) {
  if (!on_) return;
  if (!stage) marks_.clear();
  if (events_.size() <= marks_.size()) {
    cudaEvent_t e = nullptr;
    cuda::check(cudaEventCreate(&e), "cudaEventCreate");
    events_.push_back(e);
  }
  cuda::check(cudaEventRecord(static_cast<cudaEvent_t>(events_[marks_.size()]), static_cast<cudaStream_t>(stream)),
              "cudaEventRecord");
  marks_.push_back(stage ? stage : "");
}

void StepProfiler::collect(int n_tokens) {
  if (!on_ || marks_.size() < 2) return;
  auto ev = [&](std::size_t i) { return static_cast<cudaEvent_t>(events_[i]); };
  cuda::check(cudaEventSynchronize(ev(marks_.size() - 1)), "profile sync");
  Profile& pr = prof_[n_tokens];
  for (std::size_t i = 1; i < marks_.size(); ++i) {
    float ms = 0.0f;
    cuda::check(cudaEventElapsedTime(&ms, ev(i - 1), ev(i)), "cudaEventElapsedTime");
    auto it = std::find_if(pr.stages.begin(), pr.stages.end(), [&](const auto& e) { return e.first == marks_[i]; });
    if (it == pr.stages.end())
      pr.stages.emplace_back(marks_[i], double(ms));
    else
      it->second += ms;
  }
  ++pr.steps;
  marks_.clear();
}

void StepProfiler::report() const {
  for (const auto& [n, pr] : prof_) {
    double total = 0;
    for (const auto& e : pr.stages) total += e.second;
    std::string text = fmt::format("vireo cuda profile: {} eager steps of {} tokens, {:.3f} ms per step", pr.steps, n,
                                   total / pr.steps);
    for (const auto& e : pr.stages)
      text += fmt::format("\n  {:<20} {:9.3f} ms/step  {:5.1f}%", e.first, e.second / pr.steps, 100.0 * e.second / total);
    log(LogLevel::Info, text);
  }
}

}  // namespace vireo::detail::cuda_backend
