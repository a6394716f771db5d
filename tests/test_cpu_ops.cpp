// CPU op tests: the fused quantized dot products and the matmul paths (fused for decode,
// dequantize-and-reuse for prefill) against a dequantize-then-double-precision-dot
// reference on random data; RoPE against its rotation definition.
#include <catch2/catch.hpp>

#include <cmath>
#include <algorithm>
#include <random>
#include <vector>

#include "cpu/ops.hpp"
#include "cpu/q8_dot.hpp"
#include "cpu/quant_dot.hpp"
#include "test_util.hpp"
#include "vireo/gguf.hpp"

using namespace vireo;

namespace {
using test::normal_vec;
}  // namespace

TEST_CASE("quant_dot equals dequantize-then-dot for Q8_0, Q4_0, Q4_1", "[cpu][ops]") {
  std::mt19937 rng(11);
  for (auto type : {gguf::TensorType::Q8_0, gguf::TensorType::Q4_0, gguf::TensorType::Q4_1}) {
    for (std::int64_t n : {32, 64, 576, 1536}) {
      auto w = normal_vec(std::size_t(n), rng);
      auto x = normal_vec(std::size_t(n), rng);
      std::vector<std::byte> q(gguf::row_bytes(type, std::uint64_t(n)));
      gguf::quantize(type, w.data(), q.data(), std::size_t(n));
      std::vector<float> deq(static_cast<std::size_t>(n));
      gguf::dequantize(type, q.data(), deq.data(), std::size_t(n));
      double ref = 0, mag = 0;
      for (std::int64_t i = 0; i < n; ++i) {
        ref += double(deq[i]) * x[i];
        mag += std::abs(double(deq[i]) * x[i]);
      }
      std::vector<float> sums(std::size_t(n / 32));
      cpu::block_sums(x.data(), n, sums.data());
      float got = cpu::quant_dot(type, q.data(), x.data(), sums.data(), n);
      INFO(gguf::to_string(type) << " n=" << n << " got " << got << " ref " << ref);
      CHECK(std::abs(got - ref) <= 1e-5 * mag + 1e-6);
    }
  }
}

TEST_CASE("matmul: decode (fused) and prefill (dequantize) paths agree with the reference", "[cpu][ops]") {
  std::mt19937 rng(5);
  cpu::ThreadPool pool(2);
  // rows: two full 16-row panels and a partial one (and a partial 4-row group); T: the fused
  // decode path (<= 8), the dot-product tiles (< 24, odd and even) and the panels with every
  // 6-token remainder. The larger shape runs several token ranges per panel.
  // The read-only types (Q5_0, Q5_1, K-quants) have no quantize: random blocks, with
  // 256-multiple widths for the K-quants.
  struct Shape {
    std::int64_t rows, cols;
    std::vector<std::int64_t> Ts;
  };
  const std::vector<std::int64_t> small_T = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 20, 23, 24, 25, 26, 27, 28, 29};
  const Shape shapes[] = {{37, 96, small_T}, {20, 320, {97}}, {37, 256, small_T}, {20, 512, {97}}};
  for (const Shape& sh : shapes)
  for (auto type : {gguf::TensorType::F32, gguf::TensorType::F16, gguf::TensorType::BF16, gguf::TensorType::Q8_0,
                    gguf::TensorType::Q4_0, gguf::TensorType::Q4_1, gguf::TensorType::Q5_0, gguf::TensorType::Q5_1,
                    gguf::TensorType::IQ4_NL, gguf::TensorType::Q2_K, gguf::TensorType::Q3_K, gguf::TensorType::Q4_K,
                    gguf::TensorType::Q5_K, gguf::TensorType::Q6_K, gguf::TensorType::IQ4_XS}) {
    const std::int64_t rows = sh.rows, cols = sh.cols;
    if (cols % std::int64_t(gguf::block_elements(type)) != 0) continue;
    const bool read_only = gguf::block_elements(type) == 256 || type == gguf::TensorType::Q5_0 ||
                           type == gguf::TensorType::Q5_1 || type == gguf::TensorType::IQ4_NL;
    std::vector<std::byte> wq(gguf::row_bytes(type, std::uint64_t(cols)) * std::size_t(rows));
    if (read_only) {
      wq = test::random_blocks(type, std::uint64_t(rows * cols), rng);
    } else {
      auto wf = normal_vec(std::size_t(rows * cols), rng);
      for (std::int64_t r = 0; r < rows; ++r)
        gguf::quantize(type, wf.data() + r * cols,
                       wq.data() + std::size_t(r) * gguf::row_bytes(type, std::uint64_t(cols)), std::size_t(cols));
    }
    detail::WeightView w{type, wq.data(), rows, cols};
    for (std::int64_t T : sh.Ts) {
      auto x = normal_vec(std::size_t(T * cols), rng);
      std::vector<float> y(std::size_t(T * rows), NAN);
      cpu::matmul(w, x.data(), T, y.data(), pool);
      test::check_matmul(w, std::vector<double>(x.begin(), x.end()), T, y, "matmul");
    }
  }
}

