// Weight upload and conversion (device_weights.hpp): dense matrices are dequantized and
// converted on the host in chunks of ~64 MiB spread over the host's cores, then copied;
// quantized ones are split into quants / scales / minimums (cuda::repack_quant_rows).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <thread>
#include <utility>

#include "backend/device_weights.hpp"
#include "cpu/thread_pool.hpp"
#include "vireo/error.hpp"
#include "vireo/gguf.hpp"

namespace vireo::detail::cuda_backend {
namespace {

class Uploader {
 public:
  Uploader(DType dt, bool keep_quant, std::size_t& bytes) : dt_(dt), keep_quant_(keep_quant), bytes_(bytes) {}

  /// Stack the matrices (same column count) row-wise, dequantize, convert to dt_, upload; with
  /// gpu_quantized, matrices whose parts share a Q8_0 / Q4_0 / Q4_1 type stay quantized.
  Mat matrix(std::initializer_list<const WeightView*> parts) {
    if (keep_quant_) {
      cuda::QFormat f{};
      const WeightView* p0 = *parts.begin();
      bool same = p0 && *p0 && cuda::quant_format(p0->type, &f) && p0->cols % 32 == 0;
      for (const WeightView* p : parts) same = same && p && *p && p->type == p0->type && p->cols == p0->cols;
      if (same) return quant(parts, f);
    }
    Mat m;
    m.cols = int((*parts.begin())->cols);
    for (const WeightView* p : parts) {
      if (!*p) throw Error(ErrorCode::InvalidModel, "a weight matrix the CUDA backend needs is missing");
      if (p->cols != m.cols)
        throw Error(ErrorCode::InvalidModel, fmt::format("stacked matrices have {} and {} columns", m.cols, p->cols));
      m.rows += int(p->rows);
    }
    const std::size_t es = dtype_size(dt_), row_bytes = std::size_t(m.cols) * es;
    m.buf = cuda::DeviceBuffer(row_bytes * std::size_t(m.rows));
    bytes_ += m.buf.size();
    // Rows are converted in chunks of ~64 MiB of output, each chunk split over the host's
    // cores (an 8B model has 8e9 weights to dequantize and convert), then uploaded.
    const std::size_t chunk_rows = std::max<std::size_t>(1, (std::size_t(64) << 20) / row_bytes);
    std::vector<std::pair<const WeightView*, std::int64_t>> row_of;  // global row -> (part, row)
    row_of.reserve(std::size_t(m.rows));
    for (const WeightView* p : parts)
      for (std::int64_t r = 0; r < p->rows; ++r) row_of.emplace_back(p, r);
    std::vector<char> staging(std::min(chunk_rows, row_of.size()) * row_bytes);
    cpu::ThreadPool pool(int(std::max(1u, std::thread::hardware_concurrency())));
    for (std::size_t c0 = 0; c0 < row_of.size(); c0 += chunk_rows) {
      const std::size_t n = std::min(row_of.size(), c0 + chunk_rows) - c0;
      pool.parallel_for(std::int64_t(n), [&](std::int64_t i0, std::int64_t i1) {
        std::vector<float> f(static_cast<std::size_t>(m.cols));
        for (std::int64_t i = i0; i < i1; ++i) {
          const auto [p, r] = row_of[c0 + std::size_t(i)];
          gguf::dequantize(p->type, p->row(r), f.data(), f.size());
          cuda::convert_from_f32(dt_, f.data(), staging.data() + std::size_t(i) * row_bytes, f.size());
        }
      });
      m.buf.upload(staging.data(), n * row_bytes, c0 * row_bytes);
    }
    return m;
  }

  /// The GGUF blocks of the parts, stacked row-wise, split into quants / scales / minimums.
  Mat quant(std::initializer_list<const WeightView*> parts, cuda::QFormat f) {
    Mat m;
    m.quant = true;
    m.fmt = f;
    m.cols = int((*parts.begin())->cols);
    for (const WeightView* p : parts) m.rows += int(p->rows);
    const std::size_t nb = std::size_t(m.cols) / 32, qb = std::size_t(cuda::quant_block_bytes(f));
    const bool has_min = cuda::quant_has_min(f);
    m.buf = cuda::DeviceBuffer(std::size_t(m.rows) * nb * qb);
    m.scales = cuda::DeviceBuffer(std::size_t(m.rows) * nb * 2);
    if (has_min) m.mins = cuda::DeviceBuffer(std::size_t(m.rows) * nb * 2);
    bytes_ += m.buf.size() + m.scales.size() + m.mins.size();
    const std::int64_t chunk_rows = std::max<std::int64_t>(1, std::int64_t((std::size_t(64) << 20) / (nb * qb)));
    std::vector<std::uint8_t> qs;
    std::vector<std::uint16_t> d, mn;
    std::int64_t row0 = 0;  // first row of the current part in the stacked matrix
    for (const WeightView* p : parts) {
      for (std::int64_t r = 0; r < p->rows; r += chunk_rows) {
        const std::int64_t n = std::min(chunk_rows, p->rows - r);
        qs.resize(std::size_t(n) * nb * qb);
        d.resize(std::size_t(n) * nb);
        mn.resize(has_min ? std::size_t(n) * nb : 0);
        cuda::repack_quant_rows(p->type, p->row(r), n, m.cols, qs.data(), d.data(), has_min ? mn.data() : nullptr);
        const std::size_t at = std::size_t(row0 + r) * nb;
        m.buf.upload(qs.data(), qs.size(), at * qb);
        m.scales.upload(d.data(), d.size() * 2, at * 2);
        if (has_min) m.mins.upload(mn.data(), mn.size() * 2, at * 2);
      }
      row0 += p->rows;
    }
    return m;
  }

