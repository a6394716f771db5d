#include "model/fingerprint.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "model/model_impl.hpp"

namespace vireo::detail {
namespace {

struct Fnv {
  std::uint64_t h = 0xcbf29ce484222325ull;
  void bytes(const void* p, std::size_t n) noexcept {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  }
  void u64(std::uint64_t v) noexcept {
    unsigned char le[8];
    for (int i = 0; i < 8; ++i) le[i] = static_cast<unsigned char>(v >> (8 * i));
    bytes(le, 8);
  }
  void str(std::string_view s) noexcept {
    u64(s.size());
    bytes(s.data(), s.size());
  }
  void view(const WeightView& w) noexcept {
    u64(static_cast<std::uint64_t>(w.type));
    u64(static_cast<std::uint64_t>(w.rows));
    u64(static_cast<std::uint64_t>(w.cols));
    if (!w.data) return;
    const std::size_t n = w.bytes(), edge = std::min<std::size_t>(n, 256);
    bytes(w.data, edge);
    bytes(w.data + (n - edge), edge);
  }
};

}  // namespace

std::uint64_t model_fingerprint(const ModelImpl& m) noexcept {
  Fnv f;
  const Network& net = m.net;
  f.str(net.family);
  for (int v : {m.cfg.n_layers, net.d_model, net.n_heads, net.n_kv_heads, net.head_dim, net.d_ff, net.vocab})
    f.u64(static_cast<std::uint64_t>(v));
  f.view(net.tok_embd);
  for (const LayerProgram& l : net.layers)
    for (const Op& op : l.ops) {
      f.view(op.w);
      f.view(op.bias);
    }
  f.view(net.final_norm.w);
  f.view(net.output);
  return f.h;
}

}  // namespace vireo::detail
