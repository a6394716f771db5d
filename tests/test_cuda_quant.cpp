// Quantized weights on the GPU (cuda/quant_weights.hpp, ModelOptions::gpu_quantized).
//
// * The host repacking (runs without a GPU): every weight of the repacked layout equals
//   gguf::dequantize of the original GGUF rows, for Q8_0, Q4_0 and Q4_1.
// * [cuda] Every kernel over quantized weights against the host reference: the decode GEMV
//   and the fused gate/up + SwiGLU GEMV (vs a double-precision matmul over the weights rounded
//   to the compute type), whole-matrix dequantization and embedding rows (vs the rounded
//   weights: q * d is exact in fp32, so the device weights equal them bit for bit).
// * [cuda][model] A random model with quantized weights run with gpu_quantized matches the
//   same model with converted weights and the CPU reference, in a fraction of the memory,
//   through every route: prefill (dequantize + cuBLAS), decode GEMVs, a 12-sequence decode
//   step (a graph of the 16-token bucket), an LM head larger than the scratch matrix (GEMVs
//   over groups of 8 logits rows), tied and untied embeddings, and the fused batch-1 decode
//   path over quantized matrices (the default) against the unfused one (VIREO_DECODE_FUSION=0).
#include <catch2/catch.hpp>

#ifdef VIREO_WITH_CUDA
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "../cuda/cuda_api.hpp"
#include "../cuda/cuda_backend.hpp"
#include "../cuda/quant_weights.hpp"
#include "cuda_test_util.hpp"
#include "model/model_impl.hpp"
#include "test_util.hpp"
#include "vireo/batch.hpp"
#include "vireo/error.hpp"
#include "vireo/gguf.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/model.hpp"

using namespace vireo::test_cuda;
using vireo::gguf::TensorType;

namespace {

const TensorType kQuantTypes[] = {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_1};
const DType k16[] = {DType::F16, DType::BF16};

std::string name_of(TensorType t, DType dt) {
  return std::string(vireo::gguf::to_string(t)) + "/" + vireo::to_string(dt);
}


}  // namespace

TEST_CASE("quantized rows repack into the GPU layout without changing a weight", "[cpu][quant]") {
  std::mt19937 rng(3);
  for (TensorType t : kQuantTypes)
    for (auto [rows, cols] : {std::pair{3, 32}, std::pair{5, 576}, std::pair{2, 4096}}) {
      INFO(vireo::gguf::to_string(t) << " " << rows << "x" << cols);
      const QMatrix q = make_qmatrix(t, rows, cols, rng, 2.0f);
      const std::size_t rb = vireo::gguf::row_bytes(t, std::uint64_t(cols));
      std::vector<float> row(static_cast<std::size_t>(cols));
      const std::vector<float> got = weights_of(q);
      for (int r = 0; r < rows; ++r) {
        vireo::gguf::dequantize(t, q.gguf_bytes.data() + std::size_t(r) * rb, row.data(), row.size());
        for (int c = 0; c < cols; ++c) {
          const float ref = row[std::size_t(c)], g = got[std::size_t(r) * cols + c];
          // q * d is exact in fp32 (<= 8 + 11 significant bits), so even Q4_1's q * d + m is
          // the same float whether or not a compiler fuses it into an FMA.
          REQUIRE(g == ref);
        }
      }
    }
  std::vector<std::uint8_t> qs(64);
  std::vector<std::uint16_t> d(4);
  CHECK_THROWS_AS(vc::repack_quant_rows(TensorType::F16, qs.data(), 1, 32, qs.data(), d.data(), nullptr), vireo::Error);
  CHECK_THROWS_AS(vc::repack_quant_rows(TensorType::Q8_0, qs.data(), 1, 48, qs.data(), d.data(), nullptr),
                  vireo::Error);
  vc::QFormat f{};
  CHECK_FALSE(vc::quant_format(TensorType::BF16, &f));
}

