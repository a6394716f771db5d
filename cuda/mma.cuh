// Tensor-core and async-copy building blocks shared by the attention kernels (nvcc, sm_80+):
// cp.async 16-byte copies, ldmatrix (plain and transposed), mma.sync m16n8k16 with fp32
// accumulation for bf16 and fp16, fp32 pairs packed into 16-bit pairs, and the XOR swizzle
// of [rows][HD] shared-memory tiles, and the paged K/V tile gather of the attention kernels.
//
// Fragment layouts (PTX ISA, mma.m16n8k16): with g = lane / 4 and q = lane % 4,
//   A (16x16, row-major) a0: (g, 2q..2q+1)  a1: (g+8, 2q..)  a2: (g, 2q+8..)  a3: (g+8, 2q+8..)
//   B (16x8, k x n)      b0: (k 2q..2q+1, n g)  b1: (k 2q+8..2q+9, n g)
//   C (16x8, fp32)       c0,c1: (g, 2q..2q+1)  c2,c3: (g+8, 2q..2q+1)
// so the C fragments of two adjacent n-tiles are the A fragment of one 16-wide k-step.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstddef>
#include <cstdint>

namespace vireo::cuda {

__device__ __forceinline__ std::uint32_t smem_addr(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

/// 16-byte global -> shared copy; src_bytes 0 writes zeros (rows past the sequence).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(std::uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

/// d[4] += a[4] (16x16, row) * b[2] (16x8, col); fp32 accumulate.
template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0, std::uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                                        std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                                 std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/// Two fp32 values as one 32-bit register of two T (lo in the low half).
template <typename T>
__device__ __forceinline__ std::uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ std::uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<std::uint32_t*>(&v);
}
template <>
__device__ __forceinline__ std::uint32_t pack2<__half>(float lo, float hi) {
  __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<std::uint32_t*>(&v);
}

/// Element offset of (row, 16-byte chunk) in a swizzled [rows][HD] tile of T.
template <int HD>
__device__ __forceinline__ int swz(int row, int chunk) {
  return row * HD + ((chunk ^ (row & 7)) << 3);
}

/// Gather the keys and values of positions j0 .. j0 + ROWS - 1 of one KV head from the paged
/// cache into swizzled [ROWS][HD] shared tiles with cp.async, NT threads cooperating (thread
/// tid); positions >= j_end are zero-filled. kbase / vbase point at the head's first element,
/// rows of the cache are kv_stride elements apart, position j lives in slot
/// table[j / block_size] * block_size + j % block_size. The caller commits the group.
template <typename T, int HD, int ROWS, int NT>
__device__ __forceinline__ void load_kv_tile(T* sK, T* sV, const T* kbase, const T* vbase,
                                             const std::int32_t* table, int block_size, std::size_t kv_stride,
                                             int j0, int j_end, int tid) {
  constexpr int CH = HD / 8;
  for (int idx = tid; idx < ROWS * CH; idx += NT) {
    const int kr = idx / CH, c = idx % CH, j = j0 + kr;
    std::size_t a = 0;
    const bool ok = j < j_end;
    if (ok) {
      const std::int64_t slot = std::int64_t(table[j / block_size]) * block_size + j % block_size;
      a = std::size_t(slot) * kv_stride + std::size_t(c) * 8;
    }
    cp_async16(sK + swz<HD>(kr, c), kbase + a, ok ? 16 : 0);
    cp_async16(sV + swz<HD>(kr, c), vbase + a, ok ? 16 : 0);
  }
}

/// 4-byte global -> shared copy (L1-cached); src_bytes 0 writes zeros.
__device__ __forceinline__ void cp_async4(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(src_bytes));
}

// ---- int8 K/V (KVPrecision::Int8) ----------------------------------------------------------
// The cache holds int8 rows [slots, n_kv_heads, HD] and one fp32 scale per row [slots,
// n_kv_heads]; element = q * scale. The attention kernels stage a tile's int8 rows and scales
// in shared memory with cp.async (half the bytes of a 16-bit tile), then dequantize them into
// the swizzled T tiles the MMAs read, so everything after the load is the 16-bit code.

