// ThreadPool implementation. Publishing a job: write job_ / n_ / done_, then store the new
// ticket with release; a claim is a CAS on the ticket with acquire, so a claimer sees the
// job of the generation it claimed from. job_ cannot change while a chunk of it is claimed
// but unfinished, because the caller waits for done_ == n_chunks_.
#include "cpu/thread_pool.hpp"

#include <algorithm>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define VIREO_PAUSE() _mm_pause()
#else
#define VIREO_PAUSE() std::this_thread::yield()
#endif

namespace vireo::cpu {
namespace {
constexpr int kSpinIters = 4000;  // ~0.1-0.3 ms of polling before a worker sleeps
}

ThreadPool::ThreadPool(int n_threads) {
  n_threads = std::max(1, n_threads);
  n_chunks_ = n_threads * kChunksPerThread;
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this] { worker(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::drain(std::uint32_t gen) {
  for (;;) {
    std::uint64_t t = ticket_.load(std::memory_order_acquire);
    if (std::uint32_t(t >> 32) != gen || std::uint32_t(t) >= std::uint32_t(n_chunks_)) return;
    if (!ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel)) continue;
    const std::int64_t c = std::int64_t(std::uint32_t(t)), n = n_;
    const std::int64_t begin = n * c / n_chunks_, end = n * (c + 1) / n_chunks_;
    try {
      if (begin < end) (*job_)(begin, end);
    } catch (...) {
      std::lock_guard lk(mu_);
      if (!error_) error_ = std::current_exception();
    }
    done_.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::worker() {
  std::uint32_t seen = 0;
  auto fresh = [&] { return std::uint32_t(ticket_.load(std::memory_order_acquire) >> 32) != seen; };
  for (;;) {
    for (int i = 0; i < kSpinIters && !fresh() && !stop_.load(std::memory_order_relaxed); ++i) VIREO_PAUSE();
    if (!fresh()) {
      std::unique_lock lk(mu_);
      ++sleepers_;
      cv_.wait(lk, [&] { return stop_.load() || fresh(); });
      --sleepers_;
    }
    if (stop_.load()) return;
    seen = std::uint32_t(ticket_.load(std::memory_order_acquire) >> 32);
    drain(seen);
  }
}

void ThreadPool::parallel_for(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    fn(0, n);
    return;
  }
  std::lock_guard call(call_mu_);
  job_ = &fn;
  n_ = n;
  error_ = nullptr;
  done_.store(0, std::memory_order_relaxed);
  const std::uint32_t gen = std::uint32_t(ticket_.load(std::memory_order_relaxed) >> 32) + 1;
  bool wake;
  {
    // Under the mutex so a worker between its predicate check and its wait cannot miss it.
    std::lock_guard lk(mu_);
    ticket_.store(std::uint64_t(gen) << 32, std::memory_order_release);
    wake = sleepers_ > 0;
  }
  if (wake) cv_.notify_all();
  drain(gen);
  for (int i = 0; done_.load(std::memory_order_acquire) != n_chunks_; ++i) {
    if (i < kSpinIters) VIREO_PAUSE();
    else std::this_thread::yield();
  }
  job_ = nullptr;
  std::exception_ptr err;
  {
    std::lock_guard lk(mu_);
    err = error_;
  }
  if (err) std::rethrow_exception(err);
}

}  // namespace vireo::cpu
