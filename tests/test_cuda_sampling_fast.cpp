// [cuda] The GPU sampler's greedy path (cuda/sampling.cu: greedy_kernel, no sort) against
// the CPU vireo::Sampler at temperature 0: token for token and log-prob within
// 1e-3 + 1e-4 * |ref|, on all-greedy batches of 1 and 64 rows over a Llama-3 vocabulary
// (128256) and an odd one (1001, so rows start at every 4-byte offset mod 16), from
// pointers at every 4-byte offset (the kernel's scalar head / float4 body / scalar tail).
// Planted ties (same float4, same thread, different threads, first and last id, -0.0 vs
// +0.0) must go to the lowest id; rows of -inf (all, or all but a few) and rows with NaN
// (either sign) or +inf behave as on the CPU. Mixed batches (greedy and sampled rows
// alternating, so the sort sees empty segments between full ones) are checked too.
// Outputs are poisoned before every call. A statistical test draws 12,800 tokens per
// top-p / top-k / min-p setting with mass at the cut-off (chi-square, with a negative control). Without a GPU each test is marked skipped and returns (VIREO_REQUIRE_GPU).
#include <catch2/catch.hpp>

#ifdef VIREO_WITH_CUDA
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "../cuda/cuda_api.hpp"
#include "test_util.hpp"
#include "vireo/error.hpp"
#include "vireo/sampler.hpp"

namespace {

namespace vc = vireo::cuda;

constexpr float kInf = std::numeric_limits<float>::infinity();

/// rows x vocab logits ~ N(0, 3), some -inf (masked tokens), and per row a tie of two
/// maxima planted at ids chosen to cover the kernel's layouts (see the file comment).
std::vector<float> make_logits(int rows, int vocab, std::mt19937& rng) {
  std::vector<float> v(std::size_t(rows) * std::size_t(vocab));
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (auto& x : v) x = nd(rng);
  for (int i = 0; i < rows * 8; ++i) v[std::size_t(rng() % v.size())] = -kInf;
  for (int r = 0; r < rows; ++r) {
    float* row = v.data() + std::size_t(r) * std::size_t(vocab);
    int a = 0, b = 0;
    switch (r % 5) {
      case 0: a = 0, b = vocab - 1; break;                               // first and last id
      case 1: a = 8, b = 9; break;                                       // one float4
      case 2: a = 4, b = std::min(vocab - 1, 4 + 4 * 1024); break;      // one thread, two vectors
      case 3: a = int(rng() % std::uint32_t(vocab / 2)), b = a + 1 + int(rng() % std::uint32_t(vocab / 2 - 1)); break;
      case 4: a = int(rng() % std::uint32_t(vocab)), b = a; break;       // a single maximum
    }
    row[a] = row[b] = 40.0f + float(r % 3);
  }
  return v;
}

/// The CPU reference of one greedy row.
vireo::Sampled cpu_greedy(const float* row, int vocab) {
  vireo::Sampler s(vireo::SamplerParams{.temperature = 0.0f});
  return s.sample(std::span<const float>(row, std::size_t(vocab)));
}

/// Run the GPU sampler on host logits uploaded `offset` floats into a device buffer.
void gpu_sample(vc::GpuSampler& gpu, const std::vector<float>& logits, int offset, int rows,
                const std::vector<vc::RowSampling>& prm, std::vector<std::int32_t>& tok, std::vector<float>& lp) {
  vc::DeviceBuffer d((logits.size() + std::size_t(offset)) * sizeof(float));
  d.fill_bytes(0xFF);
  d.upload(logits.data(), logits.size() * sizeof(float), std::size_t(offset) * sizeof(float));
  tok.assign(std::size_t(rows), -7);
  lp.assign(std::size_t(rows), std::numeric_limits<float>::quiet_NaN());
  gpu.sample(d.as<float>() + offset, rows, prm.data(), tok.data(), lp.data());
}

void check_greedy_rows(const std::vector<float>& logits, int vocab, int rows, const std::vector<std::int32_t>& tok,
                       const std::vector<float>& lp) {
  for (int r = 0; r < rows; ++r) {
    const auto ref = cpu_greedy(logits.data() + std::size_t(r) * std::size_t(vocab), vocab);
    INFO("row " << r << " of " << rows << ", vocab " << vocab);
    CHECK(tok[std::size_t(r)] == ref.token);
    CHECK(!std::isnan(lp[std::size_t(r)]));
    CHECK(std::fabs(lp[std::size_t(r)] - ref.logprob) <= 1e-3f + 1e-4f * std::fabs(ref.logprob));
  }
}

}  // namespace

