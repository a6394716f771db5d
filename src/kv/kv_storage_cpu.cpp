// CpuKVStorage: the K/V pool of the CPU backend, in host memory.
//
// fp32: K and V are each one array [n_layers][num_blocks * block_size * n_kv_heads * head_dim];
// a block of a layer is block_elems() contiguous floats at offset block * block_elems().
// int8 (KVPrecision::Int8): the same layout in int8, plus fp32 row scales K / V
// [n_layers][num_blocks * block_size * n_kv_heads] (a block's are block_size * n_kv_heads
// contiguous floats). Host copies of a block (swap) are laid out [n_layers][K | V][block]
// (int8: [values | scales] per half), exactly geometry().bytes_per_block() bytes.
#include <fmt/format.h>

#include <cstring>
#include <new>
#include <stdexcept>

#include "kv/kv_storage.hpp"
#include "platform/memory.hpp"
#include "vireo/error.hpp"

namespace vireo::detail {

CpuKVStorage::CpuKVStorage(const KVGeometry& g) : KVStorage(g), layer_elems_(0) {
  if (g.dtype != DType::F32)
    throw Error(ErrorCode::Unsupported,
                fmt::format("the CPU KV storage holds f32 (or int8) only, asked for {}", to_string(g.dtype)));
  if (g.n_layers < 1 || g.n_kv_heads < 1 || g.head_dim < 1 || g.block_size < 1 || g.num_blocks < 1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("KV geometry needs positive sizes: {} layers, {} KV heads, head dim {}, block size {}, "
                            "{} blocks",
                            g.n_layers, g.n_kv_heads, g.head_dim, g.block_size, g.num_blocks));
  layer_elems_ = std::size_t(g.num_blocks) * g.block_elems();
  layer_rows_ = std::size_t(g.num_blocks) * std::size_t(g.block_size) * std::size_t(g.n_kv_heads);
  const std::size_t total = layer_elems_ * std::size_t(g.n_layers), rows = layer_rows_ * std::size_t(g.n_layers);
  const double bytes = double(g.bytes_per_block()) * double(g.num_blocks);
  // vector::resize zero-fills, so every page is touched: a pool larger than physical
  // memory would not fail here but get the process OOM-killed later. Refuse it up front.
  const std::uint64_t host = platform::physical_memory_bytes();
  if (host > 0 && bytes > double(host))
    throw Error(ErrorCode::OutOfMemory,
                fmt::format("KV cache: {} blocks of {} bytes need {:.0f} bytes, more than the host's {} bytes of memory",
                            g.num_blocks, g.bytes_per_block(), bytes, host));
  try {
    if (g.int8) {
      k8_.resize(total);
      v8_.resize(total);
      ks_.resize(rows);
      vs_.resize(rows);
    } else {
      k_.resize(total);
      v_.resize(total);
    }
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::OutOfMemory, fmt::format("KV cache: cannot allocate {:.0f} bytes of host memory "
                                                    "({} blocks of {} bytes)",
                                                    bytes, g.num_blocks, g.bytes_per_block()));
  } catch (const std::length_error&) {
    throw Error(ErrorCode::OutOfMemory, fmt::format("KV cache: {:.0f} bytes exceed the addressable size", bytes));
  }
}

int CpuKVStorage::block_runs(int l, BlockRun (&out)[4]) noexcept {
  const std::size_t n = geo_.block_elems(), r = std::size_t(geo_.block_size) * std::size_t(geo_.n_kv_heads);
  auto bytes = [](auto* p) { return reinterpret_cast<unsigned char*>(p); };
  if (!geo_.int8) {
    out[0] = {bytes(k(l)), n * sizeof(float)};
    out[1] = {bytes(v(l)), n * sizeof(float)};
    return 2;
  }
  out[0] = {bytes(k8(l)), n};
  out[1] = {bytes(k_scale(l)), r * sizeof(float)};
  out[2] = {bytes(v8(l)), n};
  out[3] = {bytes(v_scale(l)), r * sizeof(float)};
  return 4;
}

void CpuKVStorage::copy_bytes(void* dst, const void* src, std::size_t bytes, CopyKind) {
  std::memcpy(dst, src, bytes);
}

std::shared_ptr<void> CpuKVStorage::alloc_host(std::size_t bytes) {
  try {
    // operator new aligns for any scalar type, floats included; never size 0.
    void* p = ::operator new(bytes ? bytes : 1);
    return std::shared_ptr<void>(p, [](void* q) { ::operator delete(q); });
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::OutOfMemory, fmt::format("KV swap: cannot allocate {} bytes of host memory", bytes));
  }
}

}  // namespace vireo::detail
