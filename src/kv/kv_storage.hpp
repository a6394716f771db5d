// KVStorage: the data half of the paged KV cache, one implementation per backend.
//
// Layout (both backends): per layer, K and V each [num_blocks, block_size, n_kv_heads,
// head_dim] in the backend's KV dtype. A token's slot is block * block_size + offset, so
// slot s of layer l lives at k(l) + s * n_kv_heads * head_dim. With int8 storage
// (KVPrecision::Int8) K and V hold int8 in that layout plus fp32 scales [num_blocks,
// block_size, n_kv_heads]. The CUDA storage is in cuda/kv_storage_cuda.hpp.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "vireo/types.hpp"

namespace vireo::detail {

struct KVGeometry {
  int n_layers = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int block_size = 16;
  std::int64_t num_blocks = 0;
  DType dtype = DType::F32;
  bool int8 = false;  ///< KVPrecision::Int8: int8 values + one fp32 scale per row

  /// Bytes of one K (or V) row of one KV head.
  std::size_t row_bytes() const noexcept {
    return int8 ? std::size_t(head_dim) + sizeof(float) : std::size_t(head_dim) * dtype_size(dtype);
  }
  std::size_t bytes_per_token() const noexcept {
    return 2ull * std::size_t(n_layers) * std::size_t(n_kv_heads) * row_bytes();
  }
  std::size_t bytes_per_block() const noexcept { return bytes_per_token() * std::size_t(block_size); }
  /// Elements of one layer's K (or V) in one block.
  std::size_t block_elems() const noexcept { return std::size_t(block_size) * n_kv_heads * head_dim; }
};

/// The block copies (prefix sharing, fork, swap) are written once here over the arrays a
/// backend names (block_runs()) and its copy primitive (copy_bytes()).
class KVStorage {
 public:
  virtual ~KVStorage() = default;
  const KVGeometry& geometry() const noexcept { return geo_; }
  /// Copy one block (all layers, K and V, int8 scales included) from src to dst.
  void copy_block(std::int32_t src, std::int32_t dst);
  /// Copy token rows (all layers, K and V, int8 scales included) from slot first to slot
  /// second, pair by pair in order.
  void copy_slots(std::span<const std::pair<std::int64_t, std::int64_t>> moves);
  /// Copy one block to / from host memory of geometry().bytes_per_block() bytes: per layer,
  /// the block's run of each array in block_runs() order. Complete when they return.
  void read_block(std::int32_t block, void* host_dst);
  void write_block(std::int32_t block, const void* host_src);
  /// Host memory for swapped blocks (pinned on CUDA).
  virtual std::shared_ptr<void> alloc_host(std::size_t bytes) = 0;

 protected:
  explicit KVStorage(const KVGeometry& g) : geo_(g) {}
  /// One array of a layer that holds a run per block: its start and one block's run in bytes.
  struct BlockRun {
    unsigned char* base;
    std::size_t bytes;
  };
  /// The arrays of layer l in the order of the host copy of a block (K, V; int8: K values,
  /// K scales, V values, V scales); returns how many of out[] it filled.
  virtual int block_runs(int layer, BlockRun (&out)[4]) noexcept = 0;
  /// Where copy_bytes() moves bytes: within the storage's memory, or to / from host memory.
  enum class CopyKind { Within, ToHost, FromHost };
  /// Copy bytes (the CUDA storage: asynchronously on its stream).
  virtual void copy_bytes(void* dst, const void* src, std::size_t bytes, CopyKind kind) = 0;
  /// After the copy_bytes() calls of read_block / write_block: returns once they are done.
  virtual void host_copies_done() {}
  KVGeometry geo_;

 private:
  void check_block(std::int32_t b, const char* what) const;
};

/// fp32 (or int8 + fp32 row scales) storage in host memory, for the CPU backend.
class CpuKVStorage final : public KVStorage {
 public:
  explicit CpuKVStorage(const KVGeometry& g);
  /// fp32 storage: K / V of a layer. (nullptr with int8 storage.)
  float* k(int layer) noexcept { return k_.empty() ? nullptr : k_.data() + std::size_t(layer) * layer_elems_; }
  float* v(int layer) noexcept { return v_.empty() ? nullptr : v_.data() + std::size_t(layer) * layer_elems_; }
  /// int8 storage: K / V values of a layer and their row scales (one per slot and KV head).
  /// (nullptr with fp32 storage.)
  std::int8_t* k8(int layer) noexcept { return k8_.empty() ? nullptr : k8_.data() + std::size_t(layer) * layer_elems_; }
  std::int8_t* v8(int layer) noexcept { return v8_.empty() ? nullptr : v8_.data() + std::size_t(layer) * layer_elems_; }
  float* k_scale(int layer) noexcept { return ks_.empty() ? nullptr : ks_.data() + std::size_t(layer) * layer_rows_; }
  float* v_scale(int layer) noexcept { return vs_.empty() ? nullptr : vs_.data() + std::size_t(layer) * layer_rows_; }
  std::shared_ptr<void> alloc_host(std::size_t bytes) override;

 private:
  int block_runs(int layer, BlockRun (&out)[4]) noexcept override;
  void copy_bytes(void* dst, const void* src, std::size_t bytes, CopyKind) override;

  std::size_t layer_elems_;
  std::size_t layer_rows_ = 0;  ///< int8: scales per layer (slots x KV heads)
  std::vector<float> k_, v_;
  std::vector<std::int8_t> k8_, v8_;
  std::vector<float> ks_, vs_;
};

}  // namespace vireo::detail
