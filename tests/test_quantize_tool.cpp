// vireo-quantize's parts: the reference quantizers against gguf-py's bytes
// (tests/fixtures/quantize_golden.txt, made by scripts/golden/make_quantize_fixtures.py),
// the K-quant / IQ4_NL quantizers' error ordering and requantize_element's consistency,
// GPTQ and AWQ against plain rounding on synthetic correlated data, the per-tensor type
// plan, and whole-model quantization of tiny GGUF files (RTN, GPTQ, AWQ; refusals,
// cancellation).
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include "gguf/quantize_ref.hpp"
#include "quantize/awq.hpp"
#include "quantize/gptq.hpp"
#include "quantize/model_quantizer.hpp"
#include "test_util.hpp"
#include "tiny_gguf.hpp"
#include "vireo/error.hpp"
#include "vireo/gguf.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/model.hpp"
#include "vireo/tokenizer.hpp"

using namespace vireo;
using gguf::TensorType;

namespace {

std::vector<std::uint8_t> unhex(const std::string& h) {
  std::vector<std::uint8_t> out(h.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = std::uint8_t(std::stoi(h.substr(2 * i, 2), nullptr, 16));
  return out;
}

std::vector<float> quant_roundtrip(TensorType t, const std::vector<float>& x) {
  std::vector<std::uint8_t> q(gguf::row_bytes(t, x.size()));
  gguf::quantize(t, x.data(), q.data(), x.size());
  std::vector<float> y(x.size());
  gguf::dequantize(t, q.data(), y.data(), y.size());
  return y;
}

double rms_err(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return std::sqrt(s / double(a.size()));
}

// Correlated inputs: X = Z A with A a random mixing matrix, plus a few loud channels.
std::vector<float> correlated_x(std::int64_t n, std::int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> nd;
  std::vector<float> a(static_cast<std::size_t>(cols * cols)), z(static_cast<std::size_t>(n * cols)), x(std::size_t(n * cols), 0.0f);
  for (auto& v : a) v = nd(rng) / std::sqrt(float(cols));
  for (std::int64_t c = 0; c < cols; ++c) a[std::size_t(c * cols + c)] += 1.0f;
  for (auto& v : z) v = nd(rng);
  for (std::int64_t t = 0; t < n; ++t)
    for (std::int64_t k = 0; k < cols; ++k)
      for (std::int64_t c = 0; c < cols; ++c) x[std::size_t(t * cols + c)] += z[std::size_t(t * cols + k)] * a[std::size_t(k * cols + c)];
  for (std::int64_t t = 0; t < n; ++t)
    for (std::int64_t c = 0; c < cols; c += 17) x[std::size_t(t * cols + c)] *= 8.0f;
  return x;
}

// ||(W - deq(Q)) X^T||^2 over all rows.
double output_err(const std::vector<float>& w, const std::vector<float>& deq, const std::vector<float>& x,
                  std::int64_t rows, std::int64_t cols, std::int64_t n) {
  double s = 0;
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t t = 0; t < n; ++t) {
      double acc = 0;
      for (std::int64_t c = 0; c < cols; ++c)
        acc += (double(w[std::size_t(r * cols + c)]) - deq[std::size_t(r * cols + c)]) * x[std::size_t(t * cols + c)];
      s += acc * acc;
    }
  return s;
}

}  // namespace

TEST_CASE("reference quantizers write gguf-py's bytes", "[quant][quantize]") {
  std::ifstream in(test::fixture("quantize_golden.txt"));
  REQUIRE(in);
  std::string line;
  int cases = 0;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string name, xhex, qhex;
    std::size_t n = 0;
    ls >> name >> n >> xhex >> qhex;
    TensorType t{};
    bool found = false;
    for (TensorType c : {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1,
                         TensorType::BF16})
      if (name == gguf::to_string(c)) t = c, found = true;
    REQUIRE(found);
    const auto xb = unhex(xhex);
    REQUIRE(xb.size() == n * 4);
    std::vector<float> x(n);
    std::memcpy(x.data(), xb.data(), xb.size());
    const auto want = unhex(qhex);
    std::vector<std::uint8_t> got(gguf::row_bytes(t, n));
    gguf::quantize(t, x.data(), got.data(), n);
    INFO(name);
    REQUIRE(got.size() == want.size());
    std::size_t first_bad = got.size();
    for (std::size_t i = 0; i < got.size(); ++i)
      if (got[i] != want[i]) {
        first_bad = i;
        break;
      }
    INFO("first differing byte " << first_bad);
    CHECK(first_bad == got.size());
    ++cases;
  }
  CHECK(cases == 6);
}