TEST_CASE("rope rotates adjacent pairs by pos * theta^(-2i/d)", "[cpu][ops]") {
  std::mt19937 rng(2);
  const int heads = 3, hd = 8;
  const std::int32_t pos[2] = {0, 7};
  auto x = normal_vec(std::size_t(2 * heads * hd), rng);
  auto y = x;
  cpu::rope(y.data(), 2, heads, hd, pos, 10000.0f, nullptr);
  for (int t = 0; t < 2; ++t)
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < hd / 2; ++i) {
        double ang = pos[t] * std::pow(10000.0, -2.0 * i / hd);
        const float* a = &x[std::size_t((t * heads + h) * hd + 2 * i)];
        const float* b = &y[std::size_t((t * heads + h) * hd + 2 * i)];
        CHECK(b[0] == Approx(a[0] * std::cos(ang) - a[1] * std::sin(ang)).margin(1e-5));
        CHECK(b[1] == Approx(a[0] * std::sin(ang) + a[1] * std::cos(ang)).margin(1e-5));
      }
}

TEST_CASE("rope at long positions matches a double-precision rotation", "[cpu][ops]") {
  // Positions from 4096 to past Llama-3's 128K context, head_dim 64 and 128, theta 1e4 and
  // 5e5, adjacent pairs (rope) and GPT-NeoX halves (rope_ex). The reference computes
  // theta^(-2i/d), the angle and its cos / sin in double. The implementation holds each
  // frequency as a float, which alone moves the angle by up to pos * inv_freq * 2^-24 (half
  // an ulp); the float cos / sin and the rotation add a few ulp of |x|. So the bound is
  // |x| * (1.05 * pos * inv_freq * 2^-24 + 2^-20): tight enough that an angle rounded to
  // float once more (or a frequency built by repeated float multiplication, a wrapped 16-bit
  // position, a wrong pair layout) fails, as the last lines check on such a broken variant.
  std::mt19937 rng(17);
  const std::vector<std::int32_t> pos = {4096, 4097, 8191, 32767, 65536, 131071};
  const std::int64_t T = std::int64_t(pos.size());
  auto rotate_ref = [&](const std::vector<float>& x, int heads, int hd, double theta, bool halves,
                        bool float_angle) {
    std::vector<double> y(x.begin(), x.end());
    for (std::int64_t t = 0; t < T; ++t)
      for (int i = 0; i < hd / 2; ++i) {
        const double inv = std::pow(theta, -2.0 * i / hd);
        const double ang = float_angle ? double(float(pos[std::size_t(t)]) * float(inv)) : pos[std::size_t(t)] * inv;
        const double c = std::cos(ang), sn = std::sin(ang);
        for (int h = 0; h < heads; ++h) {
          const std::size_t base = std::size_t((t * heads + h) * hd);
          const std::size_t i0 = base + std::size_t(halves ? i : 2 * i), i1 = base + std::size_t(halves ? i + hd / 2 : 2 * i + 1);
          y[i0] = double(x[i0]) * c - double(x[i1]) * sn;
          y[i1] = double(x[i0]) * sn + double(x[i1]) * c;
        }
      }
    return y;
  };
  // Largest element error over the bound (<= 1 passes).
  auto worst_ratio = [&](const std::vector<float>& x, const std::vector<double>& got, const std::vector<double>& ref,
                         int heads, int hd, double theta, bool halves) {
    double worst = 0;
    for (std::int64_t t = 0; t < T; ++t)
      for (int i = 0; i < hd / 2; ++i) {
        const double inv = std::pow(theta, -2.0 * i / hd);
        for (int h = 0; h < heads; ++h) {
          const std::size_t base = std::size_t((t * heads + h) * hd);
          const std::size_t i0 = base + std::size_t(halves ? i : 2 * i), i1 = base + std::size_t(halves ? i + hd / 2 : 2 * i + 1);
          const double mag = std::fabs(x[i0]) + std::fabs(x[i1]);
          const double bound = mag * (1.05 * pos[std::size_t(t)] * inv * std::ldexp(1.0, -24) + std::ldexp(1.0, -20)) + 1e-7;
          worst = std::max({worst, std::fabs(got[i0] - ref[i0]) / bound, std::fabs(got[i1] - ref[i1]) / bound});
        }
      }
    return worst;
  };
  for (int hd : {64, 128})
    for (double theta : {1e4, 5e5})
      for (bool halves : {false, true}) {
        const int heads = 2;
        const auto x = normal_vec(std::size_t(T * heads * hd), rng);
        auto y = x;
        if (halves) {
          std::vector<float> inv(std::size_t(hd / 2));
          for (int i = 0; i < hd / 2; ++i) inv[std::size_t(i)] = float(std::pow(theta, -2.0 * i / hd));
          cpu::rope_ex(y.data(), T, heads, hd, pos.data(), inv.data(), hd, true, 1.0f);
        } else {
          cpu::rope(y.data(), T, heads, hd, pos.data(), float(theta), nullptr);
        }
        const auto ref = rotate_ref(x, heads, hd, theta, halves, false);
        const double r = worst_ratio(x, std::vector<double>(y.begin(), y.end()), ref, heads, hd, theta, halves);
        INFO("head_dim " << hd << " theta " << theta << (halves ? " halves" : " pairs") << ": worst error / bound " << r);
        CHECK(r <= 1.0);
        // Negative control: the angle computed in float is outside the bound.
        const double broken = worst_ratio(x, rotate_ref(x, heads, hd, theta, halves, true), ref, heads, hd, theta, halves);
        INFO("float-angle variant: worst error / bound " << broken);
        CHECK(broken > 1.0);
      }
}