/// Bytes of one stage of an int8 K+V tile of ROWS rows: values [2][ROWS][HD], scales [2][ROWS].
template <int HD, int ROWS>
inline constexpr int kKV8StageBytes = 2 * ROWS * HD + 2 * ROWS * 4;

/// Gather positions j0 .. j0 + ROWS - 1 of one KV head (as load_kv_tile) into stage: K values
/// [ROWS][HD], V values [ROWS][HD], K scales [ROWS], V scales [ROWS]; positions >= j_end get
/// zero values and scales. kbase / vbase: the head's first int8 element; ksbase / vsbase: the
/// head's first scale; rows kv_stride bytes and scale_stride floats apart.
template <int HD, int ROWS, int NT>
__device__ __forceinline__ void load_kv_tile_i8(unsigned char* stage, const std::int8_t* kbase,
                                                const std::int8_t* vbase, const float* ksbase, const float* vsbase,
                                                const std::int32_t* table, int block_size, std::size_t kv_stride,
                                                int scale_stride, int j0, int j_end, int tid) {
  constexpr int CH = HD / 16;  // 16-byte chunks per int8 row
  unsigned char* sK8 = stage;
  unsigned char* sV8 = stage + ROWS * HD;
  float* sKs = reinterpret_cast<float*>(stage + 2 * ROWS * HD);
  float* sVs = sKs + ROWS;
  for (int idx = tid; idx < ROWS * (CH + 1); idx += NT) {
    const int kr = idx < ROWS * CH ? idx / CH : idx - ROWS * CH, j = j0 + kr;
    const bool ok = j < j_end;
    const std::int64_t slot = ok ? std::int64_t(table[j / block_size]) * block_size + j % block_size : 0;
    if (idx < ROWS * CH) {
      const int c = idx % CH;
      const std::size_t a = std::size_t(slot) * kv_stride + std::size_t(c) * 16;
      cp_async16(sK8 + kr * HD + c * 16, kbase + a, ok ? 16 : 0);
      cp_async16(sV8 + kr * HD + c * 16, vbase + a, ok ? 16 : 0);
    } else {
      const std::size_t a = std::size_t(slot) * std::size_t(scale_stride);
      cp_async4(sKs + kr, ksbase + a, ok ? 4 : 0);
      cp_async4(sVs + kr, vsbase + a, ok ? 4 : 0);
    }
  }
}

/// Dequantize a landed stage into the swizzled [ROWS][HD] T tiles sK / sV (8 elements per
/// thread step: one 16-byte T chunk). The caller synchronizes before and after.
template <typename T, int HD, int ROWS, int NT>
__device__ __forceinline__ void dequant_kv_tile(const unsigned char* stage, T* sK, T* sV, int tid) {
  constexpr int CH = HD / 8;
  const float* sKs = reinterpret_cast<const float*>(stage + 2 * ROWS * HD);
  for (int idx = tid; idx < 2 * ROWS * CH; idx += NT) {
    const int kv = idx / (ROWS * CH), rem = idx % (ROWS * CH), kr = rem / CH, c = rem % CH;
    const uint2 raw = *reinterpret_cast<const uint2*>(stage + (kv * ROWS + kr) * HD + c * 8);
    const float sc = sKs[kv * ROWS + kr];
    const std::int8_t* q = reinterpret_cast<const std::int8_t*>(&raw);
    uint4 out;
    std::uint32_t* o = reinterpret_cast<std::uint32_t*>(&out);
#pragma unroll
    for (int i = 0; i < 4; ++i) o[i] = pack2<T>(float(q[2 * i]) * sc, float(q[2 * i + 1]) * sc);
    *reinterpret_cast<uint4*>((kv ? sV : sK) + swz<HD>(kr, c)) = out;
  }
}

}  // namespace vireo::cuda
