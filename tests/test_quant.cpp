// Tests of gguf::dequantize / quantize and the fp16/bf16 conversions behind them.
//
// Known values are computed here by hand from the block layouts (ggml's), never by the code
// under test; the fp16 decoder is checked against an ldexp-based decoder over all 65536
// bit patterns; quantize round trips are checked against per-block error bounds derived from
// each scheme; and [golden] tests compare with gguf-py (llama.cpp's Python package) through
// tests/fixtures/quant_golden.txt, written by scripts/golden/make_quant_fixtures.py.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <vector>

#include "gguf/fp16.hpp"
#include "test_util.hpp"
#include "vireo/gguf.hpp"

using namespace vireo;
using gguf::TensorType;

namespace {

// Independent fp16 decoder: sign, 5-bit exponent (bias 15), 10-bit mantissa.
float ref_fp16(std::uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  float v;
  if (e == 0) v = std::ldexp(float(m), -24);
  else if (e == 31) v = m ? NAN : INFINITY;
  else v = std::ldexp(float(1024 + m), e - 25);
  return s ? -v : v;
}

std::vector<float> deq(TensorType t, const std::vector<std::uint8_t>& bytes, std::size_t n) {
  std::vector<float> out(n, -12345.0f);  // poisoned
  gguf::dequantize(t, bytes.data(), out.data(), n);
  return out;
}

void put16(std::vector<std::uint8_t>& b, std::uint16_t v) {
  b.push_back(std::uint8_t(v & 0xFF));
  b.push_back(std::uint8_t(v >> 8));
}

std::vector<float> rand_floats(std::size_t n, std::uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

}  // namespace

TEST_CASE("block sizes and row_bytes", "[cpu][gguf]") {
  CHECK(gguf::block_elements(TensorType::F32) == 1);
  CHECK(gguf::block_elements(TensorType::Q4_1) == 32);
  CHECK(gguf::block_bytes(TensorType::F32) == 4);
  CHECK(gguf::block_bytes(TensorType::F16) == 2);
  CHECK(gguf::block_bytes(TensorType::BF16) == 2);
  CHECK(gguf::block_bytes(TensorType::Q4_0) == 18);
  CHECK(gguf::block_bytes(TensorType::Q4_1) == 20);
  CHECK(gguf::block_bytes(TensorType::Q8_0) == 34);
  CHECK(gguf::row_bytes(TensorType::Q8_0, 576) == 18 * 34);
  CHECK(gguf::row_bytes(TensorType::F16, 7) == 14);
  CHECK_THROWS_AS(gguf::row_bytes(TensorType::Q4_0, 33), Error);
  CHECK_THROWS_AS(gguf::row_bytes(TensorType::F32, ~std::uint64_t(0) / 2), Error);
  CHECK(gguf::block_elements(TensorType::Q5_0) == 32);
  CHECK(gguf::block_elements(TensorType::Q6_K) == 256);
  CHECK(gguf::block_bytes(TensorType::Q5_0) == 22);
  CHECK(gguf::block_bytes(TensorType::Q5_1) == 24);
  CHECK(gguf::block_bytes(TensorType::Q4_K) == 144);
  CHECK(gguf::block_bytes(TensorType::Q5_K) == 176);
  CHECK(gguf::block_bytes(TensorType::Q6_K) == 210);
  CHECK(gguf::block_elements(TensorType::Q2_K) == 256);
  CHECK(gguf::block_bytes(TensorType::Q2_K) == 84);
  CHECK(gguf::block_elements(TensorType::Q3_K) == 256);
  CHECK(gguf::block_bytes(TensorType::Q3_K) == 110);
  CHECK(gguf::block_elements(TensorType::IQ4_NL) == 32);
  CHECK(gguf::block_bytes(TensorType::IQ4_NL) == 18);
  CHECK(gguf::block_elements(TensorType::IQ4_XS) == 256);
  CHECK(gguf::block_bytes(TensorType::IQ4_XS) == 136);
  CHECK(gguf::row_bytes(TensorType::Q4_K, 1536) == 6 * 144);
  CHECK_THROWS_AS(gguf::row_bytes(TensorType::Q4_K, 576), Error);  // not a multiple of 256
  CHECK(gguf::block_elements(TensorType(9)) == 0);                 // Q8_1 (ggml's, not read)
  CHECK_THROWS_AS(gguf::row_bytes(TensorType(9), 32), Error);
  CHECK_THROWS_AS(gguf::row_bytes(TensorType(16), 256), Error);    // IQ2_XXS
  std::vector<float> out(32);
  std::vector<std::uint8_t> in(64);
  CHECK_THROWS_AS(gguf::dequantize(TensorType::Q8_0, in.data(), out.data(), 31), Error);
  CHECK_THROWS_AS(gguf::dequantize(TensorType(99), in.data(), out.data(), 32), Error);
}

TEST_CASE("fp16 decode is exact for all 65536 patterns", "[cpu][gguf]") {
  std::vector<std::uint8_t> bytes;
  for (std::uint32_t h = 0; h < 65536; ++h) put16(bytes, std::uint16_t(h));
  const std::vector<float> out = deq(TensorType::F16, bytes, 65536);
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const float want = ref_fp16(std::uint16_t(h));
    if (std::isnan(want)) {
      REQUIRE(std::isnan(out[h]));
    } else {
      std::uint32_t a, b;
      std::memcpy(&a, &out[h], 4);
      std::memcpy(&b, &want, 4);
      INFO("fp16 0x" << std::hex << h);
      REQUIRE(a == b);  // bitwise, so -0 and +0 are told apart
    }
    // Encoding back gives the same pattern (NaNs become the canonical quiet NaN).
    const std::uint16_t back = detail::fp32_to_fp16(out[h]);
    if (std::isnan(want)) REQUIRE((back & 0x7FFF) == 0x7E00);
    else REQUIRE(back == h);
  }
}