TEST_CASE("exp_shift_sum (the attention softmax's exp) stays within 2 ulp of std::exp", "[cpu][ops]") {
  // A dense sweep of [-88, 88] through the shift (vector lanes and the scalar tail), the
  // softmax's own range (x - max <= 0, mostly [-30, 0]) and the clamped low end.
  std::vector<float> xs;
  for (int i = -880000; i <= 880000; i += 7) xs.push_back(float(i) * 1e-4f);
  for (int i = 0; i < 100000; ++i) xs.push_back(-30.0f * float(i) / 100000.0f);
  xs.insert(xs.end(), {0.0f, -0.0f, 1e-30f, -1e-30f, 88.0f, -87.3f, -88.0f, -1000.0f, -INFINITY});
  for (float shift : {0.0f, 3.5f}) {
    std::vector<float> s(xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i) s[i] = xs[i] + shift;  // exp(s - shift) = exp(x) (up to rounding)
    const float sum = cpu::exp_shift_sum(s.data(), std::int64_t(s.size()), shift);
    double worst = 0.0;
    for (std::size_t i = 0; i < xs.size(); ++i) {
      const float x = (xs[i] + shift) - shift;  // the argument the function really saw
      const double ref = std::exp(double(x));
      INFO("x = " << x << " got " << s[i] << " ref " << ref);
      REQUIRE(std::isfinite(s[i]));
      REQUIRE(s[i] >= 0.0f);
      if (x < -87.0f) {  // near and below the smallest normal: accurate, or flushed to 0
        CHECK(std::abs(double(s[i]) - ref) <= 1.2e-38);
        continue;
      }
      const double ulp = std::ldexp(1.0, std::ilogb(float(ref)) - 23);
      worst = std::max(worst, std::abs(double(s[i]) - ref) / ulp);
    }
    INFO("shift " << shift << ": worst error " << worst << " ulp");
    CHECK(worst <= 2.0);
    (void)sum;  // ~1e41 over this sweep: overflows float, checked below on softmax inputs
  }
  // The returned sum, over softmax-like inputs (x - max <= 0; an odd count: scalar tail).
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-20.0f, 5.0f);
  std::vector<float> s(1001);
  for (auto& v : s) v = u(rng);
  const float mx = *std::max_element(s.begin(), s.end());
  double ref_sum = 0.0;
  for (float v : s) ref_sum += std::exp(double(v - mx));
  CHECK(double(cpu::exp_shift_sum(s.data(), std::int64_t(s.size()), mx)) == Approx(ref_sum).epsilon(1e-5));
}