TEST_CASE("K-quant and IQ4_NL quantizers: error ordering and requantize_element", "[quant][quantize]") {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  std::vector<float> x(256 * 16);
  for (auto& v : x) v = nd(rng) * 0.05f;
  x[100] = 0.9f;  // an outlier
  const double e80 = rms_err(x, quant_roundtrip(TensorType::Q8_0, x)), e40 = rms_err(x, quant_roundtrip(TensorType::Q4_0, x)),
               e41 = rms_err(x, quant_roundtrip(TensorType::Q4_1, x)), e50 = rms_err(x, quant_roundtrip(TensorType::Q5_0, x)),
               enl = rms_err(x, quant_roundtrip(TensorType::IQ4_NL, x)), e3k = rms_err(x, quant_roundtrip(TensorType::Q3_K, x)),
               e4k = rms_err(x, quant_roundtrip(TensorType::Q4_K, x)), e5k = rms_err(x, quant_roundtrip(TensorType::Q5_K, x)),
               e6k = rms_err(x, quant_roundtrip(TensorType::Q6_K, x));
  INFO("rms: Q8_0 " << e80 << " Q4_0 " << e40 << " Q4_1 " << e41 << " Q5_0 " << e50 << " IQ4_NL " << enl << " Q3_K "
                    << e3k << " Q4_K " << e4k << " Q5_K " << e5k << " Q6_K " << e6k);
  // Bits decide the order: 3 < 4 < 5 < 6 < 8; the searched 4-bit formats beat Q4_0's
  // max-based scale on Gaussian data.
  CHECK(e3k > e4k);
  CHECK(e4k < e40);
  CHECK(enl < e40);
  CHECK(e5k < e4k);
  CHECK(e50 < e40);
  CHECK(e6k < e5k);
  CHECK(e80 < e6k);
  CHECK(e3k < 2.5 * e40);  // 3 bits: about twice the 4-bit error, not a broken scale

  // Re-rounding every element onto its block's own grid with its own dequantized value
  // changes nothing, and returns that value; a different value returns a grid point.
  for (TensorType t : {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1,
                       TensorType::IQ4_NL, TensorType::Q3_K, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K}) {
    INFO(gguf::to_string(t));
    REQUIRE(gguf::quant_ref::can_requantize(t));
    const std::size_t be = gguf::block_elements(t), bb = gguf::block_bytes(t);
    std::vector<std::uint8_t> q(gguf::row_bytes(t, x.size()));
    gguf::quantize(t, x.data(), q.data(), x.size());
    std::vector<float> deq(x.size());
    gguf::dequantize(t, q.data(), deq.data(), x.size());
    const auto q0 = q;
    std::size_t bad_value = 0;
    for (std::size_t i = 0; i < x.size(); ++i)
      bad_value += gguf::quant_ref::requantize_element(t, q.data() + (i / be) * bb, int(i % be), deq[i]) != deq[i];
    CHECK(bad_value == 0);
    CHECK(q == q0);
    // Move every element to a fresh value: the returned values are what dequantize reads.
    std::vector<float> back(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      const float v = nd(rng) * 0.05f;
      back[i] = gguf::quant_ref::requantize_element(t, q.data() + (i / be) * bb, int(i % be), v);
    }
    std::vector<float> deq2(x.size());
    gguf::dequantize(t, q.data(), deq2.data(), x.size());
    std::size_t mismatch = 0;
    for (std::size_t i = 0; i < x.size(); ++i) mismatch += back[i] != deq2[i];
    CHECK(mismatch == 0);
  }
}

