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

int CudaKVStorage::block_runs(int l, BlockRun (&out)[4]) noexcept {
  auto bytes = [](auto* p) { return reinterpret_cast<unsigned char*>(p); };
  out[0] = {bytes(k(l)), block_bytes_};
  if (!geo_.int8) {
    out[1] = {bytes(v(l)), block_bytes_};
    return 2;
  }
  out[1] = {bytes(k_scale(l)), scale_block_bytes_};
  out[2] = {bytes(v(l)), block_bytes_};
  out[3] = {bytes(v_scale(l)), scale_block_bytes_};
  return 4;
}

void CudaKVStorage::copy_bytes(void* dst, const void* src, std::size_t bytes, CopyKind kind) {
  const cudaMemcpyKind k = kind == CopyKind::Within   ? cudaMemcpyDeviceToDevice
                           : kind == CopyKind::ToHost ? cudaMemcpyDeviceToHost
                                                      : cudaMemcpyHostToDevice;
  cu(cudaMemcpyAsync(dst, src, bytes, k, static_cast<cudaStream_t>(stream_->get())), "KV block copy");
}

void CudaKVStorage::host_copies_done() { stream_->synchronize(); }

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