TEST_CASE("cuda quantized GEMVs match the CPU matmul over the same weights", "[cuda][quant]") {
  VIREO_REQUIRE_GPU();
  std::mt19937 rng(5);
  struct Shape { int n, rows, cols; };
  // One block per row; SmolLM2's width (4.5 chunks: a partial chunk, lanes past the row end);
  // fewer chunks than warps; rows not a multiple of 16; Llama-8B's width with 8 tokens;
  // Llama-8B's down width (112 chunks: 14 per warp); 8 tokens of 5120.
  const Shape shapes[] = {{1, 37, 32},    {3, 129, 576}, {2, 33, 160},  {8, 48, 4096},
                          {5, 17, 1152}, {2, 20, 14336}, {8, 16, 5120}};
  for (TensorType t : kQuantTypes)
    for (DType dt : k16)
      for (const Shape& s : shapes)
        for (bool y_f32 : {false, true}) {
          const std::string what = "gemv_q " + name_of(t, dt) + " n=" + std::to_string(s.n) +
                                   " rows=" + std::to_string(s.rows) + " cols=" + std::to_string(s.cols);
          INFO(what);
          const QMatrix q = make_qmatrix(t, s.rows, s.cols, rng);
          const DeviceQ g = to_device_q(q);
          // What the tensor cores multiply: the weights rounded to T.
          const auto w = round_to(dt, weights_of(q));
          const auto x = random_vec(std::size_t(s.n) * s.cols, dt, rng);
          auto dx = to_device(dt, x);
          const DType ydt = y_f32 ? DType::F32 : dt;
          auto dy = poisoned(std::size_t(s.n) * s.rows * vireo::dtype_size(ydt));
          REQUIRE(vc::gemv_q(dt, g.view, dx.get(), dy.get(), y_f32, s.n, s.rows, s.cols, nullptr) == 0);
          vc::synchronize(nullptr);
          Tol tol = tol_for(ydt);
          tol.atol *= std::sqrt(float(s.cols) / 64.0f);  // fp32 accumulation error grows with the length
          check_close(from_device(ydt, dy, std::size_t(s.n) * s.rows), ref_matmul(x, w, s.n, s.rows, s.cols), tol, what);
        }
  // Fused gate/up + SwiGLU over a stacked quantized [2 ff, cols] matrix.
  for (TensorType t : kQuantTypes)
    for (DType dt : k16)
      for (auto [n, ff, cols] : {std::tuple{1, 40, 576}, std::tuple{6, 24, 4096}, std::tuple{3, 20, 160}}) {
        const std::string what = "gemv_swiglu_q " + name_of(t, dt) + " n=" + std::to_string(n);
        INFO(what);
        const QMatrix q = make_qmatrix(t, 2 * ff, cols, rng);
        const DeviceQ g = to_device_q(q);
        const auto w = round_to(dt, weights_of(q));
        const auto x = random_vec(std::size_t(n) * cols, dt, rng);
        auto dx = to_device(dt, x);
        auto dh = poisoned(std::size_t(n) * ff * vireo::dtype_size(dt));
        REQUIRE(vc::gemv_swiglu_q(dt, g.view, dx.get(), dh.get(), n, ff, cols, nullptr) == 0);
        // g and u rounded to T as stored by the unfused path, then silu(g) * u rounded to T.
        const auto gu = round_to(dt, ref_matmul(x, w, n, 2 * ff, cols));
        std::vector<float> h(std::size_t(n) * ff);
        for (int tk = 0; tk < n; ++tk)
          for (int i = 0; i < ff; ++i) {
            const float gv = gu[std::size_t(tk) * 2 * ff + std::size_t(i)];
            const float uv = gu[std::size_t(tk) * 2 * ff + std::size_t(ff + i)];
            h[std::size_t(tk) * ff + std::size_t(i)] = gv / (1.0f + std::exp(-gv)) * uv;
          }
        Tol tol = tol_for(dt);
        tol.rtol *= 2;  // g or u may round one step away from the reference, then feed silu
        check_close(from_device(dt, dh, h.size()), round_to(dt, h), tol, what);
      }
  // Misuse is refused, not launched.
  const QMatrix q = make_qmatrix(TensorType::Q4_0, 16, 64, rng);
  const DeviceQ g = to_device_q(q);
  auto dx = poisoned(64 * 2 * 9), dy = poisoned(64 * 4 * 9);
  CHECK(vc::gemv_q(DType::BF16, g.view, dx.get(), dy.get(), false, vc::GEMV_MAX_TOKENS + 1, 16, 64, nullptr) != 0);
  CHECK(vc::gemv_q(DType::F32, g.view, dx.get(), dy.get(), false, 1, 16, 64, nullptr) != 0);
  CHECK(vc::gemv_q(DType::BF16, g.view, dx.get(), dy.get(), false, 1, 16, 48, nullptr) != 0);
}

TEST_CASE("cuda dequantization and quantized embedding rows give the rounded weights", "[cuda][quant]") {
  VIREO_REQUIRE_GPU();
  std::mt19937 rng(7);
  for (TensorType t : kQuantTypes)
    for (DType dt : k16) {
      const std::string what = name_of(t, dt);
      INFO(what);
      const int rows = 45, cols = 576;
      const QMatrix q = make_qmatrix(t, rows, cols, rng, 3.0f);
      const DeviceQ g = to_device_q(q);
      const auto w = round_to(dt, weights_of(q));
      auto dout = poisoned(std::size_t(rows) * cols * vireo::dtype_size(dt));
      REQUIRE(vc::dequantize_q(dt, g.view, dout.get(), rows, cols, nullptr) == 0);
      check_close(from_device(dt, dout, w.size()), w, Tol{0.0f, 0.0f}, "dequantize_q " + what);

      const std::vector<std::int32_t> tokens = {44, 0, 7, 7, 30};
      auto dtok = to_device_raw(tokens);
      auto dres = poisoned(tokens.size() * cols * 4);
      REQUIRE(vc::embed_q(dt, g.view, dtok.as<std::int32_t>(), dres.as<float>(), int(tokens.size()), cols, nullptr) == 0);
      std::vector<float> got(tokens.size() * cols), ref(tokens.size() * cols);
      dres.download(got.data(), got.size() * 4);
      for (std::size_t i = 0; i < tokens.size(); ++i)
        std::copy_n(w.begin() + std::ptrdiff_t(tokens[i]) * cols, cols, ref.begin() + std::ptrdiff_t(i) * cols);
      check_close(got, ref, Tol{0.0f, 0.0f}, "embed_q " + what);
    }
}

