// Model::random: a Llama network (model/arch/llama.cpp) with random weights generated in code, for
// benchmarks of real shapes (SmolLM2-135M, Llama-3.2-1B, Llama-3.1-8B) and tests that must
// not depend on a file. Values are N(0, 1/sqrt(fan_in))-like uniforms so activations stay
// in a realistic range through many layers; norms are 1.
//
// Generation is parallel over rows (an 8B shape has 8e9 weights): row r of matrix m draws
// from its own SplitMix64 stream keyed by (seed, m, r), so the weights depend only on the
// seed, not on the thread count.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <thread>

#include "cpu/thread_pool.hpp"
#include "model/arch/arch.hpp"
#include "model/loader.hpp"
#include "model/model_impl.hpp"
#include "vireo/error.hpp"

namespace vireo {

Model Model::random(const ModelConfig& cfg, std::uint64_t seed, ModelOptions opts, gguf::TensorType type) {
  detail::validate_config(cfg);
  auto m = std::make_unique<detail::ModelImpl>();
  m->cfg = cfg;
  m->opts = opts;
  auto& w = m->store;
  const std::size_t blk = gguf::block_elements(type);

  cpu::ThreadPool pool(opts.n_threads > 0 ? opts.n_threads : int(std::max(1u, std::thread::hardware_concurrency())));
  std::uint64_t matrix_index = 0;
  auto matrix = [&](std::int64_t rows, std::int64_t cols) {
    if (std::size_t(cols) % blk != 0)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("random model: {} columns is not a multiple of the {} block of {}", cols, gguf::to_string(type), blk));
    const std::size_t row_bytes = gguf::row_bytes(type, std::uint64_t(cols));
    // Uninitialized: the rows are written in parallel below (first touch included).
    std::byte* buf = w.alloc(row_bytes * std::size_t(rows));
    const float a = std::sqrt(3.0f / float(cols));  // uniform(-a, a) has variance 1/cols
    const std::uint64_t mi = matrix_index++;
    auto fill = [&](std::int64_t r0, std::int64_t r1) {
      std::vector<float> row(static_cast<std::size_t>(cols));
      for (std::int64_t r = r0; r < r1; ++r) {
        std::uint64_t state = seed ^ (mi << 40) ^ std::uint64_t(r) * 0x9E3779B97F4A7C15ull;
        for (auto& v : row) {
          // SplitMix64 step; the top 24 bits give a uniform in [0, 1).
          std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
          z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
          z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
          z ^= z >> 31;
          v = (float(z >> 40) * 0x1.0p-24f * 2.0f - 1.0f) * a;
        }
        gguf::quantize(type, row.data(), buf + std::size_t(r) * row_bytes, std::size_t(cols));
      }
    };
    pool.parallel_for(rows, fill);
    return detail::WeightView{type, buf, rows, cols, {}};
  };
  auto ones = [&](std::int64_t n) {
    std::byte* buf = w.alloc(std::size_t(n) * sizeof(float));
    float* p = reinterpret_cast<float*>(buf);
    for (std::int64_t i = 0; i < n; ++i) p[i] = 1.0f;
    return detail::WeightView{gguf::TensorType::F32, buf, 1, n, {}};
  };

  const std::int64_t d = cfg.d_model, qd = std::int64_t(cfg.n_heads) * cfg.head_dim,
                     kvd = std::int64_t(cfg.n_kv_heads) * cfg.head_dim;
  const detail::WeightView tok_embd = matrix(cfg.vocab_size, d);
  const detail::WeightView output_norm = ones(d);
  const detail::WeightView output = cfg.tied_embeddings ? tok_embd : matrix(cfg.vocab_size, d);
  std::vector<detail::BlockWeights> blocks;
  for (int l = 0; l < cfg.n_layers; ++l) {
    detail::BlockWeights L;
    L.attn_norm = ones(d);
    L.wq = matrix(qd, d);
    L.wk = matrix(kvd, d);
    L.wv = matrix(kvd, d);
    L.wo = matrix(d, qd);
    L.ffn_norm = ones(d);
    L.w_gate = matrix(cfg.d_ff, d);
    L.w_up = matrix(cfg.d_ff, d);
    L.w_down = matrix(d, cfg.d_ff);
    blocks.push_back(L);
  }
  m->net = detail::describe_random_llama(cfg, blocks, tok_embd, output_norm, output);
  m->net.validate();
  m->cfg.arch = "llama";
  detail::attach_backend(*m);
  return Model(std::move(m));
}

}  // namespace vireo