TEST_CASE("matmul_many equals matmul per matrix, bit for bit", "[cpu][ops]") {
  // Q, K and V of different heights and types (as in a Q4_K_M file), one token and several,
  // and a prefill-sized step (which runs matmul per matrix); the same for 8-bit activations.
  std::mt19937 rng(17);
  cpu::ThreadPool pool(2);
  const std::int64_t cols = 256;
  const std::vector<std::byte> b0 = test::random_blocks(gguf::TensorType::Q4_K, 40 * cols, rng),
                               b1 = test::random_blocks(gguf::TensorType::Q6_K, 9 * cols, rng),
                               b2 = test::random_blocks(gguf::TensorType::Q4_0, 23 * cols, rng);
  const detail::WeightView w0{gguf::TensorType::Q4_K, b0.data(), 40, cols},
      w1{gguf::TensorType::Q6_K, b1.data(), 9, cols}, w2{gguf::TensorType::Q4_0, b2.data(), 23, cols};
  for (std::int64_t T : {1, 3, 8, 30}) {
    INFO("T=" << T);
    const auto x = normal_vec(std::size_t(T * cols), rng);
    std::vector<float> y0(std::size_t(T * 40)), y1(std::size_t(T * 9)), y2(std::size_t(T * 23));
    cpu::matmul_many({{&w0, y0.data()}, {&w1, y1.data()}, {&w2, y2.data()}}, x.data(), T, pool);
    std::vector<float> r0(y0.size()), r1(y1.size()), r2(y2.size());
    cpu::matmul(w0, x.data(), T, r0.data(), pool);
    cpu::matmul(w1, x.data(), T, r1.data(), pool);
    cpu::matmul(w2, x.data(), T, r2.data(), pool);
    CHECK(y0 == r0);
    CHECK(y1 == r1);
    CHECK(y2 == r2);
    if (T > 8) continue;
    cpu::Q8Acts a;
    cpu::quantize_acts(x.data(), T, cols, a);
    cpu::q8_matmul_many({{&w0, y0.data()}, {&w1, y1.data()}, {&w2, y2.data()}}, a, pool);
    cpu::q8_matmul(w0, a, r0.data(), pool);
    cpu::q8_matmul(w1, a, r1.data(), pool);
    cpu::q8_matmul(w2, a, r2.data(), pool);
    CHECK(y0 == r0);
    CHECK(y1 == r1);
    CHECK(y2 == r2);
  }
}
