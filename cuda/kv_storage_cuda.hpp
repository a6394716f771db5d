// CudaKVStorage: the CUDA backend's paged K/V pool in device memory (the data half of a
// KVCache whose model runs on a GPU; src/kv/kv_storage.hpp has the interface and the CPU one).
//
// One allocation. Per layer: K and V ([num_blocks * block_size slots, n_kv_heads, head_dim]
// in the backend dtype, or int8 with KVPrecision::Int8), then with int8 the K and V row
// scales ([slots, n_kv_heads] fp32). Every array starts 256-byte aligned: with int8 values,
// an odd block count and block size would otherwise leave the next array off the 16-byte
// alignment the attention kernels' cp.async needs.
//
// The host image of a block (swap out / in) is, per layer, its run of each array in the
// order K, V (int8: K values, K scales, V values, V scales): geometry().bytes_per_block()
// bytes, the same order as the CPU storage's.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "cuda_api.hpp"
#include "kv/kv_storage.hpp"

namespace vireo::detail {

class CudaKVStorage final : public KVStorage {
 public:
  /// Allocates and zero-fills the pool; throws Error(Cuda / OutOfMemory) on failure.
  CudaKVStorage(const KVGeometry& g, std::shared_ptr<cuda::Stream> stream);

  void* k(int layer) const noexcept { return static_cast<char*>(buf_.get()) + std::size_t(layer) * layer_bytes_; }
  void* v(int layer) const noexcept { return static_cast<char*>(k(layer)) + vals_bytes_; }
  /// int8 storage: the fp32 row scales of layer `layer` (nullptr otherwise).
  float* k_scale(int layer) const noexcept {
    return geo_.int8 ? reinterpret_cast<float*>(static_cast<char*>(k(layer)) + 2 * vals_bytes_) : nullptr;
  }
  float* v_scale(int layer) const noexcept {
    return geo_.int8 ? reinterpret_cast<float*>(reinterpret_cast<char*>(k_scale(layer)) + scales_bytes_) : nullptr;
  }

  /// Pinned host memory (cudaMallocHost); throws Error(OutOfMemory) on failure.
  std::shared_ptr<void> alloc_host(std::size_t bytes) override;

 private:
  int block_runs(int layer, BlockRun (&out)[4]) noexcept override;
  /// cudaMemcpyAsync on the storage's stream.
  void copy_bytes(void* dst, const void* src, std::size_t bytes, CopyKind kind) override;
  /// Synchronizes the stream.
  void host_copies_done() override;

  std::shared_ptr<cuda::Stream> stream_;
  std::size_t block_bytes_ = 0, scale_block_bytes_ = 0;  ///< one block's run of values / scales
  std::size_t vals_bytes_ = 0, scales_bytes_ = 0, layer_bytes_ = 0;  ///< whole arrays, 256-aligned
  cuda::DeviceBuffer buf_;
};

}  // namespace vireo::detail
