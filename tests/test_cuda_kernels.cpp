// [cuda] Every CUDA kernel against its CPU reference (src/cpu/ops.hpp where one exists, the
// definition otherwise), on random inputs, in fp32, fp16 and bf16, over several shapes
// including odd lengths and block-boundary cases. Outputs are poisoned with NaN (0xFF bytes)
// before each launch, and every output element is checked for NaN and against
// |got - ref| <= atol + rtol * |ref|. Inputs are rounded to the kernel's dtype first and the
// reference runs on the rounded values, so the tolerance only has to cover fp32 accumulation
// order and the final rounding of the output (bf16: 2^-8 relative, fp16: 2^-11).
// Without a GPU (cudaGetDeviceCount fails or returns 0) each test is marked skipped and returns (VIREO_REQUIRE_GPU).
#include <catch2/catch.hpp>

#ifdef VIREO_WITH_CUDA
#include <algorithm>
#include <cmath>
#include <tuple>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "../cuda/cuda_api.hpp"
#include "cuda_attn_case.hpp"
#include "cuda_test_util.hpp"
#include "test_util.hpp"
#include "cpu/ops.hpp"
#include "cpu/thread_pool.hpp"
#include "sampling/philox.hpp"
#include "vireo/sampler.hpp"

using namespace vireo::test_cuda;

TEST_CASE("cuda gemv matches the CPU matmul", "[cuda]") {
  VIREO_REQUIRE_GPU();
  std::mt19937 rng(1);
  struct Shape { int n, rows, cols; };
  // vector / tensor-core path (cols % 8 == 0), scalar path (odd cols), rows not a multiple of
  // the 16 rows per CTA, columns not a multiple of the 128-column chunk (8200 = 64 chunks + 8;
  // 1160 = 9 chunks + 8, so the 8 warps get different chunk counts), fewer chunks than warps
  const Shape shapes[] = {{1, 37, 64}, {3, 129, 576}, {8, 64, 1536}, {2, 33, 37}, {5, 7, 4},
                          {1, 1, 8200}, {7, 47, 1160}, {4, 16, 8}, {8, 200, 4096}};
  for (DType dt : kDtypes)
    for (const Shape& s : shapes)
      for (bool y_f32 : {false, true}) {
        auto x = random_vec(std::size_t(s.n) * s.cols, dt, rng);
        auto w = random_vec(std::size_t(s.rows) * s.cols, dt, rng);
        auto dx = to_device(dt, x), dw = to_device(dt, w);
        const DType ydt = y_f32 ? DType::F32 : dt;
        auto dy = poisoned(std::size_t(s.n) * s.rows * vireo::dtype_size(ydt));
        REQUIRE(vc::gemv(dt, dw.get(), dx.get(), dy.get(), y_f32, s.n, s.rows, s.cols, nullptr) == 0);
        vc::synchronize(nullptr);
        auto ref = ref_matmul(x, w, s.n, s.rows, s.cols);
        Tol t = tol_for(ydt);
        t.atol *= std::sqrt(float(s.cols) / 64.0f);  // fp32 accumulation error grows with the length
        check_close(from_device(ydt, dy, ref.size()), ref, t,
                    "gemv " + std::string(vireo::to_string(dt)) + " n=" + std::to_string(s.n) + " rows=" +
                        std::to_string(s.rows) + " cols=" + std::to_string(s.cols));
      }
  CHECK(vc::gemv(DType::BF16, nullptr, nullptr, nullptr, false, vc::GEMV_MAX_TOKENS + 1, 4, 8, nullptr) != 0);
}

TEST_CASE("cuda fused gate/up GEMV + SwiGLU matches the CPU matmul and cpu::silu_mul", "[cuda]") {
  VIREO_REQUIRE_GPU();
  std::mt19937 rng(11);
  struct Shape { int n, ff, cols; };
  // tensor-core path (cols % 8 == 0): ff not a multiple of the 8 outputs per CTA, a partial last
  // chunk (1160), one chunk only (64); scalar path: odd cols (37)
  const Shape shapes[] = {{1, 37, 64}, {3, 13, 576}, {8, 64, 1536}, {5, 29, 1160}, {2, 11, 37}, {8, 1, 8200}};
  for (DType dt : kDtypes)
    for (const Shape& s : shapes) {
      auto x = random_vec(std::size_t(s.n) * s.cols, dt, rng);
      auto w = random_vec(std::size_t(2) * s.ff * s.cols, dt, rng, 0.5f);
      auto dx = to_device(dt, x), dw = to_device(dt, w);
      auto dh = poisoned(std::size_t(s.n) * s.ff * vireo::dtype_size(dt));
      REQUIRE(vc::gemv_swiglu(dt, dw.get(), dx.get(), dh.get(), s.n, s.ff, s.cols, nullptr) == 0);
      vc::synchronize(nullptr);
      // Reference as the unfused decode path computes it: gu = x . W^T rounded to T, then SwiGLU.
      auto gu = ref_matmul(x, w, s.n, 2 * s.ff, s.cols);
      if (dt != DType::F32) {
        std::vector<std::uint16_t> tmp(gu.size());
        vc::convert_from_f32(dt, gu.data(), tmp.data(), gu.size());
        vc::convert_to_f32(dt, tmp.data(), gu.data(), gu.size());
      }
      std::vector<float> g, u;
      for (int t = 0; t < s.n; ++t) {
        g.insert(g.end(), gu.begin() + std::ptrdiff_t(t) * 2 * s.ff, gu.begin() + std::ptrdiff_t(t) * 2 * s.ff + s.ff);
        u.insert(u.end(), gu.begin() + std::ptrdiff_t(t) * 2 * s.ff + s.ff, gu.begin() + std::ptrdiff_t(t + 1) * 2 * s.ff);
      }
      vireo::cpu::silu_mul(g.data(), u.data(), std::int64_t(g.size()));
      // The gate/up sums carry the gemv's accumulation error (and, in 16-bit, can round to the
      // other neighbour of T than the reference), which the product then amplifies by |u|, |g|.
      Tol t = tol_for(dt);
      t.atol *= std::sqrt(float(s.cols) / 64.0f);
      if (dt != DType::F32) t.rtol *= 2.0f;
      check_close(from_device(dt, dh, g.size()), g, t,
                  "gemv_swiglu " + std::string(vireo::to_string(dt)) + " n=" + std::to_string(s.n) + " ff=" +
                      std::to_string(s.ff) + " cols=" + std::to_string(s.cols));
    }
  CHECK(vc::gemv_swiglu(DType::BF16, nullptr, nullptr, nullptr, vc::GEMV_MAX_TOKENS + 1, 4, 8, nullptr) != 0);
}