TEST_CASE("GPTQ lowers the output error of rounding on correlated inputs", "[quant][quantize]") {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  for (auto [type, cols] : {std::pair{TensorType::Q4_0, 64}, std::pair{TensorType::Q3_K, 256},
                            std::pair{TensorType::Q4_K, 256}}) {
    INFO(gguf::to_string(type));
    const std::int64_t rows = 24, n = 1024;
    const auto x = correlated_x(n, cols, rng);
    std::vector<float> w(static_cast<std::size_t>(rows * cols));
    for (auto& v : w) v = nd(rng) * 0.1f;
    std::vector<double> h(std::size_t(cols * cols), 0.0);
    for (std::int64_t t = 0; t < n; ++t)
      for (int i = 0; i < cols; ++i)
        for (int j = 0; j < cols; ++j)
          h[std::size_t(i * cols + j)] += 2.0 * double(x[std::size_t(t * cols + i)]) * x[std::size_t(t * cols + j)];
    const auto rtn = quant_roundtrip(type, w);
    const double e_rtn = output_err(w, rtn, x, rows, cols, n);
    for (bool act_order : {false, true}) {
      quant::GptqOptions o;
      o.act_order = act_order;
      o.block_cols = 32;
      const auto bytes = quant::gptq_quantize(w.data(), rows, cols, h, type, o);
      REQUIRE(bytes.size() == gguf::row_bytes(type, std::uint64_t(rows * cols)));
      std::vector<float> deq(w.size());
      gguf::dequantize(type, bytes.data(), deq.data(), deq.size());
      const double e = output_err(w, deq, x, rows, cols, n);
      INFO("act_order " << act_order << ": output error " << e << " vs RTN " << e_rtn);
      CHECK(e < 0.8 * e_rtn);
    }
  }
  // Refusals.
  std::vector<float> w(48 * 2, 0.1f);
  std::vector<double> h(48 * 48, 0.0);
  CHECK_THROWS_AS(quant::gptq_quantize(w.data(), 2, 48, h, TensorType::Q4_0), Error);
  std::vector<double> h2(10, 0.0);
  CHECK_THROWS_AS(quant::gptq_quantize(w.data(), 3, 32, h2, TensorType::Q4_0), Error);
  CHECK_THROWS_AS(quant::gptq_quantize(w.data(), 3, 32, std::vector<double>(32 * 32, 1.0), TensorType::F16), Error);
}

TEST_CASE("AWQ finds scales that lower the output error on activation outliers", "[quant][quantize]") {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  const std::int64_t cols = 128, n = 256, rows = 48;
  std::vector<float> x(static_cast<std::size_t>(n * cols));
  for (std::int64_t t = 0; t < n; ++t)
    for (std::int64_t c = 0; c < cols; ++c) x[std::size_t(t * cols + c)] = nd(rng) * (c % 16 == 3 ? 20.0f : 1.0f);
  std::vector<float> w1(static_cast<std::size_t>(rows * cols)), w2(static_cast<std::size_t>(rows * cols));
  for (auto& v : w1) v = nd(rng) * 0.05f;
  for (auto& v : w2) v = nd(rng) * 0.05f;
  std::vector<float> mean(std::size_t(cols), 0.0f);
  for (std::int64_t t = 0; t < n; ++t)
    for (std::int64_t c = 0; c < cols; ++c) mean[std::size_t(c)] += std::abs(x[std::size_t(t * cols + c)]) / float(n);
  const quant::AwqLinear ls[] = {{w1.data(), rows, TensorType::Q4_0}, {w2.data(), rows, TensorType::Q4_1}};
  const quant::AwqResult r = quant::awq_search(ls, cols, x.data(), n, mean.data(), 20);
  INFO("alpha " << r.alpha << " error " << r.err << " vs RTN " << r.err_rtn);
  CHECK(r.alpha > 0.0);
  CHECK(r.err < 0.8 * r.err_rtn);
  // The reported error is the one an independent evaluation of the scaled weights gives.
  double indep = 0;
  for (const auto& l : ls) {
    std::vector<float> ws(static_cast<std::size_t>(rows * cols));
    for (std::int64_t i = 0; i < rows * cols; ++i) ws[std::size_t(i)] = l.w[i] * r.scales[std::size_t(i % cols)];
    auto deq = quant_roundtrip(l.type, ws);
    for (std::int64_t i = 0; i < rows * cols; ++i) deq[std::size_t(i)] /= r.scales[std::size_t(i % cols)];
    indep += output_err(std::vector<float>(l.w, l.w + rows * cols), deq, x, rows, cols, n);
  }
  CHECK(r.err == Approx(indep).epsilon(1e-3));
}

TEST_CASE("the per-tensor type plan falls back as llama.cpp does, or refuses", "[quantize]") {
  CHECK(quant::planned_type(TensorType::Q4_K, 1536, "a") == TensorType::Q4_K);
  CHECK(quant::planned_type(TensorType::Q4_K, 576, "a") == TensorType::Q5_0);
  CHECK(quant::planned_type(TensorType::Q3_K, 576, "a") == TensorType::IQ4_NL);
  CHECK(quant::planned_type(TensorType::Q5_K, 576, "a") == TensorType::Q5_1);
  CHECK(quant::planned_type(TensorType::Q6_K, 576, "a") == TensorType::Q8_0);
  CHECK(quant::planned_type(TensorType::Q4_0, 576, "a") == TensorType::Q4_0);
  CHECK_THROWS_WITH(quant::planned_type(TensorType::Q4_0, 48, "blk.0.ffn_down.weight"),
                    Catch::Contains("blk.0.ffn_down.weight") && Catch::Contains("48"));
  CHECK_THROWS_WITH(quant::planned_type(TensorType::Q4_K, 48, "t"), Catch::Contains("Q5_0"));
}

