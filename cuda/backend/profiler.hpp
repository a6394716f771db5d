// The step profiler (VIREO_CUDA_PROFILE=1, docs/TUNING.md): where an eager step's GPU time
// goes.
//
// CUDA graphs are off and an event is recorded after every stage of a step; the events break
// the overlap of programmatic dependent launch, so the stages add up to a little more than
// an unprofiled step. Totals per stage (summed over layers and steps) go to the log sink
// (vireo/log.hpp, level Info) when the profiler is destroyed. Not for production: every step synchronizes.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace vireo::detail::cuda_backend {

class StepProfiler {
 public:
  StepProfiler() = default;
  StepProfiler(const StepProfiler&) = delete;
  StepProfiler& operator=(const StepProfiler&) = delete;
  /// Prints the report.
  ~StepProfiler();

  void enable() noexcept { on_ = true; }
  bool on() const noexcept { return on_; }
  /// Record the end of `stage` on `stream`; nullptr starts a step.
  void mark(const char* stage, void* stream);
  /// Wait for the step's last event and add its stage times to the steps of n_tokens tokens.
  void collect(int n_tokens);

 private:
  void report() const;

  struct Profile {
    std::vector<std::pair<std::string, double>> stages;  ///< ms summed over steps, in step order
    int steps = 0;
  };
  bool on_ = false;
  std::vector<void*> events_;  ///< cudaEvent_t, reused step after step
  std::vector<std::string> marks_;
  std::map<int, Profile> prof_;  ///< by tokens per step (padded to the graph bucket)
};

}  // namespace vireo::detail::cuda_backend