TEST_CASE("cuda cuBLAS gemm matches the CPU matmul", "[cuda]") {
  VIREO_REQUIRE_GPU();
  std::mt19937 rng(2);
  vc::Stream stream;
  vc::Blas blas(stream.get());
  struct Shape { int n, rows, cols; };
  const Shape shapes[] = {{17, 96, 80}, {64, 128, 576}, {9, 33, 40}};
  for (DType dt : kDtypes)
    for (const Shape& s : shapes)
      for (bool acc : {false, true}) {
        auto x = random_vec(std::size_t(s.n) * s.cols, dt, rng);
        auto w = random_vec(std::size_t(s.rows) * s.cols, dt, rng);
        auto y0 = random_vec(std::size_t(s.n) * s.rows, DType::F32, rng);
        auto dx = to_device(dt, x), dw = to_device(dt, w);
        auto dy = acc ? to_device(DType::F32, y0) : poisoned(y0.size() * 4);
        blas.gemm(dt, dx.get(), dw.get(), dy.get(), true, s.n, s.rows, s.cols, acc);
        stream.synchronize();
        auto ref = ref_matmul(x, w, s.n, s.rows, s.cols);
        if (acc)
          for (std::size_t i = 0; i < ref.size(); ++i) ref[i] += y0[i];
        Tol t = tol_for(DType::F32);
        t.atol = 1e-4f * std::sqrt(float(s.cols));
        check_close(from_device(DType::F32, dy, ref.size()), ref, t, "gemm " + std::string(vireo::to_string(dt)));
      }
}

TEST_CASE("cuda embed gathers rows", "[cuda]") {
  VIREO_REQUIRE_GPU();
  std::mt19937 rng(3);
  // d = 72 and 4096: 16-byte vectors for 16-bit tables; 36: a row of 4.5 vectors, element by element.
  for (int d : {72, 36, 4096})
  for (DType dt : kDtypes) {
    INFO("d " << d << " " << vireo::to_string(dt));
    const int vocab = 50, n = 9;
    auto table = random_vec(std::size_t(vocab) * d, dt, rng);
    std::vector<std::int32_t> tok = {0, 49, 3, 3, 17, 25, 1, 48, 10};
    auto dt_ = to_device(dt, table), dtok = to_device_raw(tok);
    auto out = poisoned(std::size_t(n) * d * 4);
    REQUIRE(vc::embed(dt, dt_.get(), dtok.as<std::int32_t>(), out.as<float>(), n, d, nullptr) == 0);
    std::vector<float> ref;
    for (int t : tok) ref.insert(ref.end(), table.begin() + std::ptrdiff_t(t) * d, table.begin() + std::ptrdiff_t(t + 1) * d);
    check_close(from_device(DType::F32, out, ref.size()), ref, {0, 0}, "embed");
  }
}

TEST_CASE("cuda fused residual add + RMSNorm matches cpu::rms_norm", "[cuda]") {
  VIREO_REQUIRE_GPU();
  std::mt19937 rng(4);
  const float eps = 1e-5f;
  for (DType dt : kDtypes)
    for (int cols : {64, 576, 1000, 2049, 4096})
      for (int mode = 0; mode < 3; ++mode) {  // 0: norm only, 1: add + norm, 2: gather rows
        const int rows = 7;
        auto resid = random_vec(std::size_t(rows) * cols, DType::F32, rng, 3.0f);
        auto delta = random_vec(resid.size(), dt, rng);
        auto w = random_vec(std::size_t(cols), DType::F32, rng);
        std::vector<std::int32_t> idx = {6, 0, 3};
        auto dres = to_device(DType::F32, resid), ddelta = to_device(dt, delta), dw = to_device(DType::F32, w);
        auto didx = to_device_raw(idx);
        const int out_rows = mode == 2 ? int(idx.size()) : rows;
        auto dy = poisoned(std::size_t(out_rows) * cols * vireo::dtype_size(dt));
        REQUIRE(vc::rmsnorm(dt, mode ? ddelta.get() : nullptr, dres.as<float>(), dw.as<float>(), dy.get(),
                            mode == 2 ? didx.as<std::int32_t>() : nullptr, out_rows, cols, eps, nullptr) == 0);
        std::vector<float> h = resid;
        if (mode)
          for (std::size_t i = 0; i < h.size(); ++i) h[i] += delta[i];
        std::vector<float> src;
        if (mode == 2)
          for (int r : idx) src.insert(src.end(), h.begin() + std::ptrdiff_t(r) * cols, h.begin() + std::ptrdiff_t(r + 1) * cols);
        else
          src = h;
        std::vector<float> ref(src.size());
        vireo::cpu::rms_norm(src.data(), w.data(), out_rows, cols, eps, ref.data());
        const std::string what = "rmsnorm " + std::string(vireo::to_string(dt)) + " cols=" + std::to_string(cols) +
                                 " mode=" + std::to_string(mode);
        check_close(from_device(dt, dy, ref.size()), ref, tol_for(dt), what);
        // The residual stream is updated in place only in mode 1.
        check_close(from_device(DType::F32, dres, resid.size()), mode == 1 ? h : resid, {1e-6f, 1e-6f}, what + " resid");
      }
}

