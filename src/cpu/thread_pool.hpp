// A small fixed thread pool for the CPU backend: parallel_for splits [0, n) into one
// contiguous chunk per worker (static schedule: the work items of a forward pass are
// uniform rows of a matmul or heads of attention). The calling thread takes chunk 0.
// Calls from different threads are serialised by a mutex (the pool is shared by all users
// of one Model).
#pragma once
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
  /// Run fn(begin, end) over [0, n) in size() chunks; rethrows the first exception.
  void parallel_for(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& fn);

 private:
  void worker(int index);
  std::vector<std::thread> workers_;
  std::mutex call_mu_;  // one parallel_for at a time
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  const std::function<void(std::int64_t, std::int64_t)>* job_ = nullptr;
  std::int64_t n_ = 0;
  std::uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace vireo::cpu