TEST_CASE("cuda greedy sampling (no sort) matches vireo::Sampler", "[cuda]") {
  VIREO_REQUIRE_GPU();
  std::mt19937 rng(2024);
  vc::Stream stream;
  for (int vocab : {128256, 1001}) {
    vc::GpuSampler gpu(64, vocab, stream.get());
    for (int rows : {1, 64}) {
      const auto logits = make_logits(rows, vocab, rng);
      const std::vector<vc::RowSampling> prm(std::size_t(rows), vc::RowSampling{0.0f, 0, 1.0f, 0.0f, 7, 0});
      for (int offset : {0, 1, 2, 3}) {
        INFO("vocab " << vocab << ", rows " << rows << ", pointer offset " << offset << " floats");
        std::vector<std::int32_t> tok;
        std::vector<float> lp;
        gpu_sample(gpu, logits, offset, rows, prm, tok, lp);
        check_greedy_rows(logits, vocab, rows, tok, lp);
        // The planted ties: row 0 has its maximum at ids 0 and vocab - 1.
        CHECK(tok[0] == 0);
        if (rows > 2) {
          CHECK(tok[1] == 8);
          CHECK(tok[2] == 4);
        }
      }
    }
  }
}

TEST_CASE("cuda greedy sampling: -0.0 and +0.0 tie, -inf rows, NaN and +inf", "[cuda]") {
  VIREO_REQUIRE_GPU();
  const int vocab = 1001, rows = 4;
  vc::Stream stream;
  vc::GpuSampler gpu(rows, vocab, stream.get());
  const std::vector<vc::RowSampling> prm(std::size_t(rows), vc::RowSampling{-1.0f, 0, 1.0f, 0.0f, 0, 0});
  std::vector<float> logits(std::size_t(rows) * vocab);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> neg(-20.0f, -1.0f);
  for (auto& x : logits) x = neg(rng);
  // Row 0: the maximum is zero, -0.0 at id 3 before +0.0 at id 700: equal, so id 3.
  logits[3] = -0.0f;
  logits[700] = 0.0f;
  // Row 1: -inf everywhere but three tokens (one of them in the scalar tail).
  float* r1 = logits.data() + vocab;
  for (int i = 0; i < vocab; ++i) r1[i] = -kInf;
  r1[17] = -3.0f, r1[500] = 2.5f, r1[vocab - 1] = 2.5f;
  // Row 2: a single finite token: log-prob 0.
  float* r2 = logits.data() + 2 * vocab;
  for (int i = 0; i < vocab; ++i) r2[i] = -kInf;
  r2[999] = -123.0f;
  // Row 3: huge finite logits, 3e38 down to 2e38 (l * log2(e) would overflow; l - max does
  // not): token 0 with log-prob 0.
  float* r3 = logits.data() + 3 * vocab;
  for (int i = 0; i < vocab; ++i) r3[i] = 3.0e38f - float(i) * 1.0e35f;
  std::vector<std::int32_t> tok;
  std::vector<float> lp;
  gpu_sample(gpu, logits, 0, rows, prm, tok, lp);
  check_greedy_rows(logits, vocab, rows, tok, lp);
  CHECK(tok[0] == 3);
  CHECK(tok[1] == 500);
  CHECK(tok[2] == 999);
  CHECK(lp[2] == 0.0f);
  CHECK(tok[3] == 0);
  CHECK(lp[3] == 0.0f);

  // Rows the CPU Sampler rejects are rejected, whichever row of the batch holds them.
  const float pos_nan = std::numeric_limits<float>::quiet_NaN();
  float neg_nan;
  const std::uint32_t neg_nan_bits = 0xFFC00000u;
  std::memcpy(&neg_nan, &neg_nan_bits, sizeof neg_nan);
  struct Bad {
    const char* what;
    int row, id;
    float value;
    bool whole_row;
  };
  for (const Bad& b : {Bad{"all -inf", 2, 0, -kInf, true}, Bad{"+NaN", 1, 500, pos_nan, false},
                       Bad{"-NaN", 3, 1000, neg_nan, false}, Bad{"+inf", 0, 4, kInf, false},
                       Bad{"-NaN in the head", 1, 0, neg_nan, false}}) {
    INFO(b.what << " in row " << b.row);
    std::vector<float> bad = logits;
    float* row = bad.data() + std::size_t(b.row) * vocab;
    if (b.whole_row)
      for (int i = 0; i < vocab; ++i) row[i] = b.value;
    else
      row[b.id] = b.value;
    CHECK_THROWS_AS(cpu_greedy(row, vocab), vireo::Error);
    CHECK_THROWS_AS(gpu_sample(gpu, bad, 1, rows, prm, tok, lp), vireo::Error);
  }
  // The sampler is still usable after a rejected call.
  gpu_sample(gpu, logits, 0, rows, prm, tok, lp);
  check_greedy_rows(logits, vocab, rows, tok, lp);
}