TEST_CASE("fp32 -> fp16 rounds to nearest even", "[cpu][gguf]") {
  // Halfway between 1 (0x3C00) and 1+2^-10 (0x3C01): ties to even 0x3C00; just above: 0x3C01.
  CHECK(detail::fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);
  CHECK(detail::fp32_to_fp16(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)) == 0x3C01);
  CHECK(detail::fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3C02);  // tie -> even
  CHECK(detail::fp32_to_fp16(65504.0f) == 0x7BFF);
  CHECK(detail::fp32_to_fp16(65520.0f) == 0x7C00);  // rounds up to Inf
  CHECK(detail::fp32_to_fp16(-INFINITY) == 0xFC00);
  CHECK(detail::fp32_to_fp16(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(detail::fp32_to_fp16(std::ldexp(1.0f, -26)) == 0x0000);
  CHECK(detail::fp32_to_fp16(-0.0f) == 0x8000);
#if defined(__FLT16_MAX__) && !defined(__clang__)
  // The compiler's own _Float16 conversion (F16C or libgcc) is an independent reference.
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::uint32_t> bits;
  for (int i = 0; i < 200000; ++i) {
    std::uint32_t u = bits(rng);
    u = (u & 0x807FFFFFu) | ((100u + (u >> 23) % 50u) << 23);  // exponents around fp16's range
    float f;
    std::memcpy(&f, &u, 4);
    const _Float16 h = static_cast<_Float16>(f);
    std::uint16_t want;
    std::memcpy(&want, &h, 2);
    INFO("f = " << f);
    REQUIRE(detail::fp32_to_fp16(f) == want);
  }
#endif
}

TEST_CASE("F32, F16 and BF16 dequantize known values", "[cpu][gguf]") {
  std::vector<std::uint8_t> f16;
  for (std::uint16_t h : {0x3C00, 0xC000, 0x0001, 0x7BFF, 0x3555, 0x8000, 0x7C00, 0x0400})
    put16(f16, h);
  const auto a = deq(TensorType::F16, f16, 8);
  CHECK(a[0] == 1.0f);
  CHECK(a[1] == -2.0f);
  CHECK(a[2] == std::ldexp(1.0f, -24));
  CHECK(a[3] == 65504.0f);
  CHECK(a[4] == 0.333251953125f);  // 0x3555 = (1024 + 341) / 4096
  CHECK((a[5] == 0.0f && std::signbit(a[5])));
  CHECK(a[6] == INFINITY);
  CHECK(a[7] == std::ldexp(1.0f, -14));

  std::vector<std::uint8_t> bf;
  for (std::uint16_t h : {0x3F80, 0x4049, 0xC2F7, 0x0001}) put16(bf, h);
  const auto b = deq(TensorType::BF16, bf, 4);
  CHECK(b[0] == 1.0f);
  CHECK(b[1] == 3.140625f);
  CHECK(b[2] == -123.5f);
  CHECK(b[3] == std::ldexp(1.0f, -133));  // smallest bf16 subnormal

  const std::vector<float> x = {1.5f, -0.0f, 3e-40f, -7.25e30f};
  std::vector<std::uint8_t> raw(16);
  std::memcpy(raw.data(), x.data(), 16);
  CHECK(deq(TensorType::F32, raw, 4) == x);
}

TEST_CASE("Q8_0 block with known values", "[cpu][gguf]") {
  std::vector<std::uint8_t> blk;
  put16(blk, 0x3800);  // d = 0.5
  for (int j = 0; j < 32; ++j) blk.push_back(std::uint8_t(std::int8_t(j * 8 - 128)));  // -128..120
  put16(blk, 0xB400);  // second block: d = -0.25
  for (int j = 0; j < 32; ++j) blk.push_back(std::uint8_t(std::int8_t(127 - j)));
  const auto y = deq(TensorType::Q8_0, blk, 64);
  for (int j = 0; j < 32; ++j) {
    CHECK(y[j] == float(j * 8 - 128) * 0.5f);
    CHECK(y[32 + j] == float(127 - j) * -0.25f);
  }
}

TEST_CASE("Q4_0 block with known values", "[cpu][gguf]") {
  std::vector<std::uint8_t> blk;
  put16(blk, 0x3400);  // d = 0.25
  // Element j (j < 16) is the low nibble of byte j, element j + 16 its high nibble.
  for (int j = 0; j < 16; ++j) blk.push_back(std::uint8_t(j | ((15 - j) << 4)));
  const auto y = deq(TensorType::Q4_0, blk, 32);
  for (int j = 0; j < 16; ++j) {
    CHECK(y[j] == float(j - 8) * 0.25f);
    CHECK(y[j + 16] == float(7 - j) * 0.25f);
  }
  CHECK(y[0] == -2.0f);
  CHECK(y[16] == 1.75f);
}

TEST_CASE("Q4_1 block with known values", "[cpu][gguf]") {
  std::vector<std::uint8_t> blk;
  put16(blk, 0x3800);  // d = 0.5
  put16(blk, 0xBC00);  // m = -1
  for (int j = 0; j < 16; ++j) blk.push_back(std::uint8_t(j | ((15 - j) << 4)));
  const auto y = deq(TensorType::Q4_1, blk, 32);
  // Low nibbles 0..15 -> -1, -0.5, ..., 6.5; high nibbles 15..0 -> 6.5 ... -1.
  const float want_lo[16] = {-1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5};
  for (int j = 0; j < 16; ++j) {
    CHECK(y[j] == want_lo[j]);
    CHECK(y[j + 16] == want_lo[15 - j]);
  }
}

TEST_CASE("quantize -> dequantize stays within each scheme's error bound", "[cpu][gguf]") {
  const std::size_t n = 32 * 64;
  const float eps = 1e-6f;
  for (float scale : {1e-3f, 1.0f, 300.0f}) {
    const std::vector<float> x = rand_floats(n, 42, scale);
    for (TensorType t : {TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q8_0,
                         TensorType::Q4_0, TensorType::Q4_1}) {
      std::vector<std::uint8_t> q(gguf::row_bytes(t, n), 0xAB);
      gguf::quantize(t, x.data(), q.data(), n);
      const std::vector<float> y = deq(t, q, n);
      INFO(gguf::to_string(t) << " scale " << scale);
      for (std::size_t b = 0; b < n / 32; ++b) {
        float amax = 0, mn = INFINITY, mx = -INFINITY;
        for (std::size_t j = 0; j < 32; ++j) {
          amax = std::max(amax, std::fabs(x[b * 32 + j]));
          mn = std::min(mn, x[b * 32 + j]);
          mx = std::max(mx, x[b * 32 + j]);
        }
        for (std::size_t j = 0; j < 32; ++j) {
          const std::size_t i = b * 32 + j;
          const float err = std::fabs(x[i] - y[i]);
          float bound = 0;
          // Rounding error of storing v as fp16: half an ulp, with subnormal ulps of 2^-24.
          auto h = [](float v) { return std::max(std::fabs(v) * 0x1p-11f, 0x1p-25f); };
          switch (t) {
            case TensorType::F32: bound = 0; break;
            case TensorType::F16: bound = h(x[i]); break;
            case TensorType::BF16: bound = std::fabs(x[i]) * 0x1p-8f; break;
            // |q*d16 - x| <= 0.5 d + 127 |d16 - d|, d = amax/127
            case TensorType::Q8_0: bound = 0.5f * amax / 127 + 127 * h(amax / 127); break;
            // values at -d*8 clamp from 16 to 15: error up to |d| = amax/8, plus 8 |d16 - d|
            case TensorType::Q4_0: bound = amax / 8 + 8 * h(amax / 8); break;
            // 0.5 d + 15 |d16 - d| + |m16 - m|, d = (max - min)/15, m = min
            case TensorType::Q4_1: bound = 0.5f * (mx - mn) / 15 + 15 * h((mx - mn) / 15) + h(mn); break;
          }
          REQUIRE(err <= bound * (1 + eps) + 1e-30f);
        }
      }
    }
  }
}

TEST_CASE("quantize handles zero, constant and non-finite blocks without UB", "[cpu][gguf]") {
  std::vector<float> x(96, 0.0f);
  for (int j = 32; j < 64; ++j) x[j] = 0.75f;
  x[64] = NAN;
  x[65] = INFINITY;
  for (TensorType t : {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_1}) {
    std::vector<std::uint8_t> q(gguf::row_bytes(t, 96));
    gguf::quantize(t, x.data(), q.data(), 96);
    const auto y = deq(t, q, 96);
    INFO(gguf::to_string(t));
    for (int j = 0; j < 32; ++j) CHECK(y[j] == 0.0f);
    for (int j = 32; j < 64; ++j) CHECK(std::fabs(y[j] - 0.75f) <= 0.75f * 0x1p-10f);
  }
}

namespace {

struct Golden {
  std::map<std::string, std::vector<float>> rows;
  std::map<std::string, std::string> quantized_hex;
  /// @dequant lines: type -> (block bytes, gguf-py's values)
  std::map<std::string, std::pair<std::vector<std::uint8_t>, std::vector<float>>> blocks;
};

std::vector<std::uint8_t> from_hex(const std::string& hex) {
  std::vector<std::uint8_t> b;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) b.push_back(std::uint8_t(std::stoul(hex.substr(i, 2), nullptr, 16)));
  return b;
}

Golden read_golden() {
  Golden g;
  std::ifstream f(test::fixture("quant_golden.txt"));
  REQUIRE(f.good());
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string name;
    in >> name;
    if (name.empty() || name[0] == '#') continue;  // the generator's versions line
    if (name == "@quantize") {
      std::string type, hex;
      in >> type >> hex;
      g.quantized_hex[type] = hex;
      continue;
    }
    if (name == "@dequant") {
      std::string type, hex, tok;
      in >> type >> hex;
      auto& [bytes, vals] = g.blocks[type];
      bytes = from_hex(hex);
      while (in >> tok) vals.push_back(std::strtof(tok.c_str(), nullptr));
      continue;
    }
    std::string tok;
    while (in >> tok) g.rows[name].push_back(std::strtof(tok.c_str(), nullptr));
  }
  return g;
}

