// KVStorage's block copies, shared by the backends: each walks the layers' arrays a backend
// names (block_runs()) and moves one block's run of each with the backend's copy_bytes().
#include <fmt/format.h>

#include "kv/kv_storage.hpp"
#include "vireo/error.hpp"

namespace vireo::detail {

void KVStorage::check_block(std::int32_t b, const char* what) const {
  if (b < 0 || b >= geo_.num_blocks)
    throw Error(ErrorCode::InvalidArgument, fmt::format("{}: block {} outside [0, {})", what, b, geo_.num_blocks));
}

void KVStorage::copy_block(std::int32_t src, std::int32_t dst) {
  check_block(src, "copy_block");
  check_block(dst, "copy_block");
  if (src == dst) return;
  BlockRun runs[4];
  for (int l = 0; l < geo_.n_layers; ++l)
    for (int i = 0, m = block_runs(l, runs); i < m; ++i)
      copy_bytes(runs[i].base + std::size_t(dst) * runs[i].bytes, runs[i].base + std::size_t(src) * runs[i].bytes,
                 runs[i].bytes, CopyKind::Within);
}

void KVStorage::copy_slots(std::span<const std::pair<std::int64_t, std::int64_t>> moves) {
  const std::int64_t n_slots = geo_.num_blocks * geo_.block_size;
  for (const auto& [src, dst] : moves)
    if (src < 0 || src >= n_slots || dst < 0 || dst >= n_slots)
      throw Error(ErrorCode::InvalidArgument, fmt::format("copy_slots: slot {} -> {} outside [0, {})", src, dst, n_slots));
  BlockRun runs[4];
  for (int l = 0; l < geo_.n_layers; ++l)
    for (int i = 0, m = block_runs(l, runs); i < m; ++i) {
      const std::size_t row = runs[i].bytes / std::size_t(geo_.block_size);  // one slot's run
      for (const auto& [src, dst] : moves)
        if (src != dst)
          copy_bytes(runs[i].base + std::size_t(dst) * row, runs[i].base + std::size_t(src) * row, row, CopyKind::Within);
    }
}

void KVStorage::read_block(std::int32_t block, void* host_dst) {
  check_block(block, "read_block");
  auto* out = static_cast<unsigned char*>(host_dst);
  BlockRun runs[4];
  for (int l = 0; l < geo_.n_layers; ++l)
    for (int i = 0, m = block_runs(l, runs); i < m; ++i) {
      copy_bytes(out, runs[i].base + std::size_t(block) * runs[i].bytes, runs[i].bytes, CopyKind::ToHost);
      out += runs[i].bytes;
    }
  host_copies_done();
}

void KVStorage::write_block(std::int32_t block, const void* host_src) {
  check_block(block, "write_block");
  const auto* in = static_cast<const unsigned char*>(host_src);
  BlockRun runs[4];
  for (int l = 0; l < geo_.n_layers; ++l)
    for (int i = 0, m = block_runs(l, runs); i < m; ++i) {
      copy_bytes(runs[i].base + std::size_t(block) * runs[i].bytes, in, runs[i].bytes, CopyKind::FromHost);
      in += runs[i].bytes;
    }
  host_copies_done();
}

}  // namespace vireo::detail