TEST_CASE("cuda sampling: greedy and sampled rows interleaved match vireo::Sampler", "[cuda]") {
  VIREO_REQUIRE_GPU();
  std::mt19937 rng(77);
  vc::Stream stream;
  for (int vocab : {1001, 128256}) {
    const int rows = 16;
    vc::GpuSampler gpu(64, vocab, stream.get());
    const auto logits = make_logits(rows, vocab, rng);
    std::vector<vc::RowSampling> prm(static_cast<std::size_t>(rows));
    std::vector<vireo::SamplerParams> cpu(static_cast<std::size_t>(rows));
    for (int r = 0; r < rows; ++r) {
      vireo::SamplerParams& c = cpu[std::size_t(r)];
      // Even rows greedy (their sort segments are empty), odd rows sampled: plain, top-k,
      // top-p, min-p in turn. At vocab 1001 a high temperature spreads the mass over the
      // whole row (the planted maximum of 40 keeps some); at 128256 the draw stays near
      // the planted maximum, where the GPU's fp32 prefix sums over 128K weights cannot move
      // the inverse-CDF pick away from the CPU's double sums.
      c.temperature = r % 2 == 0 ? 0.0f : vocab == 1001 ? 6.0f + 0.5f * float(r % 4) : 0.8f;
      c.top_k = r % 8 == 3 ? 50 : 0;
      c.top_p = r % 8 == 5 ? 0.9f : 1.0f;
      c.min_p = r % 8 == 7 ? 0.02f : 0.0f;
      c.seed = 31 + std::uint64_t(r);
      prm[std::size_t(r)] = {c.temperature, c.top_k, c.top_p, c.min_p, c.seed, 3};
    }
    std::vector<std::int32_t> tok;
    std::vector<float> lp;
    gpu_sample(gpu, logits, 0, rows, prm, tok, lp);
    for (int r = 0; r < rows; ++r) {
      vireo::Sampler s(cpu[std::size_t(r)]);
      for (int i = 0; i < 3; ++i) s.advance();  // counter 3, as in prm
      const auto ref = s.sample(std::span<const float>(logits.data() + std::size_t(r) * vocab, std::size_t(vocab)));
      INFO("vocab " << vocab << " row " << r << " temperature " << cpu[std::size_t(r)].temperature);
      CHECK(tok[std::size_t(r)] == ref.token);
      CHECK(!std::isnan(lp[std::size_t(r)]));
      CHECK(std::fabs(lp[std::size_t(r)] - ref.logprob) <= 1e-3f + 1e-4f * std::fabs(ref.logprob));
    }
    // A negative NaN in a sampled row sorts last; it is rejected as on the CPU.
    std::vector<float> bad = logits;
    float neg_nan;
    const std::uint32_t bits = 0xFFC00000u;
    std::memcpy(&neg_nan, &bits, sizeof neg_nan);
    bad[std::size_t(5) * vocab + 123] = neg_nan;
    CHECK_THROWS_AS(vireo::Sampler(cpu[5]).sample(std::span<const float>(bad.data() + std::size_t(5) * vocab, std::size_t(vocab))),
                    vireo::Error);
    CHECK_THROWS_AS(gpu_sample(gpu, bad, 0, rows, prm, tok, lp), vireo::Error);
    // Then an all-greedy call on the same sampler (no sort at all) still matches.
    std::vector<vc::RowSampling> greedy(std::size_t(rows), vc::RowSampling{0.0f, 0, 1.0f, 0.0f, 0, 0});
    gpu_sample(gpu, logits, 0, rows, greedy, tok, lp);
    check_greedy_rows(logits, vocab, rows, tok, lp);
  }
}