TEST_CASE("vireo-quantize: tiny models by RTN, GPTQ and AWQ load and stay close; refusals leave no file",
          "[quantize]") {
  test::TinySpec spec;
  spec.d = 64;
  spec.heads = 4;
  spec.kv = 2;
  spec.ff = 256;
  const auto in = test::write_tmp(test::tiny_gguf(spec), "quantize-in");
  const auto out = std::filesystem::temp_directory_path() / "vireo-test-quantize-out.gguf";
  std::filesystem::remove(out);
  const Model ref = Model::load(in, {.n_threads = 1});
  std::vector<Token> calib;
  const std::string text = "The quick brown fox jumps over the lazy dog; def f(x): return x * 2 + 1  ";
  for (int rep = 0; calib.size() < 256; ++rep)
    for (Token t : ref.tokenizer().encode(text, {.add_special = false})) calib.push_back(t);
  calib.resize(256);
  std::vector<Token> probe(ref.tokenizer().encode("hello world, a probe"));

  auto logits_of = [&](const Model& m) {
    KVCache c(m, {.num_blocks = 8});
    Batch b;
    b.add(c.add_sequence(), probe, All);
    Logits lg = m.forward(b, c);
    std::vector<float> v;
    for (std::size_t r = 0; r < lg.rows(); ++r) v.insert(v.end(), lg.row(r).begin(), lg.row(r).end());
    return v;
  };
  const auto ref_logits = logits_of(ref);
  auto err_of = [&](const std::vector<float>& v) { return rms_err(v, ref_logits); };

  quant::ModelQuantizeOptions o;
  o.type = TensorType::Q4_K;
  o.calibration = calib;
  o.calib_ctx = 64;
  o.n_threads = 2;
  double e_rtn = 0;
  for (auto method : {quant::Method::RTN, quant::Method::GPTQ, quant::Method::AWQ}) {
    o.method = method;
    quant::quantize_model(in, out, o);
    const gguf::File f = gguf::File::open(out);
    CHECK(f.get("general.file_type").as_uint() == 14);
    CHECK(f.tensor("blk.0.attn_norm.weight").type == TensorType::F32);
    CHECK(f.tensor("token_embd.weight").type == TensorType::Q8_0);
    CHECK(f.tensor("blk.0.attn_q.weight").type == TensorType::Q5_0);   // 64-wide rows: the fallback
    CHECK(f.tensor("blk.1.ffn_down.weight").type == TensorType::Q4_K);  // 256-wide rows
    CHECK(f.find("tokenizer.ggml.tokens") != nullptr);
    const Model q = Model::load(out, {.n_threads = 1});
    const double e = err_of(logits_of(q));
    INFO("method " << int(method) << " logits rms error " << e);
    CHECK(std::isfinite(e));
    CHECK(e > 0.0);
    if (method == quant::Method::RTN) e_rtn = e;
    else CHECK(e < 3.0 * e_rtn);  // calibrated on 256 tokens of a tiny random model: sane, not better
  }
  std::filesystem::remove(out);

  // A type that does not split the rows, without a fallback: Error, no file.
  o.method = quant::Method::RTN;
  spec.ff = 48;
  const auto in2 = test::write_tmp(test::tiny_gguf(spec), "quantize-in2");
  CHECK_THROWS_WITH(quant::quantize_model(in2, out, o), Catch::Contains("ffn_down"));
  CHECK_FALSE(std::filesystem::exists(out));
  o.type = TensorType::Q4_0;
  CHECK_THROWS_AS(quant::quantize_model(in2, out, o), Error);
  CHECK_FALSE(std::filesystem::exists(out));
  // Calibration shorter than one window, cancellation: Error, no file, no temporary.
  o.type = TensorType::Q4_K;
  o.method = quant::Method::GPTQ;
  o.calibration.resize(10);
  CHECK_THROWS_AS(quant::quantize_model(in, out, o), Error);
  std::atomic<bool> cancel{true};
  o.calibration = calib;
  o.cancel = &cancel;
  CHECK_THROWS_AS(quant::quantize_model(in, out, o), Error);
  o.method = quant::Method::RTN;
  CHECK_THROWS_AS(quant::quantize_model(in, out, o), Error);
  CHECK_FALSE(std::filesystem::exists(out));
  CHECK_FALSE(std::filesystem::exists(out.string() + ".vireo-part"));
  std::filesystem::remove(in);
  std::filesystem::remove(in2);
}