std::string to_hex(const std::vector<std::uint8_t>& b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (std::uint8_t c : b) {
    s += d[c >> 4];
    s += d[c & 15];
  }
  return s;
}

}  // namespace

TEST_CASE("quantize matches gguf-py's reference quantizers bit for bit", "[cpu][golden][gguf]") {
  const Golden g = read_golden();
  // Same input as scripts/golden/make_quant_fixtures.py.
  std::vector<float> x;
  for (int i = 0; i < 256; ++i) x.push_back(float((i * 7919) % 2001 - 1000) / 256.0f);
  for (int i = 0; i < 32; ++i) x.push_back(0.0f);
  for (int i = 0; i < 32; ++i) x.push_back(0.75f);
  for (TensorType t : {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_1}) {
    INFO(gguf::to_string(t));
    REQUIRE(g.quantized_hex.count(gguf::to_string(t)));
    std::vector<std::uint8_t> q(gguf::row_bytes(t, x.size()));
    gguf::quantize(t, x.data(), q.data(), x.size());
    CHECK(to_hex(q) == g.quantized_hex.at(gguf::to_string(t)));
  }
}

TEST_CASE("dequantize of the real model matches gguf-py", "[cpu][golden][gguf]") {
  const auto path = test::require_model();
  const Golden g = read_golden();
  REQUIRE(g.rows.size() >= 2);
  const gguf::File file = gguf::File::open(path);
  for (const auto& [name, want] : g.rows) {
    INFO(name);
    REQUIRE(want.size() == 64);
    const gguf::TensorInfo& t = file.tensor(name);
    std::vector<float> row(t.shape[0], -12345.0f);
    gguf::dequantize(t.type, t.data, row.data(), row.size());
    for (std::size_t i = 0; i < 64; ++i) {
      INFO("element " << i);
      REQUIRE(row[i] == want[i]);  // both are fp32 computed with q*d(+m) and no FMA: exact
    }
  }
  // Requantizing a dequantized Q8_0 row reproduces llama.cpp's bytes exactly.
  const gguf::TensorInfo& emb = file.tensor("token_embd.weight");
  REQUIRE(emb.type == TensorType::Q8_0);
  const std::size_t cols = emb.shape[0];
  std::vector<float> row(cols);
  gguf::dequantize(emb.type, emb.data, row.data(), cols);
  std::vector<std::uint8_t> re(gguf::row_bytes(emb.type, cols));
  gguf::quantize(emb.type, row.data(), re.data(), cols);
  CHECK(std::memcmp(re.data(), emb.data, re.size()) == 0);
}

