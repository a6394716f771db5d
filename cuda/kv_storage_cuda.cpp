// CudaKVStorage (see kv_storage_cuda.hpp): layout, block copies and the host round trip.
#include "kv_storage_cuda.hpp"

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>

#include "vireo/error.hpp"

namespace vireo::detail {
namespace {
void cu(cudaError_t e, const char* what) { cuda::check(int(e), what); }
std::size_t round256(std::size_t b) { return (b + 255) / 256 * 256; }
}  // namespace

CudaKVStorage::CudaKVStorage(const KVGeometry& g, std::shared_ptr<cuda::Stream> stream)
    : KVStorage(g), stream_(std::move(stream)) {
  block_bytes_ = g.block_elems() * (g.int8 ? 1 : dtype_size(g.dtype));
  scale_block_bytes_ = g.int8 ? std::size_t(g.block_size) * g.n_kv_heads * sizeof(float) : 0;
  vals_bytes_ = round256(block_bytes_ * std::size_t(g.num_blocks));
  scales_bytes_ = round256(scale_block_bytes_ * std::size_t(g.num_blocks));
  layer_bytes_ = 2 * (vals_bytes_ + scales_bytes_);
  buf_ = cuda::DeviceBuffer(layer_bytes_ * std::size_t(g.n_layers));
  buf_.fill_bytes(0);
}

std::vector<CudaKVStorage::Run> CudaKVStorage::runs(int l) const {
  if (!geo_.int8) return {{static_cast<char*>(k(l)), block_bytes_}, {static_cast<char*>(v(l)), block_bytes_}};
  return {{static_cast<char*>(k(l)), block_bytes_},
          {reinterpret_cast<char*>(k_scale(l)), scale_block_bytes_},
          {static_cast<char*>(v(l)), block_bytes_},
          {reinterpret_cast<char*>(v_scale(l)), scale_block_bytes_}};
}

void CudaKVStorage::check_block(std::int32_t b) const {
  if (b < 0 || b >= geo_.num_blocks)
    throw Error(ErrorCode::InvalidArgument, fmt::format("KV block {} outside [0, {})", b, geo_.num_blocks));
}

void CudaKVStorage::copy_block(std::int32_t src, std::int32_t dst) {
  check_block(src);
  check_block(dst);
  auto s = static_cast<cudaStream_t>(stream_->get());
  for (int l = 0; l < geo_.n_layers; ++l)
    for (const Run& r : runs(l))
      cu(cudaMemcpyAsync(r.base + std::size_t(dst) * r.bytes, r.base + std::size_t(src) * r.bytes, r.bytes,
                         cudaMemcpyDeviceToDevice, s),
         "KV copy_block");
}

void CudaKVStorage::read_block(std::int32_t block, void* host_dst) {
  check_block(block);
  auto s = static_cast<cudaStream_t>(stream_->get());
  auto* h = static_cast<char*>(host_dst);
  for (int l = 0; l < geo_.n_layers; ++l)
    for (const Run& r : runs(l)) {
      cu(cudaMemcpyAsync(h, r.base + std::size_t(block) * r.bytes, r.bytes, cudaMemcpyDeviceToHost, s), "KV read_block");
      h += r.bytes;
    }
  stream_->synchronize();
}

void CudaKVStorage::write_block(std::int32_t block, const void* host_src) {
  check_block(block);
  auto s = static_cast<cudaStream_t>(stream_->get());
  auto* h = static_cast<const char*>(host_src);
  for (int l = 0; l < geo_.n_layers; ++l)
    for (const Run& r : runs(l)) {
      cu(cudaMemcpyAsync(r.base + std::size_t(block) * r.bytes, h, r.bytes, cudaMemcpyHostToDevice, s), "KV write_block");
      h += r.bytes;
    }
  stream_->synchronize();
}

std::shared_ptr<void> CudaKVStorage::alloc_host(std::size_t bytes) {
  void* p = nullptr;
  const cudaError_t e = cudaMallocHost(&p, std::max<std::size_t>(bytes, 1));
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw Error(ErrorCode::OutOfMemory,
                fmt::format("cudaMallocHost of {} bytes for swapped KV blocks failed: {}", bytes, cudaGetErrorString(e)));
  }
  return std::shared_ptr<void>(p, [](void* q) { cudaFreeHost(q); });
}

}  // namespace vireo::detail