TEST_CASE("cuda SwiGLU matches cpu::silu_mul", "[cuda]") {
  VIREO_REQUIRE_GPU();
  std::mt19937 rng(5);
  for (DType dt : kDtypes)
    for (int ff : {1, 37, 1536}) {
      const int rows = 5;
      auto gu = random_vec(std::size_t(rows) * 2 * ff, dt, rng, 4.0f);
      auto dgu = to_device(dt, gu);
      auto dout = poisoned(std::size_t(rows) * ff * vireo::dtype_size(dt));
      REQUIRE(vc::swiglu(dt, dgu.get(), dout.get(), rows, ff, nullptr) == 0);
      std::vector<float> g, u;
      for (int r = 0; r < rows; ++r) {
        g.insert(g.end(), gu.begin() + std::ptrdiff_t(r) * 2 * ff, gu.begin() + std::ptrdiff_t(r) * 2 * ff + ff);
        u.insert(u.end(), gu.begin() + std::ptrdiff_t(r) * 2 * ff + ff, gu.begin() + std::ptrdiff_t(r + 1) * 2 * ff);
      }
      vireo::cpu::silu_mul(g.data(), u.data(), std::int64_t(g.size()));
      check_close(from_device(dt, dout, g.size()), g, tol_for(dt), "swiglu ff=" + std::to_string(ff));
    }
}

