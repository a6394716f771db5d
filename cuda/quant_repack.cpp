// Host side of the quantized GPU weights (quant_weights.hpp): GGUF blocks split into the
// device layout (quants, scales, minimums in separate arrays, so that a lane's 16-byte loads
// of quants stay aligned), and a host reference of one weight for the tests.
#include <fmt/format.h>

#include <cstring>

#include "quant_weights.hpp"
#include "vireo/error.hpp"
#include "vireo/gguf.hpp"

namespace vireo::cuda {

bool quant_format(gguf::TensorType t, QFormat* f) noexcept {
  switch (t) {
    case gguf::TensorType::Q8_0: *f = QFormat::Q8_0; return true;
    case gguf::TensorType::Q4_0: *f = QFormat::Q4_0; return true;
    case gguf::TensorType::Q4_1: *f = QFormat::Q4_1; return true;
    default: return false;
  }
}

void repack_quant_rows(gguf::TensorType t, const void* src, std::int64_t n_rows, int cols, std::uint8_t* qs,
                       std::uint16_t* d, std::uint16_t* m) {
  QFormat f{};
  if (!quant_format(t, &f))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("tensor type {} has no native GPU format (Q8_0, Q4_0, Q4_1)", gguf::to_string(t)));
  if (cols <= 0 || cols % 32)
    throw Error(ErrorCode::InvalidArgument, fmt::format("quantized rows of {} columns: not a multiple of 32", cols));
  // GGUF blocks: Q8_0 {fp16 d; int8 q[32]}, Q4_0 {fp16 d; u8 q[16]}, Q4_1 {fp16 d; fp16 m; u8 q[16]}.
  const std::size_t header = quant_has_min(f) ? 4 : 2, qb = std::size_t(quant_block_bytes(f)),
                    block = header + qb, nb = std::size_t(cols) / 32;
  const auto* s = static_cast<const std::uint8_t*>(src);
  const std::size_t n = std::size_t(n_rows) * nb;  // blocks, row after row in both layouts
  for (std::size_t b = 0; b < n; ++b) {
    const std::uint8_t* blk = s + b * block;
    std::memcpy(d + b, blk, 2);
    if (quant_has_min(f)) std::memcpy(m + b, blk + 2, 2);
    std::memcpy(qs + b * qb, blk + header, qb);
  }
}

float repacked_weight(QFormat f, const std::uint8_t* qs, const std::uint16_t* d, const std::uint16_t* m, int cols,
                      std::int64_t r, int c) {
  const std::size_t nb = std::size_t(cols) / 32, b = std::size_t(r) * nb + std::size_t(c) / 32;
  const int e = c % 32;
  const float scale = half_to_float(d[b]);
  const std::uint8_t* q = qs + b * std::size_t(quant_block_bytes(f));
  switch (f) {
    case QFormat::Q8_0: return float(std::int8_t(q[e])) * scale;
    case QFormat::Q4_0: return float(int(e < 16 ? q[e] & 0x0F : q[e - 16] >> 4) - 8) * scale;
    case QFormat::Q4_1: return float(e < 16 ? q[e] & 0x0F : q[e - 16] >> 4) * scale + half_to_float(m[b]);
  }
  return 0.0f;
}

}  // namespace vireo::cuda
