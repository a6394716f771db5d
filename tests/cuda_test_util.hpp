// Helpers of the [cuda] kernel tests: tolerances per dtype, values rounded to a dtype, device
// buffers from host vectors (and NaN-poisoned ones), element-wise closeness, a double-precision
// reference matmul. Only for test files built with VIREO_WITH_CUDA.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "../cuda/cuda_api.hpp"
#include "../cuda/quant_weights.hpp"
#include "vireo/gguf.hpp"
#include "vireo/types.hpp"

namespace vireo::test_cuda {

using vireo::DType;
namespace vc = vireo::cuda;

struct Tol {
  float atol, rtol;
};
inline Tol tol_for(DType dt) {
  switch (dt) {
    case DType::F32: return {1e-4f, 1e-4f};
    case DType::F16: return {2e-3f, 4e-3f};
    case DType::BF16: return {1e-2f, 1.6e-2f};
  }
  return {0, 0};
}

/// Round every element to dt (the values a dt buffer would hold; fp32 is left as it is).
inline std::vector<float> round_to(DType dt, std::vector<float> v) {
  if (dt == DType::F32) return v;
  std::vector<std::uint16_t> tmp(v.size());
  vc::convert_from_f32(dt, v.data(), tmp.data(), v.size());
  vc::convert_to_f32(dt, tmp.data(), v.data(), v.size());
  return v;
}

/// Random values in [-scale, scale], rounded to dt (returned as fp32).
inline std::vector<float> random_vec(std::size_t n, DType dt, std::mt19937& rng, float scale = 1.0f) {
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return round_to(dt, std::move(v));
}

/// A device buffer of dt elements holding v (already representable in dt).
inline vc::DeviceBuffer to_device(DType dt, const std::vector<float>& v) {
  std::vector<char> raw(v.size() * vireo::dtype_size(dt));
  vc::convert_from_f32(dt, v.data(), raw.data(), v.size());
  vc::DeviceBuffer b(std::max<std::size_t>(raw.size(), 16));
  b.upload(raw.data(), raw.size());
  return b;
}
template <typename U>
inline vc::DeviceBuffer to_device_raw(const std::vector<U>& v) {
  vc::DeviceBuffer b(std::max<std::size_t>(v.size() * sizeof(U), 16));
  b.upload(v.data(), v.size() * sizeof(U));
  return b;
}
inline std::vector<float> from_device(DType dt, const vc::DeviceBuffer& b, std::size_t n) {
  std::vector<char> raw(n * vireo::dtype_size(dt));
  b.download(raw.data(), raw.size());
  std::vector<float> out(n);
  vc::convert_to_f32(dt, raw.data(), out.data(), n);
  return out;
}
inline vc::DeviceBuffer poisoned(std::size_t bytes) {
  vc::DeviceBuffer b(std::max<std::size_t>(bytes, 16));
  b.fill_bytes(0xFF);  // NaN in fp32, fp16 and bf16
  return b;
}

/// got against ref within atol + rtol * |ref[i]| per element (no NaN). With `mag`, the
/// relative part is taken from max(|ref[i]|, mag[i]): for outputs computed from inputs of
/// magnitude mag whose rounding they inherit.
inline void check_close(const std::vector<float>& got, const std::vector<float>& ref, Tol t, const std::string& what,
                        const std::vector<float>& mag = {}) {
  REQUIRE(got.size() == ref.size());
  REQUIRE((mag.empty() || mag.size() == ref.size()));
  std::size_t bad = 0, first = 0;
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(double(got[i]) - double(ref[i]));
    const double scale = mag.empty() ? std::fabs(ref[i]) : std::max(std::fabs(ref[i]), mag[i]);
    const bool ok = !std::isnan(got[i]) && err <= t.atol + t.rtol * scale;
    if (!ok && bad++ == 0) first = i;
    if (!std::isnan(got[i])) worst = std::max(worst, err);
  }
  INFO(what << ": " << bad << " of " << got.size() << " elements out of tolerance (atol " << t.atol << ", rtol "
            << t.rtol << (mag.empty() ? "" : " of max(|ref|, input magnitude)") << "); first at " << first
            << ": got " << (bad ? got[first] : 0.f) << " ref " << (bad ? ref[first] : 0.f)
            << (mag.empty() || !bad ? "" : " magnitude " + std::to_string(mag[first])) << "; max abs err " << worst);
  CHECK(bad == 0);
}

inline const DType kDtypes[] = {DType::F32, DType::F16, DType::BF16};

// ---- matmuls --------------------------------------------------------------------------------

