// The CPU backend's ops: fp32 reference arithmetic, written as plain loops (AVX2/FMA
// intrinsics for the dot product when available) and parallelised over rows / heads.
// Shapes are row-major; T is the number of tokens in the step.
#pragma once
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <span>

#include "cpu/thread_pool.hpp"
#include "model/weights.hpp"

namespace vireo::cpu {

/// sum_i a[i] * b[i]
float dot(const float* a, const float* b, std::int64_t n) noexcept;

/// y[T, W.rows] = x[T, W.cols] . W^T for any weight type (rows dequantized on the fly).
void matmul(const detail::WeightView& w, const float* x, std::int64_t T, float* y, ThreadPool& pool);

/// One product of a matmul_many: y = x . w^T.
struct MatmulOut {
  const detail::WeightView* w;
  float* y;
};
/// matmul() of the same activations with several matrices of the same width (a layer's Q, K
/// and V; gate and up). Decode-sized steps over quantized weights run all their rows in one
/// parallel_for (one fork / join instead of one per matrix); other steps run matmul() per
/// matrix. The results are those of matmul().
void matmul_many(std::span<const MatmulOut> outs, const float* x, std::int64_t T, ThreadPool& pool);
inline void matmul_many(std::initializer_list<MatmulOut> outs, const float* x, std::int64_t T, ThreadPool& pool) {
  matmul_many(std::span<const MatmulOut>(outs.begin(), outs.size()), x, T, pool);
}

/// Rows [r0, r1) of every product in outs, as one range over their concatenated rows: calls
/// fn(out, local r0, local r1) for the parts of [g0, g1) that fall in each.
template <class Fn>
void for_rows_of(std::span<const MatmulOut> outs, std::int64_t g0, std::int64_t g1, Fn&& fn) {
  std::int64_t base = 0;
  for (const MatmulOut& o : outs) {
    const std::int64_t lo = std::max(g0, base), hi = std::min(g1, base + o.w->rows);
    if (lo < hi) fn(o, lo - base, hi - base);
    base += o.w->rows;
  }
}

/// y[T, d] = x * rsqrt(mean(x^2) + eps) * g, per row.
void rms_norm(const float* x, const float* g, std::int64_t T, std::int64_t d, float eps, float* y);

/// y[T, d] = (x - mean) * rsqrt(var + eps) * g (+ b when b is not null), per row.
void layer_norm(const float* x, const float* g, const float* b, std::int64_t T, std::int64_t d, float eps, float* y);

/// Rotate adjacent pairs (x[2i], x[2i+1]) of every head of x[T, n_heads * head_dim] by
/// angle pos[t] * theta^(-2i/head_dim) / freq_factors[i] (freq_factors may be null).
void rope(float* x, std::int64_t T, int n_heads, int head_dim, const std::int32_t* pos, float theta,
          const float* freq_factors);

/// RoPE in general form: for i < n_rot / 2 rotate the pair (x[2i], x[2i+1]) (halves = false)
/// or (x[i], x[i + n_rot/2]) (halves = true, GPT-NeoX) of every head by angle
/// pos[t] * pos_scale * inv_freq[i]; dimensions from n_rot on are left alone.
void rope_ex(float* x, std::int64_t T, int n_heads, int head_dim, const std::int32_t* pos, const float* inv_freq,
             int n_rot, bool halves, float pos_scale);

/// g[i] = silu(g[i]) * u[i]
void silu_mul(float* g, const float* u, std::int64_t n) noexcept;
/// g[i] = gelu_tanh(g[i]) * u[i], gelu_tanh(x) = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
void gelu_tanh_mul(float* g, const float* u, std::int64_t n) noexcept;

/// Symmetric int8 quantization of one K / V row of n values (KVPrecision::Int8): scale =
/// max |x| / 127 (0 for an all-zero row), q = round(x / scale) in [-127, 127]; x ~ q * scale.
/// A row with a non-finite value gets scale NaN (visible in the attention output); a row whose
/// largest magnitude is below 1e-30 is stored as zeros.
void quantize_kv_row(const float* x, int n, std::int8_t* q, float* scale) noexcept;

/// Causal attention of the step's queries over the paged cache.
/// q [T, n_heads, hd], out [T, n_heads, hd]; k_cache/v_cache of one layer [slots, n_kv, hd];
/// token t sees positions 0..pos[t] of its sequence seq_of[t], whose block table is
/// block_ids[block_indptr[s] .. block_indptr[s+1]). With int8 storage k_cache / v_cache are
/// null and k8 / v8 [slots, n_kv, hd] with row scales k_scale / v_scale [slots, n_kv] are set.
struct AttentionArgs {
  const float* q;
  const float* k_cache;
  const float* v_cache;
  float* out;
  std::int64_t T;
  int n_heads, n_kv_heads, head_dim, block_size;
  const std::int32_t* pos;
  const std::int32_t* seq_of;
  const std::int32_t* block_indptr;
  const std::int32_t* block_ids;
  const std::int8_t* k8 = nullptr;
  const std::int8_t* v8 = nullptr;
  const float* k_scale = nullptr;
  const float* v_scale = nullptr;
  float scale = 0.0f;    ///< multiplies q . k (0: 1 / sqrt(head_dim))
  int window = 0;        ///< > 0: token t sees positions pos[t] - window + 1 .. pos[t] only
  float softcap = 0.0f;  ///< > 0: scores become softcap * tanh(score / softcap)
  /// Token trees (optional): per token the storage index of its last key (null: pos), the
  /// storage index of its tree's first token (< 0: not a tree token) and which of the
  /// tree's tokens it sees (bit j: tree token j).
  const std::int32_t* kv_pos = nullptr;
  const std::int32_t* tree_base = nullptr;
  const std::uint64_t* tree_mask = nullptr;
};
void attention(const AttentionArgs& a, ThreadPool& pool);

/// s[p] = exp(s[p] - mx) for p < n (AVX2: exp_ps of cpu/simd.hpp, within 2 ulp of std::exp;
/// below -87.3 the result may flush to 0); returns the sum. The softmax of attention().
float exp_shift_sum(float* s, std::int64_t n, float mx) noexcept;

}  // namespace vireo::cpu
