// Network: buffer widths, names for messages, and the load-time check that every op of a
// description fits the buffers and weights it names (so backends can trust the shapes).
#include "model/network.hpp"

#include <fmt/format.h>

#include <cmath>

#include "vireo/error.hpp"

namespace vireo::detail {

const char* to_string(Buf b) noexcept {
  static constexpr const char* names[kNumBufs] = {"X", "H", "Q", "K", "V", "A", "O", "G", "U", "M"};
  const int i = int(b);
  return i >= 0 && i < kNumBufs ? names[i] : "?";
}

const char* to_string(OpKind k) noexcept {
  switch (k) {
    case OpKind::Norm: return "norm";
    case OpKind::HeadNorm: return "head_norm";
    case OpKind::Linear: return "linear";
    case OpKind::Rope: return "rope";
    case OpKind::Attention: return "attention";
    case OpKind::Glu: return "glu";
    case OpKind::Add: return "add";
  }
  return "?";
}

std::vector<float> RopeSpec::inv_freq() const {
  std::vector<float> f(static_cast<std::size_t>(n_rot / 2));
  for (int i = 0; i < n_rot / 2; ++i) {
    f[std::size_t(i)] = float(std::pow(double(theta), -2.0 * i / n_rot));
    if (!freq_div.empty()) f[std::size_t(i)] /= freq_div[std::size_t(i)];
  }
  return f;
}

std::int64_t Network::width(Buf b) const noexcept {
  switch (b) {
    case Buf::X: case Buf::H: case Buf::O: return d_model;
    case Buf::Q: case Buf::A: return std::int64_t(n_heads) * head_dim;
    case Buf::K: case Buf::V: return std::int64_t(n_kv_heads) * head_dim;
    case Buf::G: case Buf::U: case Buf::M: return d_ff;
  }
  return 0;
}

void Network::validate() const {
  auto bad = [&](int layer, std::size_t i, const Op& op, const std::string& what) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{} network, layer {}, op {} ({}): {}", family, layer, i, to_string(op.kind), what));
  };
  auto vec_ok = [](const WeightView& v, std::int64_t n) {
    return v && v.type == gguf::TensorType::F32 && v.rows * v.cols == n;
  };
  if (!tok_embd || tok_embd.rows != vocab || tok_embd.cols != d_model)
    throw Error(ErrorCode::InvalidModel, fmt::format("{} network: token embedding is not [{}, {}]", family, vocab, d_model));
  if (!output || output.rows != vocab || output.cols != d_model)
    throw Error(ErrorCode::InvalidModel, fmt::format("{} network: output matrix is not [{}, {}]", family, vocab, d_model));
  for (const RopeSpec& r : ropes)
    if (r.n_rot <= 0 || r.n_rot > head_dim || r.n_rot % 2 || !(r.theta > 0.0f) || !(r.pos_scale > 0.0f) ||
        (!r.freq_div.empty() && r.freq_div.size() != std::size_t(r.n_rot / 2)))
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("{} network: RoPE over {} of {} dimensions, theta {}, {} frequency factors", family,
                              r.n_rot, head_dim, r.theta, r.freq_div.size()));
  auto check = [&](int layer, std::size_t i, const Op& op) {
    switch (op.kind) {
      case OpKind::Norm:
        if (!vec_ok(op.w, width(op.src)) || width(op.src) != width(op.dst[0]) ||
            (op.bias && !vec_ok(op.bias, width(op.src))))
          bad(layer, i, op, fmt::format("weight of {} values for buffer {} of width {}", op.w.rows * op.w.cols,
                                        to_string(op.src), width(op.src)));
        break;
      case OpKind::HeadNorm:
        if (!vec_ok(op.w, head_dim) || (op.src != Buf::Q && op.src != Buf::K))
          bad(layer, i, op, fmt::format("needs a weight of head_dim {} values on Q or K", head_dim));
        break;
      case OpKind::Linear: {
        std::int64_t rows = 0;
        for (int j = 0; j < op.n_dst; ++j) rows += width(op.dst[std::size_t(j)]);
        if (!op.w || op.w.cols != width(op.src) || op.w.rows != rows || op.n_dst < 1 || op.n_dst > 3)
          bad(layer, i, op, fmt::format("matrix [{}, {}] does not map {} ({} values) to outputs of {} values",
                                        op.w.rows, op.w.cols, to_string(op.src), width(op.src), rows));
        if (op.bias && !vec_ok(op.bias, rows)) bad(layer, i, op, fmt::format("bias is not {} f32 values", rows));
        break;
      }
      case OpKind::Rope:
        if (op.rope < 0 || op.rope >= int(ropes.size()) || (op.src != Buf::Q && op.src != Buf::K))
          bad(layer, i, op, "needs a RoPE spec and Q or K");
        break;
      case OpKind::Attention:
        if (op.attn < 0 || op.attn >= int(attns.size()) || attns[std::size_t(op.attn)].window < 0 ||
            attns[std::size_t(op.attn)].softcap < 0.0f)
          bad(layer, i, op, "needs a valid attention spec");
        break;
      case OpKind::Glu:
      case OpKind::Add:
        if (width(op.src) != width(op.dst[0])) bad(layer, i, op, "buffer widths differ");
        break;
    }
  };
  for (std::size_t l = 0; l < layers.size(); ++l)
    for (std::size_t i = 0; i < layers[l].ops.size(); ++i) check(int(l), i, layers[l].ops[i]);
  if (final_norm.kind != OpKind::Norm) throw Error(ErrorCode::InvalidModel, family + " network: final norm missing");
  check(-1, 0, final_norm);
}

}  // namespace vireo::detail