TEST_CASE("dequantize throughput (prints GB/s of fp32 output)", "[.][bench][gguf]") {
  const std::size_t n = 32 * 1024 * 64;
  auto time_it = [&](TensorType t, const std::vector<std::uint8_t>& q) {
    std::vector<float> y(n);
    const int reps = 20;
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) gguf::dequantize(t, q.data(), y.data(), n);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    WARN(gguf::to_string(t) << ": " << double(n) * reps / s * 1e-9 << " G elements/s");
    CHECK(std::isfinite(y[n / 2]));
  };
  const auto x = rand_floats(n, 1, 1.0f);
  for (TensorType t : {TensorType::F16, TensorType::BF16, TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_1}) {
    std::vector<std::uint8_t> q(gguf::row_bytes(t, n));
    gguf::quantize(t, x.data(), q.data(), n);
    time_it(t, q);
  }
  // The read-only types (no quantize): blocks of 0x11 bytes (fp16 0x1111 ~ 6.8e-4 scales).
  for (TensorType t : {TensorType::Q5_0, TensorType::Q5_1, TensorType::IQ4_NL, TensorType::IQ4_XS, TensorType::Q2_K,
                       TensorType::Q3_K, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K})
    time_it(t, std::vector<std::uint8_t>(gguf::row_bytes(t, n), 0x11));
}