TEST_CASE("cuda bias + RoPE + KV write matches cpu::rope and the slot layout", "[cuda][kv]") {
  VIREO_REQUIRE_GPU();
  std::mt19937 rng(6);
  for (DType dt : kDtypes)
    for (int hd : {64, 128})
      for (bool bias : {false, true}) {
        const int nh = 6, nkv = 2, n = 5, n_slots = 40;
        const int width = (nh + 2 * nkv) * hd;
        auto qkv = random_vec(std::size_t(n) * width, dt, rng);
        auto b = random_vec(std::size_t(width), DType::F32, rng);
        std::vector<std::int32_t> pos = {0, 1, 17, 1000, 4095};
        std::vector<std::int64_t> slots = {3, 39, -1, 16, 0};  // -1: padding, no write
        // Token 3's V row of KV head 1 is all zeros, bias included (the int8 scale 0 case
        // below). Every token shares the bias, so that head's bias is zero for all of them.
        for (int c = 0; c < hd; ++c) {
          const std::size_t col = std::size_t(nh + nkv + 1) * hd + c;
          qkv[std::size_t(3) * width + col] = 0.0f;
          b[col] = 0.0f;
        }
        std::vector<float> inv(static_cast<std::size_t>(hd / 2));
        for (int i = 0; i < hd / 2; ++i) inv[std::size_t(i)] = float(std::pow(10000.0, -2.0 * i / hd));
        auto dqkv = to_device(dt, qkv), db = to_device(DType::F32, b), dinv = to_device(DType::F32, inv);
        auto dpos = to_device_raw(pos), dslots = to_device_raw(slots);
        auto dq = poisoned(std::size_t(n) * nh * hd * vireo::dtype_size(dt));
        const std::size_t cache_elems = std::size_t(n_slots) * nkv * hd;
        auto kc = random_vec(cache_elems, dt, rng), vcache = random_vec(cache_elems, dt, rng);
        auto dk = to_device(dt, kc), dv = to_device(dt, vcache);
        vc::RopeKVParams p;
        p.qkv = dqkv.get();
        p.bias = bias ? db.as<float>() : nullptr;
        p.inv_freq = dinv.as<float>();
        p.q_out = dq.get();
        p.k_cache = dk.get();
        p.v_cache = dv.get();
        p.positions = dpos.as<std::int32_t>();
        p.slots = dslots.as<std::int64_t>();
        p.n = n;
        p.n_heads = nh;
        p.n_kv_heads = nkv;
        p.head_dim = hd;
        REQUIRE(vc::rope_kv(dt, p, nullptr) == 0);
        // Reference: split, bias, cpu::rope on q and k, scatter k/v to slots.
        std::vector<float> q(std::size_t(n) * nh * hd), k(std::size_t(n) * nkv * hd), v(k.size());
        for (int t = 0; t < n; ++t)
          for (int c = 0; c < width; ++c) {
            float x = qkv[std::size_t(t) * width + c] + (bias ? b[std::size_t(c)] : 0.0f);
            if (c < nh * hd) q[std::size_t(t) * nh * hd + c] = x;
            else if (c < (nh + nkv) * hd) k[std::size_t(t) * nkv * hd + c - nh * hd] = x;
            else v[std::size_t(t) * nkv * hd + c - (nh + nkv) * hd] = x;
          }
        vireo::cpu::rope(q.data(), n, nh, hd, pos.data(), 10000.0f, nullptr);
        vireo::cpu::rope(k.data(), n, nkv, hd, pos.data(), 10000.0f, nullptr);
        for (int t = 0; t < n; ++t) {
          if (slots[std::size_t(t)] < 0) continue;
          std::copy_n(k.begin() + std::ptrdiff_t(t) * nkv * hd, nkv * hd, kc.begin() + slots[std::size_t(t)] * nkv * hd);
          std::copy_n(v.begin() + std::ptrdiff_t(t) * nkv * hd, nkv * hd, vcache.begin() + slots[std::size_t(t)] * nkv * hd);
        }
        const std::string what = "rope_kv " + std::string(vireo::to_string(dt)) + " hd=" + std::to_string(hd);
        check_close(from_device(dt, dq, q.size()), q, tol_for(dt), what + " q");
        check_close(from_device(dt, dk, kc.size()), kc, tol_for(dt), what + " k cache");
        check_close(from_device(dt, dv, vcache.size()), vcache, tol_for(dt), what + " v cache");

        // int8 K/V (KVPrecision::Int8): each roped K row and V row of a KV head quantized on
        // its own, as cpu::quantize_kv_row does: the same scale (fp32 arithmetic on the same
        // inputs, 1e-5 relative), every value within one step of the CPU's (a value on a
        // rounding boundary may go either way); padding and other slots untouched.
        const std::size_t rows = std::size_t(n_slots) * nkv;
        const std::vector<std::int8_t> fill8(rows * hd, std::int8_t(0x55));
        const std::vector<float> fills(rows, -7.0f);
        auto dk8 = to_device_raw(fill8), dv8 = to_device_raw(fill8), dks = to_device_raw(fills), dvs = to_device_raw(fills);
        vc::RopeKVParams p8 = p;
        p8.k_cache = dk8.get();
        p8.v_cache = dv8.get();
        p8.k_scale = dks.as<float>();
        p8.v_scale = dvs.as<float>();
        dq.fill_bytes(0xFF);
        REQUIRE(vc::rope_kv(dt, p8, nullptr) == 0);
        check_close(from_device(dt, dq, q.size()), q, tol_for(dt), what + " q (int8 K/V)");
        std::vector<std::int8_t> gk(fill8.size()), gv(fill8.size());
        std::vector<float> gks(rows), gvs(rows);
        dk8.download(gk.data(), gk.size());
        dv8.download(gv.data(), gv.size());
        dks.download(gks.data(), rows * 4);
        dvs.download(gvs.data(), rows * 4);
        std::vector<bool> written(rows, false);
        for (int t = 0; t < n; ++t) {
          if (slots[std::size_t(t)] < 0) continue;
          for (int h = 0; h < nkv; ++h) {
            const std::size_t r = std::size_t(slots[std::size_t(t)]) * nkv + h, src = (std::size_t(t) * nkv + h) * hd;
            written[r] = true;
            for (int kv = 0; kv < 2; ++kv) {
              std::vector<std::int8_t> ref(static_cast<std::size_t>(hd));
              float rs = 0.0f;
              vireo::cpu::quantize_kv_row((kv ? v : k).data() + src, hd, ref.data(), &rs);
              const float gs = (kv ? gvs : gks)[r];
              INFO(what << " int8, token " << t << " head " << h << (kv ? " V" : " K"));
              CHECK(std::fabs(gs - rs) <= 1e-5f * std::fabs(rs));
              if (kv && t == 3 && h == 1) CHECK(gs == 0.0f);
              int off = 0;
              for (int c = 0; c < hd; ++c)
                off = std::max(off, std::abs(int((kv ? gv : gk)[r * hd + c]) - int(ref[std::size_t(c)])));
              CHECK(off <= 1);
            }
          }
        }
        for (std::size_t r = 0; r < rows; ++r) {
          if (written[r]) continue;
          INFO(what << " int8, untouched row " << r);
          REQUIRE(gks[r] == -7.0f);
          REQUIRE(gvs[r] == -7.0f);
          for (int c = 0; c < hd; ++c) REQUIRE((gk[r * hd + c] == 0x55 && gv[r * hd + c] == 0x55));
        }
        p8.v_scale = nullptr;  // K and V scales come together
        CHECK(vc::rope_kv(dt, p8, nullptr) != 0);
      }
}


