// CpuKVStorage: the fp32 K/V pool of the CPU backend, in host memory.
//
// K and V are each one array [n_layers][num_blocks * block_size * n_kv_heads * head_dim];
// a block of a layer is block_elems() contiguous floats at offset block * block_elems().
// Host copies of a block (swap) are laid out [n_layers][K | V][block_elems] fp32, which is
// exactly geometry().bytes_per_block() bytes.
#include <fmt/format.h>

#include <cstring>
#include <new>
#include <stdexcept>

#include <unistd.h>

#include "kv/kv_storage.hpp"
#include "vireo/error.hpp"

namespace vireo::detail {

CpuKVStorage::CpuKVStorage(const KVGeometry& g) : KVStorage(g), layer_elems_(0) {
  if (g.dtype != DType::F32)
    throw Error(ErrorCode::Unsupported,
                fmt::format("the CPU KV storage holds f32 only, asked for {}", to_string(g.dtype)));
  if (g.n_layers < 1 || g.n_kv_heads < 1 || g.head_dim < 1 || g.block_size < 1 || g.num_blocks < 1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("KV geometry needs positive sizes: {} layers, {} KV heads, head dim {}, block size {}, "
                            "{} blocks",
                            g.n_layers, g.n_kv_heads, g.head_dim, g.block_size, g.num_blocks));
  layer_elems_ = std::size_t(g.num_blocks) * g.block_elems();
  const std::size_t total = layer_elems_ * std::size_t(g.n_layers);
  // vector::resize zero-fills, so every page is touched: a pool larger than physical
  // memory would not fail here but get the process OOM-killed later. Refuse it up front.
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0 && double(total) * 2.0 * sizeof(float) > double(pages) * double(page))
    throw Error(ErrorCode::OutOfMemory,
                fmt::format("KV cache: {} blocks of {} bytes need {:.0f} bytes, more than the host's {} bytes of memory",
                            g.num_blocks, g.bytes_per_block(), double(total) * 2.0 * sizeof(float),
                            std::int64_t(pages) * page));
  try {
    k_.resize(total);
    v_.resize(total);
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::OutOfMemory, fmt::format("KV cache: cannot allocate 2 x {} bytes of host memory "
                                                    "({} blocks of {} bytes)",
                                                    total * sizeof(float), g.num_blocks, g.bytes_per_block()));
  } catch (const std::length_error&) {
    throw Error(ErrorCode::OutOfMemory, fmt::format("KV cache: 2 x {} floats exceed the addressable size", total));
  }
}

namespace {
void check_block(const KVGeometry& g, std::int32_t b, const char* what) {
  if (b < 0 || b >= g.num_blocks)
    throw Error(ErrorCode::InvalidArgument, fmt::format("{}: block {} outside [0, {})", what, b, g.num_blocks));
}
}  // namespace

void CpuKVStorage::copy_block(std::int32_t src, std::int32_t dst) {
  check_block(geo_, src, "copy_block");
  check_block(geo_, dst, "copy_block");
  if (src == dst) return;
  const std::size_t n = geo_.block_elems();
  for (int l = 0; l < geo_.n_layers; ++l) {
    std::memcpy(k(l) + std::size_t(dst) * n, k(l) + std::size_t(src) * n, n * sizeof(float));
    std::memcpy(v(l) + std::size_t(dst) * n, v(l) + std::size_t(src) * n, n * sizeof(float));
  }
}

void CpuKVStorage::read_block(std::int32_t block, void* host_dst) {
  check_block(geo_, block, "read_block");
  const std::size_t n = geo_.block_elems();
  auto* out = static_cast<float*>(host_dst);
  for (int l = 0; l < geo_.n_layers; ++l) {
    std::memcpy(out, k(l) + std::size_t(block) * n, n * sizeof(float));
    std::memcpy(out + n, v(l) + std::size_t(block) * n, n * sizeof(float));
    out += 2 * n;
  }
}

void CpuKVStorage::write_block(std::int32_t block, const void* host_src) {
  check_block(geo_, block, "write_block");
  const std::size_t n = geo_.block_elems();
  const auto* in = static_cast<const float*>(host_src);
  for (int l = 0; l < geo_.n_layers; ++l) {
    std::memcpy(k(l) + std::size_t(block) * n, in, n * sizeof(float));
    std::memcpy(v(l) + std::size_t(block) * n, in + n, n * sizeof(float));
    in += 2 * n;
  }
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
