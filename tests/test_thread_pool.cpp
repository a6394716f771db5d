// ThreadPool: every index of [0, n) is visited exactly once for many sizes and back-to-back
// calls, exceptions propagate to the caller, and the pool stays usable afterwards.
#include <catch2/catch.hpp>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "cpu/thread_pool.hpp"

TEST_CASE("parallel_for covers every index exactly once", "[cpu][pool]") {
  for (int threads : {1, 2, 3, 5}) {
    vireo::cpu::ThreadPool pool(threads);
    for (std::int64_t n : {1, 2, 3, 7, 19, 64, 1000, 4097}) {
      for (int rep = 0; rep < 20; ++rep) {
        std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
        pool.parallel_for(n, [&](std::int64_t b, std::int64_t e) {
          for (std::int64_t i = b; i < e; ++i) hits[std::size_t(i)].fetch_add(1);
        });
        for (std::int64_t i = 0; i < n; ++i) REQUIRE(hits[std::size_t(i)].load() == 1);
      }
    }
  }
}

TEST_CASE("parallel_for rethrows a worker's exception and stays usable", "[cpu][pool]") {
  vireo::cpu::ThreadPool pool(3);
  CHECK_THROWS_AS(pool.parallel_for(100, [](std::int64_t b, std::int64_t e) {
                    if (b <= 97 && 97 < e) throw std::runtime_error("boom");
                  }),
                  std::runtime_error);
  std::atomic<std::int64_t> sum{0};
  pool.parallel_for(100, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) sum += i;
  });
  CHECK(sum.load() == 4950);
}