  /// A norm weight of n elements, in fp32.
  cuda::DeviceBuffer f32(const WeightView& v, int n) {
    if (!v || v.rows * v.cols != n)
      throw Error(ErrorCode::InvalidModel, fmt::format("norm weight has {} elements, expected {}", v.rows * v.cols, n));
    std::vector<float> f(static_cast<std::size_t>(n));
    gguf::dequantize(v.type, v.data, f.data(), f.size());
    cuda::DeviceBuffer b(f.size() * 4);
    b.upload(f.data(), f.size() * 4);
    bytes_ += b.size();
    return b;
  }

 private:
  DType dt_;
  bool keep_quant_;
  std::size_t& bytes_;
};

}  // namespace

DeviceWeights upload_weights(const ModelConfig& cfg, const Weights& w, DType dt, bool keep_quant,
                             const std::function<void(float)>& progress) {
  DeviceWeights dw;
  Uploader up(dt, keep_quant, dw.bytes);
  const int nh = cfg.n_heads, nkv = cfg.n_kv_heads, hd = cfg.head_dim;
  dw.tok_embd = up.matrix({&w.tok_embd});
  dw.output_norm = up.f32(w.output_norm, cfg.d_model);
  if (!cfg.tied_embeddings && w.output && w.output.data != w.tok_embd.data) dw.output = up.matrix({&w.output});
  dw.layers.resize(std::size_t(cfg.n_layers));
  for (int l = 0; l < cfg.n_layers; ++l) {
    const LayerWeights& L = w.layers[std::size_t(l)];
    Layer& D = dw.layers[std::size_t(l)];
    D.attn_norm = up.f32(L.attn_norm, cfg.d_model);
    D.ffn_norm = up.f32(L.ffn_norm, cfg.d_model);
    D.wqkv = up.matrix({&L.wq, &L.wk, &L.wv});
    D.wo = up.matrix({&L.wo});
    D.wgu = up.matrix({&L.w_gate, &L.w_up});
    D.wdown = up.matrix({&L.w_down});
    if (L.bq || L.bk || L.bv) {
      std::vector<float> b(std::size_t((nh + 2 * nkv) * hd), 0.0f);
      auto put = [&](const WeightView& v, std::size_t at, std::size_t n) {
        if (v) gguf::dequantize(v.type, v.data, b.data() + at, n);
      };
      put(L.bq, 0, std::size_t(nh * hd));
      put(L.bk, std::size_t(nh * hd), std::size_t(nkv * hd));
      put(L.bv, std::size_t((nh + nkv) * hd), std::size_t(nkv * hd));
      D.bqkv = cuda::DeviceBuffer(b.size() * 4);
      D.bqkv.upload(b.data(), b.size() * 4);
    }
    if (progress) progress(float(l + 1) / float(cfg.n_layers));
  }
  // RoPE inverse frequencies exactly as the CPU reference computes them.
  std::vector<float> inv(static_cast<std::size_t>(hd / 2));
  for (int i = 0; i < hd / 2; ++i) {
    inv[std::size_t(i)] = float(std::pow(double(cfg.rope_theta), -2.0 * i / hd));
    if (!w.rope_freqs.empty()) inv[std::size_t(i)] /= w.rope_freqs[std::size_t(i)];
  }
  dw.inv_freq = cuda::DeviceBuffer(inv.size() * 4);
  dw.inv_freq.upload(inv.data(), inv.size() * 4);
  // Steps of more than the quantized GEMV's token limit dequantize a layer matrix here for cuBLAS.
  std::size_t deq = 0;
  for (const Layer& D : dw.layers)
    for (const Mat* m : {&D.wqkv, &D.wo, &D.wgu, &D.wdown})
      if (m->quant) {
        deq = std::max(deq, std::size_t(m->rows) * std::size_t(m->cols));
        dw.layer_quant = true;
      }
  if (deq) dw.deq = cuda::DeviceBuffer(deq * dtype_size(dt));
  return dw;
}

}  // namespace vireo::detail::cuda_backend