TEST_CASE("cuda model with quantized weights kept quantized matches converted weights and the CPU",
          "[cuda][model][quant]") {
  VIREO_REQUIRE_GPU();
  using namespace vireo;
  // vocab 1100 x d 256 = 282K weights: more than the largest layer matrix (gate/up, 1024 x 256
  // = 262K), so the LM head of a 16-row logits step takes the GEMV-group route.
  ModelConfig cfg = test::model_shape(3, 256, 4, 2, 64, 512, 1100, 1024);
  // Fixed tokens (no sampling), so every model sees the same inputs whatever its rounding.
  auto run = [](const Model& m) {
    KVCache cache(m, {.num_blocks = 128});
    std::vector<std::vector<float>> rows;
    Logits lg;
    auto keep = [&] {
      for (std::size_t r = 0; r < lg.rows(); ++r) rows.emplace_back(lg.row(r).begin(), lg.row(r).end());
    };
    // Prefill of 16 tokens, every logits row; then 4 single-token decode steps.
    const SeqId s = cache.add_sequence();
    Batch b;
    b.add(s, std::vector<Token>{1, 5, 9, 200, 17, 17, 3, 99, 100, 101, 250, 7, 8, 9, 1000, 11}, All);
    m.forward(b, cache, lg);
    keep();
    for (int i = 0; i < 4; ++i) {
      b.clear();
      b.add(s, Token(40 + 97 * i), true);
      m.forward(b, cache, lg);
      keep();
    }
    // 12 sequences, 3 tokens each, then 3 decode steps of 12 tokens: the 16-token graph
    // bucket (eager, captured, replayed) over GEMVs of 8 tokens (or, with
    // VIREO_QGEMV_MAX_TOKENS=8, over dequantized matrices and cuBLAS).
    std::vector<SeqId> seqs;
    b.clear();
    for (int i = 0; i < 12; ++i) {
      seqs.push_back(cache.add_sequence());
      b.add(seqs.back(), std::vector<Token>{Token(i), Token(3 * i + 1), Token(1099 - i)}, Want::None);
    }
    m.forward(b, cache, lg);
    for (int step = 0; step < 3; ++step) {
      b.clear();
      for (int i = 0; i < 12; ++i) b.add(seqs[std::size_t(i)], Token((31 * step + 7 * i) % 1100), true);
      m.forward(b, cache, lg);
      keep();
    }
    return rows;
  };
  using test::rel_err;
  for (bool tied : {true, false})
    for (TensorType t : kQuantTypes) {
      cfg.tied_embeddings = tied;
      INFO(vireo::gguf::to_string(t) << (tied ? " tied" : " untied"));
      const Model cpu = Model::random(cfg, 31, {.n_threads = 2}, t);
      const Model conv = Model::random(cfg, 31, {.device = Device::cuda(), .dtype = DType::BF16}, t);
      const Model native =
          Model::random(cfg, 31, {.device = Device::cuda(), .dtype = DType::BF16, .gpu_quantized = true}, t);
      // Q4: 18-20 bytes per 32 weights against 64 in bf16 (norms stay fp32 in both).
      CHECK(native.weight_bytes() < (t == TensorType::Q8_0 ? 0.6 : 0.35) * double(conv.weight_bytes()));
      // native runs its batch-1 decode steps on the fused path over quantized matrices
      // (RMSNorm, RoPE + KV write, residual adds in the GEMVs); this one never fuses (the
      // backend reads VIREO_DECODE_FUSION when it is built).
      ::setenv("VIREO_DECODE_FUSION", "0", 1);
      const Model unfused =
          Model::random(cfg, 31, {.device = Device::cuda(), .dtype = DType::BF16, .gpu_quantized = true}, t);
      ::unsetenv("VIREO_DECODE_FUSION");
      // Every step above 8 tokens dequantized for cuBLAS instead of GEMV groups.
      ::setenv("VIREO_QGEMV_MAX_TOKENS", "8", 1);
      const Model deq =
          Model::random(cfg, 31, {.device = Device::cuda(), .dtype = DType::BF16, .gpu_quantized = true}, t);
      ::unsetenv("VIREO_QGEMV_MAX_TOKENS");
      const auto ref = run(cpu), c = run(conv), nq = run(native), uq = run(unfused), dq = run(deq);
      CHECK(rel_err(uq, c) < 2e-2);
      CHECK(rel_err(dq, c) < 2e-2);
      // The same bf16 weights: only the GEMVs' summation order (and so a rare rounding of an
      // activation) differs from the converted model.
      CHECK(rel_err(nq, c) < 2e-2);
      CHECK(rel_err(nq, ref) < 3e-2);  // as the converted bf16 model against the CPU
      CHECK(rel_err(c, ref) < 3e-2);
    }
}

#endif  // VIREO_WITH_CUDA