TEST_CASE("cuda split-KV decode attention matches cpu::attention", "[cuda]") {
  VIREO_REQUIRE_GPU();
  std::mt19937 rng(7);
  struct Cfg { int nh, nkv, hd, bs; };
  const Cfg cfgs[] = {{9, 3, 64, 16}, {32, 8, 128, 16}, {4, 4, 64, 32}, {8, 1, 128, 16}};
  // cl: AttentionParams::cluster_merge (16-bit K/V with splits > 1: the splits merge through
  // distributed shared memory; 16 splits is a non-portable cluster size).
  for (bool cl : {false, true})
  for (DType dt : kDtypes)
    for (const Cfg& c : cfgs)
      for (int splits : {1, 3, 16}) {
        if (cl && dt == DType::F32) continue;
        AttnCase ac(c.nh, c.nkv, c.hd, c.bs, {1, 16, 17, 300, 1031}, {1, 1, 1, 1, 1});
        ac.build(dt, rng);
        const int n = int(ac.pos.size());
        auto dq = to_device(dt, ac.q), dk = to_device(dt, ac.k), dv = to_device(dt, ac.v);
        auto dkv = to_device_raw(ac.kv_len), dbt = to_device_raw(ac.bt_off), dids = to_device_raw(ac.block_ids);
        std::vector<std::int32_t> list(static_cast<std::size_t>(n));
        std::iota(list.begin(), list.end(), 0);
        std::reverse(list.begin(), list.end());  // any order of tokens
        auto dlist = to_device_raw(list);
        auto dout = poisoned(ac.q.size() * vireo::dtype_size(dt));
        vc::DeviceBuffer ws(std::max<std::size_t>(vc::decode_attention_workspace_floats(n, c.nh, c.hd, splits), 1) * 4);
        ws.fill_bytes(0);  // the split counters start at zero (and are left at zero)
        vc::AttentionParams p = ac.params(dq, dk, dv, dout, dkv, dbt, dids);
        p.cluster_merge = cl;
        // Twice on the same workspace: the in-kernel merge must leave its counters at zero.
        REQUIRE(vc::decode_attention(dt, p, dlist.as<std::int32_t>(), n, splits, ws.as<float>(), nullptr) == 0);
        const std::vector<float> first = from_device(dt, dout, ac.q.size());
        REQUIRE(vc::decode_attention(dt, p, dlist.as<std::int32_t>(), n, splits, ws.as<float>(), nullptr) == 0);
        CHECK(from_device(dt, dout, ac.q.size()) == first);
        // 16-bit types run on tensor cores with P rounded to T before P.V (as in prefill).
        Tol t = tol_for(dt);
        if (dt != DType::F32) t.atol *= 2;
        check_close(from_device(dt, dout, ac.q.size()), ac.reference(), t,
                    "decode attention " + std::string(vireo::to_string(dt)) + " nh=" + std::to_string(c.nh) + " nkv=" +
                        std::to_string(c.nkv) + " hd=" + std::to_string(c.hd) + " splits=" + std::to_string(splits) +
                        (cl ? " cluster merge" : ""));
      }
  CHECK(vc::decode_attention_splits(1, 8, 132) > 1);
  CHECK(vc::decode_attention_splits(64, 8, 132) == 1);
  CHECK(vc::decode_attention_splits(1, 8, 132, 512) == 4);  // >= 128 keys per split
  CHECK(vc::decode_attention_splits(1, 8, 132, 120) == 1);
  CHECK(vc::decode_attention_splits(1, 8, 132, 1024) == 8);
  CHECK(vc::decode_attention_splits(1, 8, 132, 2048) == 16);
  CHECK(vc::decode_attention_splits(1, 8, 132, 1024, 64) == 16);  // a caller's minimum (DecodeTuning)
  CHECK(vc::decode_attention_splits(1, 8, 132, 1024, 5) == 8);    // out of range: the default
}

TEST_CASE("cuda tensor-core prefill attention matches cpu::attention", "[cuda]") {
  VIREO_REQUIRE_GPU();
  std::mt19937 rng(8);
  struct Cfg { int nh, nkv, hd, bs; };
  const Cfg cfgs[] = {{9, 3, 64, 16}, {16, 4, 128, 16}, {2, 2, 64, 8}};
  for (DType dt : {DType::F16, DType::BF16})
    for (const Cfg& c : cfgs) {
      // Chunks with and without earlier context, lengths around the 64-query / 64-key tiles.
      AttnCase ac(c.nh, c.nkv, c.hd, c.bs, {1, 63, 64, 65, 200, 150}, {1, 63, 64, 65, 130, 20});
      ac.build(dt, rng);
      const int n = int(ac.pos.size());
      std::vector<std::int32_t> list(static_cast<std::size_t>(n)), tiles;
      std::iota(list.begin(), list.end(), 0);
      for (int t0 = 0; t0 < n;) {  // tiles of <= 64 tokens, never crossing a sequence
        int t1 = t0;
        while (t1 < n && t1 - t0 < vc::prefill_tile() && ac.seq_of[std::size_t(t1)] == ac.seq_of[std::size_t(t0)]) ++t1;
        tiles.insert(tiles.end(), {t0, t1 - t0, 0});
        t0 = t1;
      }
      auto dq = to_device(dt, ac.q), dk = to_device(dt, ac.k), dv = to_device(dt, ac.v);
      auto dkv = to_device_raw(ac.kv_len), dbt = to_device_raw(ac.bt_off), dids = to_device_raw(ac.block_ids);
      auto dlist = to_device_raw(list), dtiles = to_device_raw(tiles);
      auto dout = poisoned(ac.q.size() * vireo::dtype_size(dt));
      const vc::AttentionParams p = ac.params(dq, dk, dv, dout, dkv, dbt, dids);
      REQUIRE(vc::prefill_attention(dt, p, dlist.as<std::int32_t>(), dtiles.as<std::int32_t>(), int(tiles.size() / 3),
                                    nullptr) == 0);
      // P is rounded to the 16-bit type before P.V (as in FlashAttention-2): one more rounding.
      Tol t = tol_for(dt);
      t.atol *= 2;
      check_close(from_device(dt, dout, ac.q.size()), ac.reference(), t,
                  "prefill attention " + std::string(vireo::to_string(dt)) + " hd=" + std::to_string(c.hd));
    }
  vc::AttentionParams bad;
  bad.head_dim = 64;
  bad.n_heads = bad.n_kv_heads = 1;
  CHECK(vc::prefill_attention(DType::F32, bad, nullptr, nullptr, 1, nullptr) != 0);  // tensor cores: 16-bit only
}

