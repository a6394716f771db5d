// A small fixed thread pool for the CPU backend.
//
// parallel_for(n, fn) cuts [0, n) into kChunksPerThread * size() equal chunks that the
// caller and the workers claim from one atomic ticket (generation << 32 | next chunk), so
// the call finishes as soon as all chunks are done, even if a worker was descheduled and
// never showed up (2-core machines running other work are common for an embedded
// library). A decode step issues ~8 calls per layer, each tens of microseconds long, so
// waking sleeping threads through the kernel would dominate: workers poll the ticket for
// a short while after each job before sleeping on a condition variable. Calls from
// different threads are serialised (the pool is shared by all users of one Model).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace vireo::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const noexcept { return int(workers_.size()) + 1; }
  /// Run fn(begin, end) over disjoint ranges covering [0, n); rethrows the first exception.
  void parallel_for(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& fn);

 private:
  static constexpr int kChunksPerThread = 4;
  void worker();
  /// Claim and run chunks of generation `gen` until none is left.
  void drain(std::uint32_t gen);

  std::vector<std::thread> workers_;
  int n_chunks_ = 1;
  std::mutex call_mu_;  // one parallel_for at a time
  std::mutex mu_;       // sleeping workers, error_
  std::condition_variable cv_;
  int sleepers_ = 0;
  const std::function<void(std::int64_t, std::int64_t)>* job_ = nullptr;
  std::int64_t n_ = 0;
  std::atomic<std::uint64_t> ticket_{0};  // generation << 32 | next chunk index
  std::atomic<int> done_{0};              // chunks finished in the current generation
  std::atomic<bool> stop_{false};
  std::exception_ptr error_;
};

}  // namespace vireo::cpu
