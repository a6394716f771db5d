// The L2 prefetch of decode GEMV weights (cuda/l2_prefetch.cu): the host arithmetic that
// spreads a byte budget over a matrix's rows (no GPU needed), and the prefetching kernel on
// a GPU: every shape of grid and matrix runs without a fault and leaves memory as it was.
// (Whether it saves time is BM_l2_prefetch_gemv's question, in bench_cuda_kernels.cpp.)
#include <catch2/catch.hpp>

#ifdef VIREO_WITH_CUDA
#include <cstdint>
#include <random>
#include <vector>

#include "../cuda/cuda_api.hpp"
#include "cuda_test_util.hpp"
#include "test_util.hpp"

using namespace vireo::test_cuda;


TEST_CASE("l2_prefetch_rows spreads a budget as a prefix of every row", "[cuda][l2]") {
  alignas(16) static unsigned char buf[64];
  const void* base = buf;
  // Wo of an 8B model, bf16: 4096 rows of 8 KiB; 24 MiB is 6 KiB of every row.
  vc::L2Prefetch pf = vc::l2_prefetch_rows(base, 4096, 8192, std::size_t(24) << 20);
  CHECK(pf.base == base);
  CHECK(pf.rows == 4096);
  CHECK(pf.row_stride == 8192);
  CHECK(pf.row_bytes == 6144);
  // A budget larger than the matrix: whole rows, never past a row.
  pf = vc::l2_prefetch_rows(base, 4096, 8192, std::size_t(48) << 20);
  CHECK(pf.row_bytes == 8192);
  // Rounded down to 16 bytes (rows of a repacked Q4 matrix of 4096 columns: 128 blocks of
  // 16 bytes of quants).
  pf = vc::l2_prefetch_rows(base, 3000, 2048, 3000 * 100 + 7);
  CHECK(pf.row_bytes == 96);
  // Nothing to do: no budget, no rows, a budget under 16 bytes a row, misalignment.
  CHECK(vc::l2_prefetch_rows(base, 4096, 8192, 0).rows == 0);
  CHECK(vc::l2_prefetch_rows(base, 0, 8192, 1 << 20).rows == 0);
  CHECK(vc::l2_prefetch_rows(base, 1 << 20, 8192, 1 << 20).rows == 0);
  CHECK(vc::l2_prefetch_rows(buf + 8, 16, 8192, 1 << 20).rows == 0);
  CHECK(vc::l2_prefetch_rows(base, 16, 8200, 1 << 20).rows == 0);
  CHECK(vc::l2_prefetch_rows(nullptr, 16, 8192, 1 << 20).rows == 0);
}

TEST_CASE("cuda L2 prefetch kernel runs on any grid and changes no byte", "[cuda][l2]") {
  VIREO_REQUIRE_GPU();
  std::mt19937 rng(11);
  const int rows = 1237, stride = 4096;  // rows not a multiple of any grid's threads
  std::vector<std::uint8_t> host(std::size_t(rows) * stride);
  for (auto& b : host) b = std::uint8_t(rng());
  auto dev = to_device_raw(host);
  for (int ctas : {1, 7, 132, 1000})
    for (std::size_t budget : {std::size_t(16), std::size_t(rows) * 160, std::size_t(rows) * stride, std::size_t(1) << 30}) {
      const vc::L2Prefetch pf = vc::l2_prefetch_rows(dev.get(), rows, stride, budget);
      REQUIRE(pf.rows == (budget >= std::size_t(rows) * 16 ? rows : 0));
      REQUIRE(vc::l2_prefetch_idle(pf, ctas, 2000, nullptr) == 0);
      vc::synchronize(nullptr);
      REQUIRE(vc::last_error() == 0);
    }
  std::vector<std::uint8_t> back(host.size());
  dev.download(back.data(), back.size());
  CHECK(back == host);
  CHECK(vc::l2_prefetch_idle({}, 0, 0, nullptr) != 0);
}

#endif  // VIREO_WITH_CUDA