TEST_CASE("cuda sampling matches vireo::Sampler token for token", "[cuda]") {
  VIREO_REQUIRE_GPU();
  std::mt19937 rng(9);
  const int vocab = 5000, rows = 24;
  vc::Stream stream;
  vc::GpuSampler gpu(rows, vocab, stream.get());
  std::vector<float> logits(std::size_t(rows) * vocab);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (auto& x : logits) x = nd(rng);
  for (int i = 0; i < 40; ++i) logits[std::size_t(rng() % logits.size())] = -INFINITY;  // masked tokens
  logits[7] = logits[8] = 50.0f;  // a tie in row 0: the lower id wins
  std::vector<vc::RowSampling> prm(static_cast<std::size_t>(rows));
  std::vector<vireo::SamplerParams> cpu(static_cast<std::size_t>(rows));
  for (int r = 0; r < rows; ++r) {
    vireo::SamplerParams& c = cpu[std::size_t(r)];
    c.temperature = r % 6 == 0 ? 0.0f : 0.3f + 0.2f * float(r % 5);
    c.top_k = r % 3 == 1 ? 40 : 0;
    c.top_p = r % 4 == 2 ? 0.9f : 1.0f;
    c.min_p = r % 5 == 3 ? 0.05f : 0.0f;
    c.seed = 1000 + std::uint64_t(r);
    prm[std::size_t(r)] = {c.temperature, c.top_k, c.top_p, c.min_p, c.seed, 0};
  }
  auto dl = to_device(DType::F32, logits);
  std::vector<std::int32_t> tok(std::size_t(rows), -7);
  std::vector<float> lp(std::size_t(rows), NAN);
  gpu.sample(dl.as<float>(), rows, prm.data(), tok.data(), lp.data());
  for (int r = 0; r < rows; ++r) {
    vireo::Sampler s(cpu[std::size_t(r)]);
    const auto ref = s.sample(std::span<const float>(logits.data() + std::size_t(r) * vocab, std::size_t(vocab)));
    INFO("row " << r << " temperature " << cpu[std::size_t(r)].temperature << " top_k " << cpu[std::size_t(r)].top_k
                << " top_p " << cpu[std::size_t(r)].top_p << " min_p " << cpu[std::size_t(r)].min_p);
    CHECK(tok[std::size_t(r)] == ref.token);
    CHECK(!std::isnan(lp[std::size_t(r)]));
    CHECK(std::fabs(lp[std::size_t(r)] - ref.logprob) <= 1e-3f + 1e-4f * std::fabs(ref.logprob));
  }
  CHECK(tok[0] == 7);
  // A +inf logit is rejected, as by the CPU Sampler (it would make every s_i NaN).
  {
    std::vector<float> bad(logits.begin(), logits.begin() + vocab);
    bad[123] = INFINITY;
    CHECK_THROWS_AS(vireo::Sampler(cpu[1]).sample(std::span<const float>(bad)), vireo::Error);
    auto dbad = to_device(DType::F32, bad);
    CHECK_THROWS_AS(gpu.sample(dbad.as<float>(), 1, &prm[1], tok.data(), lp.data()), vireo::Error);
  }
  // Bad parameters are rejected before anything runs.
  prm[0].top_p = 0.0f;
  CHECK_THROWS_AS(gpu.sample(dl.as<float>(), rows, prm.data(), tok.data(), lp.data()), vireo::Error);
  CHECK_THROWS_AS(gpu.sample(dl.as<float>(), rows + 1, prm.data(), tok.data(), lp.data()), vireo::Error);
}

TEST_CASE("cuda device queries never fail without a GPU", "[cuda]") {
  std::string why;
  const int n = vireo::Device::cuda_device_count(&why);
  std::string reason;
  const vireo::Device d = vireo::Device::best(&reason);
  CHECK(!reason.empty());
  if (n == 0) {
    CHECK(!why.empty());
    CHECK(d == vireo::Device::cpu());
  } else {
    CHECK(d.kind == vireo::DeviceKind::CUDA);
    CHECK(d.name().find("cuda:0") == 0);
  }
  CHECK(vireo::Device::cpu().name() == "cpu");
}


// ---- fused decode GEMVs (cuda::gemv_fused) --------------------------------------------------

namespace {

/// RMSNorm of n fp32 rows with weight w, rounded to dt: the reference for the NORM prologue.
std::vector<float> ref_norm(DType dt, const std::vector<float>& h, const std::vector<float>& w, int n, int cols,
                            float eps) {
  std::vector<float> y(h.size());
  for (int t = 0; t < n; ++t) {
    double ss = 0;
    for (int c = 0; c < cols; ++c) ss += double(h[std::size_t(t) * cols + c]) * h[std::size_t(t) * cols + c];
    const float scale = float(1.0 / std::sqrt(ss / cols + eps));
    for (int c = 0; c < cols; ++c) y[std::size_t(t) * cols + c] = h[std::size_t(t) * cols + c] * scale * w[std::size_t(c)];
  }
  return round_to(dt, y);
}

}  // namespace