TEST_CASE("dequantize of the read-only types (Q5_0, Q5_1, IQ4_NL, IQ4_XS, K-quants) matches gguf-py", "[cpu][golden][gguf]") {
  // Seeded random blocks from scripts/golden/make_quant_fixtures.py, dequantized there by
  // gguf-py (numpy, float32 in ggml's order of operations; quant.cpp has contraction off).
  const Golden g = read_golden();
  for (TensorType t : {TensorType::Q5_0, TensorType::Q5_1, TensorType::IQ4_NL, TensorType::IQ4_XS, TensorType::Q2_K,
                       TensorType::Q3_K, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K}) {
    INFO(gguf::to_string(t));
    REQUIRE(g.blocks.count(gguf::to_string(t)));
    const auto& [bytes, want] = g.blocks.at(gguf::to_string(t));
    REQUIRE(bytes.size() == want.size() / gguf::block_elements(t) * gguf::block_bytes(t));
    CHECK(gguf::row_bytes(t, want.size()) == bytes.size());
    std::vector<float> got(want.size(), -12345.0f);
    gguf::dequantize(t, bytes.data(), got.data(), got.size());
    std::size_t bad = 0;
    for (std::size_t i = 0; i < want.size(); ++i) bad += got[i] != want[i];
    INFO("first element: got " << got[0] << " want " << want[0]);
    CHECK(bad == 0);
    // Read-only types: quantize refuses them with a message naming the type.
    if (t != TensorType::IQ4_XS && t != TensorType::Q2_K) continue;
    std::vector<float> x(gguf::block_elements(t), 0.5f);
    std::vector<std::uint8_t> q(gguf::block_bytes(t));
    CHECK_THROWS_WITH(gguf::quantize(t, x.data(), q.data(), x.size()), Catch::Contains(gguf::to_string(t)));
  }
}
