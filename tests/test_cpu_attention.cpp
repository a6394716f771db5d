// cpu::attention against a plain double-precision reference (softmax(q.k / sqrt(d)) . v over
// each token's visible positions, read through the block table), for fp32 and int8 storage
// (the reference reads the dequantized rows), over GQA shapes including n_heads == n_kv_heads
// and odd head dims, block sizes 1..256, contexts at and around the 128-position slice and
// 256-position block boundaries, mixed prefill chunks and decode tokens of several sequences,
// and 1..4 threads (so both the sliced, merged path and the direct one run).
// (Adapted from a reviewer's throwaway check, which caught a merge reading the wrong slice,
// a missing rescale and a dropped last position that the model-level tests all missed.)
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "cpu/ops.hpp"
#include "cpu/thread_pool.hpp"

using namespace vireo;

namespace {

struct Case {
  int nh, nkv, hd, bs;
  std::vector<std::vector<int>> seq_pos;  // per sequence: positions of its tokens in this step
};

/// Max |out - reference| of one case (fp32 or int8 storage), NaN if an output is not finite or
/// the guard after the output was overwritten.
double run_case(const Case& c, bool int8, int threads, std::mt19937& rng) {
  const int nh = c.nh, nkv = c.nkv, hd = c.hd, bs = c.bs, group = nh / nkv;
  const int S = int(c.seq_pos.size());
  // block tables: each sequence gets enough blocks for its max position + 1, scattered
  std::vector<int> need(S);
  int total_blocks = 0;
  for (int s = 0; s < S; ++s) {
    int mx = -1;
    for (int p : c.seq_pos[s]) mx = std::max(mx, p);
    need[s] = (mx + 1 + bs - 1) / bs;
    if (need[s] == 0) need[s] = 1;
    total_blocks += need[s];
  }
  total_blocks += 3;  // spare, unused blocks filled with garbage
  std::vector<std::int32_t> perm(total_blocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<std::int32_t> indptr(S + 1, 0), ids;
  for (int s = 0; s < S; ++s) {
    for (int b = 0; b < need[s]; ++b) ids.push_back(perm[ids.size()]);
    indptr[s + 1] = std::int32_t(ids.size());
  }
  const std::int64_t slots = std::int64_t(total_blocks) * bs;
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> kc(size_t(slots * nkv * hd)), vc(kc.size());
  for (auto& x : kc) x = 2.0f * nd(rng);
  for (auto& x : vc) x = nd(rng);
  std::vector<std::int8_t> k8, v8;
  std::vector<float> ks, vs;
  if (int8) {
    k8.resize(kc.size());
    v8.resize(vc.size());
    ks.resize(size_t(slots * nkv));
    vs.resize(ks.size());
    for (std::int64_t r = 0; r < slots * nkv; ++r) {
      cpu::quantize_kv_row(kc.data() + r * hd, hd, k8.data() + r * hd, ks.data() + r);
      cpu::quantize_kv_row(vc.data() + r * hd, hd, v8.data() + r * hd, vs.data() + r);
      // the reference reads the dequantized values
      for (int i = 0; i < hd; ++i) {
        kc[size_t(r * hd + i)] = float(k8[size_t(r * hd + i)]) * ks[size_t(r)];
        vc[size_t(r * hd + i)] = float(v8[size_t(r * hd + i)]) * vs[size_t(r)];
      }
    }
  }
  std::vector<std::int32_t> pos, seq_of;
  for (int s = 0; s < S; ++s)
    for (int p : c.seq_pos[s]) pos.push_back(p), seq_of.push_back(s);
  // shuffle token order to mix sequences
  std::vector<int> order(pos.size());
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<std::int32_t> pos2(pos.size()), seq2(pos.size());
  for (size_t i = 0; i < order.size(); ++i) pos2[i] = pos[order[i]], seq2[i] = seq_of[order[i]];
  pos = pos2, seq_of = seq2;
  const std::int64_t T = std::int64_t(pos.size());
  std::vector<float> q(size_t(T * nh * hd));
  for (auto& x : q) x = nd(rng);
  std::vector<float> out(q.size() + 1, std::nanf(""));  // NaN: unwritten rows show up
  out.back() = 12345.0f;                                 // guard
  cpu::ThreadPool pool(threads);
  cpu::AttentionArgs a{q.data(), int8 ? nullptr : kc.data(), int8 ? nullptr : vc.data(), out.data(), T, nh, nkv,
                       hd, bs, pos.data(), seq_of.data(), indptr.data(), ids.data()};
  if (int8) {
    a.k8 = k8.data();
    a.v8 = v8.data();
    a.k_scale = ks.data();
    a.v_scale = vs.data();
  }
  cpu::attention(a, pool);
  if (out.back() != 12345.0f) return NAN;
  double err = 0;
  const double scale = 1.0 / std::sqrt(double(hd));
  for (std::int64_t t = 0; t < T; ++t) {
    const std::int32_t* table = ids.data() + indptr[seq_of[t]];
    for (int h = 0; h < nh; ++h) {
      const int g = h / group;
      const float* qq = q.data() + (t * nh + h) * hd;
      std::vector<double> sc(size_t(pos[t]) + 1);
      double mx = -INFINITY;
      for (int p = 0; p <= pos[t]; ++p) {
        const std::int64_t slot = std::int64_t(table[p / bs]) * bs + p % bs;
        const float* k = kc.data() + (slot * nkv + g) * hd;
        double d = 0;
        for (int i = 0; i < hd; ++i) d += double(qq[i]) * k[i];
        sc[size_t(p)] = d * scale;
        mx = std::max(mx, sc[size_t(p)]);
      }
      std::vector<double> acc(size_t(hd), 0.0);
      double den = 0;
      for (int p = 0; p <= pos[t]; ++p) {
        const std::int64_t slot = std::int64_t(table[p / bs]) * bs + p % bs;
        const float* v = vc.data() + (slot * nkv + g) * hd;
        const double e = std::exp(sc[size_t(p)] - mx);
        den += e;
        for (int i = 0; i < hd; ++i) acc[size_t(i)] += e * v[i];
      }
      for (int i = 0; i < hd; ++i) {
        const float o = out[size_t((t * nh + h) * hd + i)];
        if (!std::isfinite(o)) return NAN;
        err = std::max(err, std::fabs(double(o) - acc[size_t(i)] / den));
      }
    }
  }
  return err;
}


}  // namespace

TEST_CASE("cpu attention equals a double-precision reference, fp32 and int8 storage", "[cpu][ops]") {
  std::mt19937 rng(12345);
  const int edge[] = {0, 1, 127, 128, 255, 256, 257, 383, 511, 512, 513, 1023, 1500};
  const int shapes[][3] = {{4, 4, 64}, {8, 2, 32}, {9, 3, 16}, {6, 1, 40}, {3, 1, 17}, {32, 8, 64}};
  const int bss[] = {1, 16, 256};
  // One decode token at every edge position: few (token, KV head) pairs, so the context is
  // sliced and the slices merged.
  for (auto& sh : shapes)
    for (int bs : bss)
      for (int p : edge)
        for (bool i8 : {false, true}) {
          Case c{sh[0], sh[1], sh[2], bs, {{p}}};
          INFO("heads " << sh[0] << "/" << sh[1] << " hd " << sh[2] << " block " << bs << " pos " << p << " int8 " << i8);
          REQUIRE(run_case(c, i8, 3, rng) < 1e-4);
        }
  // Random mixes: prefill chunks + decode tokens of up to 3 sequences, 1..4 threads.
  for (int it = 0; it < 80; ++it) {
    auto& sh = shapes[rng() % 6];
    const int bs = bss[rng() % 3];
    Case c{sh[0], sh[1], sh[2], bs, {}};
    const int S = 1 + int(rng() % 3);
    for (int s = 0; s < S; ++s) {
      std::vector<int> ps;
      const int kind = int(rng() % 3);
      if (kind == 0) {
        ps.push_back(rng() % 2 ? edge[rng() % 13] : int(rng() % 1200));
      } else {
        const int start = rng() % 2 ? 0 : int(rng() % 600);
        const int len = 1 + int(rng() % 40);
        for (int i = 0; i < len; ++i) ps.push_back(start + i);
        if (kind == 2) ps.push_back(256), ps.push_back(512);
      }
      c.seq_pos.push_back(ps);
    }
    const bool i8 = rng() % 2;
    const int threads = 1 + int(rng() % 4);
    INFO("case " << it << " heads " << sh[0] << "/" << sh[1] << " hd " << sh[2] << " block " << bs << " threads "
                 << threads << " int8 " << i8);
    REQUIRE(run_case(c, i8, threads, rng) < 1e-4);
  }
  // A 1024-token prefill from position 0 at 32 / 8 heads: its per-chunk partials (~21 MiB)
  // exceed attention()'s 16 MiB budget, so the tokens go in two ranges.
  {
    Case big{32, 8, 64, 16, {{}}};
    for (int p = 0; p < 1024; ++p) big.seq_pos[0].push_back(p);
    REQUIRE(run_case(big, false, 2, rng) < 1e-4);
  }
  // No tokens at all.
  Case none{4, 2, 16, 16, {}};
  CHECK(run_case(none, false, 2, rng) == 0.0);
}
