// ThreadPool implementation: workers sleep on a condition variable and wake per generation.
#include "cpu/thread_pool.hpp"

#include <algorithm>

namespace vireo::cpu {

ThreadPool::ThreadPool(int n_threads) {
  n_threads = std::max(1, n_threads);
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_start_.notify_all();
  for (auto& t : workers_) t.join();
}

static void run_chunk(const std::function<void(std::int64_t, std::int64_t)>& fn, std::int64_t n,
                      int index, int parts) {
  std::int64_t begin = n * index / parts, end = n * (index + 1) / parts;
  if (begin < end) fn(begin, end);
}

void ThreadPool::worker(int index) {
  std::uint64_t seen = 0;
  for (;;) {
    const std::function<void(std::int64_t, std::int64_t)>* job;
    std::int64_t n;
    {
      std::unique_lock lk(mu_);
      cv_start_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
      n = n_;
    }
    std::exception_ptr err;
    try {
      run_chunk(*job, n, index, size());
    } catch (...) {
      err = std::current_exception();
    }
    std::lock_guard lk(mu_);
    if (err && !error_) error_ = err;
    if (--pending_ == 0) cv_done_.notify_one();
  }
}

void ThreadPool::parallel_for(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    fn(0, n);
    return;
  }
  std::lock_guard call(call_mu_);
  {
    std::lock_guard lk(mu_);
    job_ = &fn;
    n_ = n;
    pending_ = int(workers_.size());
    error_ = nullptr;
    ++generation_;
  }
  cv_start_.notify_all();
  std::exception_ptr err;
  try {
    run_chunk(fn, n, 0, size());
  } catch (...) {
    err = std::current_exception();
  }
  std::unique_lock lk(mu_);
  cv_done_.wait(lk, [&] { return pending_ == 0; });
  if (!err) err = error_;
  job_ = nullptr;
  if (err) std::rethrow_exception(err);
}

}  // namespace vireo::cpu