TEST_CASE("cuda fused decode GEMVs match norm, matmul, RoPE and residual on the CPU", "[cuda]") {
  VIREO_REQUIRE_GPU();
  std::mt19937 rng(21);
  const float eps = 1e-5f;
  CHECK_FALSE(vc::gemv_fused_supported(DType::F32, 1, 256, false));     // tensor cores: 16-bit only
  CHECK_FALSE(vc::gemv_fused_supported(DType::BF16, 9, 256, false));    // > GEMV_MAX_TOKENS
  CHECK_FALSE(vc::gemv_fused_supported(DType::BF16, 8, 5120, true));    // normalized x over 64 KiB
  CHECK(vc::gemv_fused_supported(DType::BF16, 8, 4096, true));
  // A small shape with odd row counts; SmolLM2's (d = 576: a partial 128-column chunk read
  // from shared memory, 9 heads over 3 KV heads); Llama-8B's (head_dim 128, and n = 8 at
  // d = 4096 fills the whole 64 KiB of normalized input: more than the 48 KiB a launch gets
  // without opting in).
  struct Shape {
    int nh, nkv, hd, d, ff;
    std::vector<int> ns;
  };
  // A width past the register-resident norm prologue (d > 4096: the strided loop), 5 tokens.
  const Shape shapes[] = {{4, 2, 64, 256, 200, {1, 3, 6}},
                          {9, 3, 64, 576, 1536, {1, 5}},
                          {32, 8, 128, 4096, 1024, {1, 8}},
                          {16, 4, 128, 6144, 512, {1, 5}}};
  // Weight kind 0: 16-bit matrices; 1: quantized ones (Q4_0 with bf16, Q8_0 with fp16), the
  // same kernel with the quantized weight load (ModelOptions::gpu_quantized).
  for (int wk : {0, 1})
  for (const Shape& sh : shapes)
  for (DType dt : {DType::F16, DType::BF16})
    for (int n : sh.ns) {
      const int nh = sh.nh, nkv = sh.nkv, hd = sh.hd, d = sh.d, ff = sh.ff, qkvw = (nh + 2 * nkv) * hd,
                slots_total = 16;
      if (d >= 4096 && dt == DType::F16) continue;  // one 16-bit type is enough for the large shapes
      INFO("dtype " << vireo::to_string(dt) << " n " << n << " d " << d << " head_dim " << hd << " weights "
                    << (wk ? "quantized" : "16-bit"));
      Tol tol = tol_for(dt);
      tol.rtol *= 2;  // the 16-bit rounding of an intermediate can land one step away
      std::vector<float> resid(std::size_t(n) * d), norm_w(static_cast<std::size_t>(d));
      std::uniform_real_distribution<float> u(-2.0f, 2.0f), pos_w(0.5f, 1.5f);
      for (auto& x : resid) x = u(rng);
      for (auto& x : norm_w) x = pos_w(rng);
      auto dres = to_device_raw(resid), dnw = to_device_raw(norm_w);
      const auto xn = ref_norm(dt, resid, norm_w, n, d, eps);

      // Norm + QKV + bias + RoPE + KV write.
      {
        const FusedW W = make_fused_w(wk, dt, qkvw, d, rng);
        const auto& w = W.w;
        std::vector<float> bias(static_cast<std::size_t>(qkvw)), inv(static_cast<std::size_t>(hd / 2));
        for (auto& x : bias) x = u(rng) * 0.1f;
        for (int i = 0; i < hd / 2; ++i) inv[std::size_t(i)] = float(std::pow(10000.0, -2.0 * i / hd));
        std::vector<std::int32_t> pos(static_cast<std::size_t>(n));
        std::vector<std::int64_t> slots(static_cast<std::size_t>(n));
        for (int t = 0; t < n; ++t) {
          pos[std::size_t(t)] = int(rng() % 3000);
          slots[std::size_t(t)] = t == 1 ? -1 : (t * 5 + 3) % slots_total;  // token 1: no KV write
        }
        auto db = to_device_raw(bias), dinv = to_device_raw(inv), dpos = to_device_raw(pos),
             dslots = to_device_raw(slots);
        const std::size_t es = vireo::dtype_size(dt), cache = std::size_t(slots_total) * nkv * hd;
        auto dq = poisoned(std::size_t(n) * nh * hd * es), dk = poisoned(cache * es), dv = poisoned(cache * es);
        vc::GemvExtras ex;
        ex.resid = dres.as<float>();
        ex.norm_w = dnw.as<float>();
        ex.eps = eps;
        ex.rope.bias = db.as<float>();
        ex.rope.inv_freq = dinv.as<float>();
        ex.rope.q_out = dq.get();
        ex.rope.k_cache = dk.get();
        ex.rope.v_cache = dv.get();
        ex.rope.positions = dpos.as<std::int32_t>();
        ex.rope.slots = dslots.as<std::int64_t>();
        ex.rope.n = n;
        ex.rope.n_heads = nh;
        ex.rope.n_kv_heads = nkv;
        ex.rope.head_dim = hd;
        REQUIRE(W.fused(dt, vc::GemvEpilogue::RopeKV, true, nullptr, nullptr, n, qkvw, d, ex) == 0);
        // Reference: T(xn . W^T), + bias, rotate q and k pairs by pos * inv_freq, round to T.
        auto y = round_to(dt, ref_matmul(xn, w, n, qkvw, d));
        std::vector<float> q_ref(std::size_t(n) * nh * hd), k_ref(cache, NAN), v_ref(cache, NAN);
        // |x0| + |x1| of each q element's pair before the rotation: the kernel and the reference
        // round x0 and x1 to T from sums in different orders, so one may land a step of T at
        // |x| away, and the rotation carries that into an output that can be much smaller than
        // |x| (H100, 2026-11-27: -0.359 against -0.338,
        // bf16, Q4_0 weights, d = 4096).
        std::vector<float> q_mag(q_ref.size());
        for (int t = 0; t < n; ++t)
          for (int col = 0; col < qkvw; col += 2) {
            float x0 = y[std::size_t(t) * qkvw + col] + bias[std::size_t(col)];
            float x1 = y[std::size_t(t) * qkvw + col + 1] + bias[std::size_t(col) + 1];
            const float x0_in = x0, x1_in = x1;
            if (col < (nh + nkv) * hd) {
              const double a = double(pos[std::size_t(t)]) * double(inv[std::size_t((col % hd) / 2)]);
              const float c = float(std::cos(a)), s = float(std::sin(a));
              const float y0 = x0 * c - x1 * s, y1 = x0 * s + x1 * c;
              x0 = y0;
              x1 = y1;
            }
            const std::int64_t slot = slots[std::size_t(t)];
            float* dst = nullptr;
            if (col < nh * hd) {
              dst = &q_ref[std::size_t(t) * nh * hd + std::size_t(col)];
              const float mag = std::fabs(x0_in) + std::fabs(x1_in);
              q_mag[std::size_t(t) * nh * hd + std::size_t(col)] = mag;
              q_mag[std::size_t(t) * nh * hd + std::size_t(col) + 1] = mag;
            } else if (slot < 0) continue;
            else if (col < (nh + nkv) * hd) dst = &k_ref[std::size_t(slot) * nkv * hd + std::size_t(col - nh * hd)];
            else dst = &v_ref[std::size_t(slot) * nkv * hd + std::size_t(col - (nh + nkv) * hd)];
            dst[0] = x0;
            dst[1] = x1;
          }
        check_close(from_device(dt, dq, q_ref.size()), round_to(dt, q_ref), tol, "fused rope q", q_mag);
        // Cache rows of unwritten slots must still hold the poison; written ones the reference.
        for (auto [buf, ref, name] : {std::tuple{&dk, &k_ref, "k"}, std::tuple{&dv, &v_ref, "v"}}) {
          const auto got = from_device(dt, *buf, cache);
          std::vector<float> g_w, r_w;
          for (std::size_t i = 0; i < cache; ++i) {
            if (std::isnan((*ref)[i])) {
              CHECK(std::isnan(got[i]));
            } else {
              g_w.push_back(got[i]);
              r_w.push_back((*ref)[i]);
            }
          }
          CHECK(r_w.size() == std::size_t(n - (n > 1 ? 1 : 0)) * nkv * hd);
          check_close(g_w, round_to(dt, r_w), tol, std::string("fused rope ") + name);
        }
      }
      // Residual add epilogue: resid += T(x . W^T) (rounded to T as the unfused path stores it).
      // (Quantized rows hold whole 32-weight blocks: ff = 200 has none of that shape.)
      if (wk == 0 || ff % 32 == 0) {
        const FusedW W = make_fused_w(wk, dt, d, ff, rng);
        const auto& w = W.w;
        const auto x = random_vec(std::size_t(n) * ff, dt, rng);
        auto ref = round_to(dt, ref_matmul(x, w, n, d, ff));
        for (std::size_t i = 0; i < ref.size(); ++i) ref[i] += resid[i];
        auto dx = to_device(dt, x);
        // depth 2: each warp loads two chunks before its MMAs (16-bit weights; an odd last
        // chunk at cols 200 and 1536, one chunk per warp at 1024).
        for (int depth : {1, 2}) {
          INFO("chunks in flight per warp " << depth);
          auto dy = to_device_raw(resid);
          vc::GemvExtras ex;
          ex.depth = depth;
          REQUIRE(W.fused(dt, vc::GemvEpilogue::Add, false, dx.get(), dy.get(), n, d, ff, ex) == 0);
          std::vector<float> got(ref.size());
          dy.download(got.data(), got.size() * 4);
          // One rounding step of T(sum) away at most: an absolute error of ~|sum| * 2^-8 (bf16).
          check_close(got, ref, Tol{tol.atol * 2, tol.rtol}, "fused residual add");
        }
        // The residual is read-modify-written, so norm + Add in one launch is refused.
        auto dy = to_device_raw(resid);
        vc::GemvExtras bad;
        bad.resid = dy.as<float>();
        bad.norm_w = dnw.as<float>();
        CHECK(W.fused(dt, vc::GemvEpilogue::Add, true, nullptr, dy.get(), n, d, d, bad) != 0);
      }
      // Norm + gate/up + SwiGLU, and norm + plain store.
      {
        const FusedW W = make_fused_w(wk, dt, 2 * ff, d, rng);
        const auto& w = W.w;
        auto dh = poisoned(std::size_t(n) * ff * vireo::dtype_size(dt));
        vc::GemvExtras ex;
        ex.resid = dres.as<float>();
        ex.norm_w = dnw.as<float>();
        ex.eps = eps;
        const auto gu = round_to(dt, ref_matmul(xn, w, n, 2 * ff, d));
        std::vector<float> h(std::size_t(n) * ff);
        for (int t = 0; t < n; ++t)
          for (int i = 0; i < ff; ++i) {
            const float g = gu[std::size_t(t) * 2 * ff + std::size_t(i)], up = gu[std::size_t(t) * 2 * ff + ff + std::size_t(i)];
            h[std::size_t(t) * ff + std::size_t(i)] = g / (1.0f + std::exp(-g)) * up;
          }
        REQUIRE(W.fused(dt, vc::GemvEpilogue::SwiGLU, true, nullptr, dh.get(), n, ff, d, ex) == 0);
        check_close(from_device(dt, dh, h.size()), round_to(dt, h), tol, "fused norm + swiglu");
        auto dy = poisoned(std::size_t(n) * 2 * ff * vireo::dtype_size(dt));
        REQUIRE(W.fused(dt, vc::GemvEpilogue::Store, true, nullptr, dy.get(), n, 2 * ff, d, ex) == 0);
        check_close(from_device(dt, dy, gu.size()), gu, tol, "fused norm + store");
      }
    }
}

#endif  // VIREO_WITH_CUDA