inline std::vector<float> ref_matmul(const std::vector<float>& x, const std::vector<float>& w, int n, int rows, int cols) {
  std::vector<float> y(std::size_t(n) * rows);
  for (int b = 0; b < n; ++b)
    for (int r = 0; r < rows; ++r) {
      double s = 0;
      for (int c = 0; c < cols; ++c) s += double(x[std::size_t(b) * cols + c]) * w[std::size_t(r) * cols + c];
      y[std::size_t(b) * rows + r] = float(s);
    }
  return y;
}

struct QMatrix {
  vireo::gguf::TensorType type;
  vc::QFormat fmt;
  int rows, cols;
  std::vector<std::uint8_t> gguf_bytes;  // the rows as a GGUF file stores them
  std::vector<std::uint8_t> qs;
  std::vector<std::uint16_t> d, m;
};

/// A random [rows, cols] matrix quantized to `type`, and its repacked form.
inline QMatrix make_qmatrix(vireo::gguf::TensorType type, int rows, int cols, std::mt19937& rng, float scale = 0.1f) {
  QMatrix q{type, vc::QFormat::Q8_0, rows, cols, {}, {}, {}, {}};
  REQUIRE(vc::quant_format(type, &q.fmt));
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> f(std::size_t(rows) * cols);
  for (auto& v : f) v = u(rng);
  const std::size_t rb = vireo::gguf::row_bytes(type, std::uint64_t(cols));
  q.gguf_bytes.resize(rb * std::size_t(rows));
  for (int r = 0; r < rows; ++r)
    vireo::gguf::quantize(type, f.data() + std::size_t(r) * cols, q.gguf_bytes.data() + std::size_t(r) * rb,
                          std::size_t(cols));
  const std::size_t nb = std::size_t(cols) / 32, n = std::size_t(rows) * nb;
  q.qs.resize(n * std::size_t(vc::quant_block_bytes(q.fmt)));
  q.d.resize(n);
  q.m.resize(vc::quant_has_min(q.fmt) ? n : 0);
  vc::repack_quant_rows(type, q.gguf_bytes.data(), rows, cols, q.qs.data(), q.d.data(), q.m.empty() ? nullptr : q.m.data());
  return q;
}

/// Every weight of the repacked matrix (host reference), in fp32.
inline std::vector<float> weights_of(const QMatrix& q) {
  std::vector<float> w(std::size_t(q.rows) * q.cols);
  for (int r = 0; r < q.rows; ++r)
    for (int c = 0; c < q.cols; ++c)
      w[std::size_t(r) * q.cols + c] =
          vc::repacked_weight(q.fmt, q.qs.data(), q.d.data(), q.m.empty() ? nullptr : q.m.data(), q.cols, r, c);
  return w;
}

/// The matrix on the device, and a view of it.
struct DeviceQ {
  vc::DeviceBuffer qs, d, m;
  vc::QuantView view;
};
inline DeviceQ to_device_q(const QMatrix& q) {
  DeviceQ g{to_device_raw(q.qs), to_device_raw(q.d), q.m.empty() ? vc::DeviceBuffer() : to_device_raw(q.m), {}};
  g.view.fmt = q.fmt;
  g.view.qs = g.qs.as<std::uint8_t>();
  g.view.d = g.d.as<std::uint16_t>();
  g.view.m = q.m.empty() ? nullptr : g.m.as<std::uint16_t>();
  return g;
}

/// A weight matrix of the fused GEMV tests: 16-bit (kind 0) or quantized (kind 1: Q4_0 with
/// bf16, Q8_0 with fp16), with the host weights the kernel multiplies (rounded to dt).
struct FusedW {
  std::vector<float> w;
  vc::DeviceBuffer dense;
  DeviceQ q;
  bool quant = false;
  vc::Status fused(DType dt, vc::GemvEpilogue e, bool norm, const void* x, void* y, int n, int rows, int cols,
                   const vc::GemvExtras& ex) const {
    return quant ? vc::gemv_fused(dt, e, norm, q.view, x, y, n, rows, cols, ex, nullptr)
                 : vc::gemv_fused(dt, e, norm, dense.get(), x, y, n, rows, cols, ex, nullptr);
  }
};
inline FusedW make_fused_w(int kind, DType dt, int rows, int cols, std::mt19937& rng) {
  FusedW f;
  if (kind == 0) {
    f.w = random_vec(std::size_t(rows) * cols, dt, rng, 0.1f);
    f.dense = to_device(dt, f.w);
    return f;
  }
  const QMatrix m = make_qmatrix(dt == DType::BF16 ? vireo::gguf::TensorType::Q4_0 : vireo::gguf::TensorType::Q8_0,
                                 rows, cols, rng);
  f.w = round_to(dt, weights_of(m));
  f.q = to_device_q(m);
  f.quant = true;
  return f;
}

}  // namespace vireo::test_cuda