TEST_CASE("cuda top-p / top-k / min-p sampling: chi-square with mass at the cut-off, and a negative control",
          "[cuda]") {
  VIREO_REQUIRE_GPU();
  // One row of 16 tokens, probabilities 0.30, 0.25, 0.20, 0.15, 0.10 and the rest spread
  // thin: each setting's boundary token carries 13-27% of what it keeps, so dropping it (or
  // keeping one too many) moves the counts far outside chance at 12,800 draws.
  constexpr int vocab = 16, rows = 64, calls = 200;
  std::vector<double> p = {0.30, 0.25, 0.20, 0.15, 0.10};
  while (int(p.size()) < vocab) p.push_back(0.0 + 0.05 / (vocab - 5));
  std::vector<float> row(vocab);
  for (int i = 0; i < vocab; ++i) row[std::size_t(i)] = float(std::log(p[std::size_t(i)]));
  std::vector<float> logits;
  for (int r = 0; r < rows; ++r) logits.insert(logits.end(), row.begin(), row.end());
  vc::Stream stream;
  vc::GpuSampler gpu(rows, vocab, stream.get());
  struct Setting { const char* name; vireo::SamplerParams cpu; };
  const Setting settings[] = {
      {"top-p 0.72 (keeps 3)", {.temperature = 1.0f, .top_p = 0.72f, .seed = 11}},
      {"top-k 4", {.temperature = 1.0f, .top_k = 4, .seed = 12}},
      {"min-p 0.3 (keeps p >= 0.09: 5)", {.temperature = 1.0f, .min_p = 0.3f, .seed = 13}},
      {"temperature 0.7 + top-p 0.8", {.temperature = 0.7f, .top_p = 0.8f, .seed = 14}},
  };
  for (const Setting& st : settings) {
    INFO(st.name);
    std::vector<float> expect;
    vireo::Sampler(st.cpu).distribution(row, {}, expect);
    double total = 0;
    for (float e : expect) total += e;
    std::vector<std::int64_t> counts(vocab, 0);
    std::vector<vc::RowSampling> prm(rows);
    std::vector<std::int32_t> tok;
    std::vector<float> lp;
    for (int c = 0; c < calls; ++c) {
      for (int r = 0; r < rows; ++r)
        prm[std::size_t(r)] = {st.cpu.temperature, st.cpu.top_k, st.cpu.top_p, st.cpu.min_p, st.cpu.seed,
                               std::uint64_t(c) * rows + std::uint64_t(r)};
      gpu_sample(gpu, logits, 0, rows, prm, tok, lp);
      for (int r = 0; r < rows; ++r) {
        REQUIRE(tok[std::size_t(r)] >= 0);
        REQUIRE(tok[std::size_t(r)] < vocab);
        ++counts[std::size_t(tok[std::size_t(r)])];
      }
    }
    const double n = double(rows) * calls;
    // Pearson's statistic against `probs`; a token drawn where probs says 0 is infinite.
    auto chi2 = [&](const std::vector<double>& probs, int* df) {
      double x = 0;
      *df = -1;
      for (int i = 0; i < vocab; ++i) {
        const double e = n * probs[std::size_t(i)];
        if (e == 0) {
          if (counts[std::size_t(i)] > 0) return std::numeric_limits<double>::infinity();
          continue;
        }
        ++*df;
        x += (double(counts[std::size_t(i)]) - e) * (double(counts[std::size_t(i)]) - e) / e;
      }
      return x;
    };
    // Critical value at p = 1e-4 (Wilson-Hilferty): the test fails by chance once in 10^4.
    auto critical = [](int df) {
      const double z = 3.719, k = df;
      return k * std::pow(1 - 2 / (9 * k) + z * std::sqrt(2 / (9 * k)), 3);
    };
    std::vector<double> probs(vocab);
    for (int i = 0; i < vocab; ++i) probs[std::size_t(i)] = expect[std::size_t(i)] / total;
    int df = 0;
    const double x = chi2(probs, &df);
    REQUIRE(df >= 1);
    CHECK(x < critical(df));
    // Negative control: the same counts against the distribution with the boundary token
    // (the least likely one kept) dropped must be rejected.
    int boundary = -1;
    for (int i = 0; i < vocab; ++i)
      if (probs[std::size_t(i)] > 0 && (boundary < 0 || probs[std::size_t(i)] < probs[std::size_t(boundary)])) boundary = i;
    std::vector<double> broken = probs;
    broken[std::size_t(boundary)] = 0;
    double bt = 0;
    for (double v : broken) bt += v;
    for (double& v : broken) v /= bt;
    int df2 = 0;
    CHECK(chi2(broken, &df2) > critical(std::max(df2, 1)));
  }
}

#endif  // VIREO_WITH_CUDA
