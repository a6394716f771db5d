// AttnCase: a paged KV cache with shuffled block tables and a batch of query tokens, for the
// [cuda] attention tests (16-bit / fp32 K/V in test_cuda_kernels.cpp, int8 K/V in
// test_cuda_kv_int8.cpp), with cpu::attention as the reference.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "cpu/ops.hpp"
#include "cpu/thread_pool.hpp"
#include "cuda_test_util.hpp"

namespace vireo::test_cuda {

/// A paged cache with shuffled block tables for sequences of the given lengths, and a batch
/// of query tokens: for each sequence, its last `q_per_seq[s]` positions.
struct AttnCase {
  AttnCase(int nh_, int nkv_, int hd_, int bs_, std::vector<int> len, std::vector<int> nq)
      : nh(nh_), nkv(nkv_), hd(hd_), bs(bs_), seq_len(std::move(len)), q_per_seq(std::move(nq)) {}
  int nh, nkv, hd, bs;
  std::vector<int> seq_len, q_per_seq;
  // filled by build()
  int n_slots = 0;
  std::vector<float> q, k, v;
  std::vector<std::int32_t> pos, seq_of, indptr, block_ids, kv_len, bt_off;

  /// Kernel parameters over device copies of this case (q/k/v/out and the int tables).
  vc::AttentionParams params(const vc::DeviceBuffer& dq, const vc::DeviceBuffer& dk, const vc::DeviceBuffer& dv,
                             vc::DeviceBuffer& dout, const vc::DeviceBuffer& dkv, const vc::DeviceBuffer& dbt,
                             const vc::DeviceBuffer& dids) const {
    vc::AttentionParams p;
    p.q = dq.get();
    p.k_cache = dk.get();
    p.v_cache = dv.get();
    p.out = dout.get();
    p.kv_len = dkv.as<std::int32_t>();
    p.bt_off = dbt.as<std::int32_t>();
    p.block_ids = dids.as<std::int32_t>();
    p.n_heads = nh;
    p.n_kv_heads = nkv;
    p.head_dim = hd;
    p.block_size = bs;
    p.scale = 1.0f / std::sqrt(float(hd));
    return p;
  }

  void build(DType dt, std::mt19937& rng) {
    int n_blocks = 0;
    for (int L : seq_len) n_blocks += (L + bs - 1) / bs;
    n_blocks += 3;  // unused blocks in the pool
    std::vector<std::int32_t> perm(static_cast<std::size_t>(n_blocks));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    indptr = {0};
    std::size_t next = 0;
    for (std::size_t s = 0; s < seq_len.size(); ++s) {
      for (int b = 0; b < (seq_len[s] + bs - 1) / bs; ++b) block_ids.push_back(perm[next++]);
      indptr.push_back(std::int32_t(block_ids.size()));
      for (int i = seq_len[s] - q_per_seq[s]; i < seq_len[s]; ++i) {
        pos.push_back(i);
        seq_of.push_back(std::int32_t(s));
        kv_len.push_back(i + 1);
        bt_off.push_back(indptr[s]);
      }
    }
    n_slots = n_blocks * bs;
    // q in [-8, 8]: scores q.k / sqrt(hd) with a standard deviation of ~2.7, so softmax is
    // peaked and the outputs are O(0.1..1). With q in [-1, 1] the weights were nearly uniform,
    // every output an average of ~1000 values ~0.02 in size, and a wrong mask, block table or
    // split merge moved them by less than the bf16 atol (0.01).
    q = random_vec(pos.size() * std::size_t(nh) * hd, dt, rng, 8.0f);
    k = random_vec(std::size_t(n_slots) * nkv * hd, dt, rng);
    v = random_vec(k.size(), dt, rng);
  }
  /// int8 K/V: every (slot, KV head) row of k and v quantized by the CPU backend's
  /// cpu::quantize_kv_row into k8 / v8 with scales ks / vs.
  std::vector<std::int8_t> k8, v8;
  std::vector<float> ks, vs;
  void quantize_kv() {
    const std::size_t rows = std::size_t(n_slots) * nkv;
    k8.assign(rows * hd, 0);
    v8.assign(rows * hd, 0);
    ks.assign(rows, 0.0f);
    vs.assign(rows, 0.0f);
    for (std::size_t r = 0; r < rows; ++r) {
      vireo::cpu::quantize_kv_row(k.data() + r * hd, hd, k8.data() + r * hd, &ks[r]);
      vireo::cpu::quantize_kv_row(v.data() + r * hd, hd, v8.data() + r * hd, &vs[r]);
    }
  }
  /// cpu::attention over the int8 cache (after quantize_kv()).
  std::vector<float> reference_i8() const {
    std::vector<float> out(q.size());
    vireo::cpu::ThreadPool pool(1);
    vireo::cpu::AttentionArgs aa{q.data(), nullptr, nullptr, out.data(), std::int64_t(pos.size()), nh, nkv, hd, bs,
                                 pos.data(), seq_of.data(), indptr.data(), block_ids.data()};
    aa.k8 = k8.data();
    aa.v8 = v8.data();
    aa.k_scale = ks.data();
    aa.v_scale = vs.data();
    vireo::cpu::attention(aa, pool);
    return out;
  }
  std::vector<float> reference() const {
    std::vector<float> out(q.size());
    vireo::cpu::ThreadPool pool(1);
    vireo::cpu::attention({q.data(), k.data(), v.data(), out.data(), std::int64_t(pos.size()), nh, nkv, hd, bs,
                           pos.data(), seq_of.data(), indptr.data(), block_ids.data()},
                          pool);
    return out;
  }
};


}  // namespace vireo::test_cuda
