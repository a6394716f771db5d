// [cuda][kv] int8 K/V (KVPrecision::Int8) on the CUDA backend, against the CPU backend's int8
// path (cpu::quantize_kv_row, cpu::attention with k8 / v8), which test_kv_int8.cpp checks
// against fp32 K/V:
// * (rope_kv's int8 writes: in test_cuda_kernels.cpp, with the 16-bit ones;)
// * decode (split-KV, tensor cores for 16-bit) and prefill attention read the int8 cache:
//   against cpu::attention over the same int8 rows and scales, with the 16-bit tolerance of
//   the plain kernels (the GPU rounds each dequantized element to the 16-bit type);
// * a whole model: int8 against 16-bit K/V on the GPU, and against the CPU's int8 path; a
//   batched forward equals the separate ones, fork and swap out / in keep the int8 state.
// Without a GPU each test is marked skipped and returns (VIREO_REQUIRE_GPU).
#include <catch2/catch.hpp>

#ifdef VIREO_WITH_CUDA
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "../cuda/cuda_api.hpp"
#include "cpu/ops.hpp"
#include "cuda_attn_case.hpp"
#include "cuda_test_util.hpp"
#include "kv_int8_checks.hpp"
#include "test_util.hpp"
#include "vireo/batch.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/model.hpp"

using namespace vireo::test_cuda;

TEST_CASE("cuda decode and prefill attention over int8 K/V match cpu::attention's int8 path", "[cuda][kv]") {
  VIREO_REQUIRE_GPU();
  std::mt19937 rng(17);
  struct Cfg { int nh, nkv, hd, bs; };
  const Cfg cfgs[] = {{9, 3, 64, 16}, {32, 8, 128, 16}, {8, 1, 128, 32}};
  for (DType dt : kDtypes)
    for (const Cfg& c : cfgs) {
      const std::string name = std::string(vireo::to_string(dt)) + " nh=" + std::to_string(c.nh) +
                               " nkv=" + std::to_string(c.nkv) + " hd=" + std::to_string(c.hd);
      // Decode: one query token per sequence, lengths across tiles, blocks and splits.
      for (int splits : {1, 5, 16}) {
        AttnCase ac(c.nh, c.nkv, c.hd, c.bs, {1, 16, 17, 300, 1031}, {1, 1, 1, 1, 1});
        ac.build(dt, rng);
        ac.quantize_kv();
        const int n = int(ac.pos.size());
        auto dq = to_device(dt, ac.q), dk = to_device_raw(ac.k8), dv = to_device_raw(ac.v8);
        auto dks = to_device_raw(ac.ks), dvs = to_device_raw(ac.vs);
        auto dkv = to_device_raw(ac.kv_len), dbt = to_device_raw(ac.bt_off), dids = to_device_raw(ac.block_ids);
        std::vector<std::int32_t> list(static_cast<std::size_t>(n));
        std::iota(list.begin(), list.end(), 0);
        auto dlist = to_device_raw(list);
        auto dout = poisoned(ac.q.size() * vireo::dtype_size(dt));
        vc::DeviceBuffer ws(std::max<std::size_t>(vc::decode_attention_workspace_floats(n, c.nh, c.hd, splits), 1) * 4);
        ws.fill_bytes(0);
        vc::AttentionParams p = ac.params(dq, dk, dv, dout, dkv, dbt, dids);
        p.k_scale = dks.as<float>();
        p.v_scale = dvs.as<float>();
        REQUIRE(vc::decode_attention(dt, p, dlist.as<std::int32_t>(), n, splits, ws.as<float>(), nullptr) == 0);
        Tol t = tol_for(dt);
        if (dt != DType::F32) t.atol *= 2;
        check_close(from_device(dt, dout, ac.q.size()), ac.reference_i8(), t,
                    "int8 decode attention " + name + " splits=" + std::to_string(splits));
        vc::AttentionParams half = p;
        half.v_scale = nullptr;  // K and V scales come together
        CHECK(vc::decode_attention(dt, half, dlist.as<std::int32_t>(), n, splits, ws.as<float>(), nullptr) != 0);
      }
      if (dt == DType::F32) continue;  // prefill attention runs on tensor cores: 16-bit only
      // Prefill: chunks with and without earlier context, around the 64-query / 64-key tiles.
      AttnCase ac(c.nh, c.nkv, c.hd, c.bs, {1, 63, 64, 65, 200, 150}, {1, 63, 64, 65, 130, 20});
      ac.build(dt, rng);
      ac.quantize_kv();
      const int n = int(ac.pos.size());
      std::vector<std::int32_t> list(static_cast<std::size_t>(n)), tiles;
      std::iota(list.begin(), list.end(), 0);
      for (int t0 = 0; t0 < n;) {
        int t1 = t0;
        while (t1 < n && t1 - t0 < vc::prefill_tile() && ac.seq_of[std::size_t(t1)] == ac.seq_of[std::size_t(t0)]) ++t1;
        tiles.insert(tiles.end(), {t0, t1 - t0, 0});
        t0 = t1;
      }
      auto dq = to_device(dt, ac.q), dk = to_device_raw(ac.k8), dv = to_device_raw(ac.v8);
      auto dks = to_device_raw(ac.ks), dvs = to_device_raw(ac.vs);
      auto dkv = to_device_raw(ac.kv_len), dbt = to_device_raw(ac.bt_off), dids = to_device_raw(ac.block_ids);
      auto dlist = to_device_raw(list), dtiles = to_device_raw(tiles);
      auto dout = poisoned(ac.q.size() * vireo::dtype_size(dt));
      vc::AttentionParams p = ac.params(dq, dk, dv, dout, dkv, dbt, dids);
      p.k_scale = dks.as<float>();
      p.v_scale = dvs.as<float>();
      REQUIRE(vc::prefill_attention(dt, p, dlist.as<std::int32_t>(), dtiles.as<std::int32_t>(), int(tiles.size() / 3),
                                    nullptr) == 0);
      Tol t = tol_for(dt);
      t.atol *= 2;
      check_close(from_device(dt, dout, ac.q.size()), ac.reference_i8(), t, "int8 prefill attention " + name);
    }
}


TEST_CASE("cuda model with an int8 KV cache matches the CPU's int8 path and the 16-bit one", "[cuda][kv][model]") {
  VIREO_REQUIRE_GPU();
  using namespace vireo;
  using test::rel_err;
  const std::vector<Token>&kP = test::kInt8Prompt, &kN = test::kInt8Next;
  // hd 64 (the CUDA kernels take 64 or 128), GQA 2, 3 layers.
  const ModelConfig cfg = test::model_shape(3, 256, 4, 2, 64, 512, 400, 512);
  const Model cpu = Model::random(cfg, 21, {.n_threads = 2});
  const Model f32 = Model::random(cfg, 21, {.device = Device::cuda(), .dtype = DType::F32});
  const Model bf = Model::random(cfg, 21, {.device = Device::cuda(), .dtype = DType::BF16});
  KVCache probe(bf, {.num_blocks = 8, .precision = KVPrecision::Int8});
  CHECK(probe.precision() == KVPrecision::Int8);
  CHECK(probe.bytes_per_token() == 2u * 3 * 2 * (64 + 4));

  const auto cpu8 = test::kv_logit_rows(cpu, kP, kN, KVPrecision::Int8);
  // fp32 on the GPU: only summation order differs from the CPU, so a K/V value moves by at
  // most one int8 step where it sits on a rounding boundary.
  const double e32 = rel_err(test::kv_logit_rows(f32, kP, kN, KVPrecision::Int8), cpu8);
  INFO("GPU fp32 int8 vs CPU int8: " << e32);
  CHECK(e32 < 1e-2);
  // bf16: int8 K/V against bf16 K/V on the same GPU model (the CPU test's 3% bound: the int8
  // error is ~1% of the largest logit through 3 random layers), and against the CPU's int8.
  const auto bf8 = test::kv_logit_rows(bf, kP, kN, KVPrecision::Int8),
             bf16 = test::kv_logit_rows(bf, kP, kN, KVPrecision::Model);
  const double e_q = rel_err(bf8, bf16), e_c = rel_err(bf8, cpu8);
  INFO("GPU bf16 int8 vs bf16 K/V: " << e_q << ", vs CPU int8: " << e_c);
  CHECK(e_q > 0.0);  // the int8 path really ran
  CHECK(e_q < 3e-2);
  CHECK(e_c < 3e-2);

  // SmolLM2's head layout (3 KV heads) with an odd block size and block count: a layer's
  // scale arrays (13 x 5 x 3 floats = 780 bytes) are not a multiple of 16 bytes, and every
  // array after them must still start aligned.
  {
    // (vocabulary 320: kInt8Next holds token 300)
    const ModelConfig c3 = test::model_shape(2, 576, 9, 3, 64, 512, 320, 512);
    const Model cpu3 = Model::random(c3, 22, {.n_threads = 2});
    const Model gpu3 = Model::random(c3, 22, {.device = Device::cuda(), .dtype = DType::BF16});
    const double e3 = rel_err(test::kv_logit_rows(gpu3, kP, kN, KVPrecision::Int8, 13, 5),
                              test::kv_logit_rows(cpu3, kP, kN, KVPrecision::Int8, 13, 5));
    INFO("GPU bf16 int8 vs CPU int8, block size 5, 13 blocks: " << e3);
    CHECK(e3 < 3e-2);
  }

  // Batched = separate, fork and swap out / in on the GPU's int8 pool (the copied blocks
  // hold the same int8 values and scales: identical logits).
  test::check_int8_cache_ops(bf, 2e-2f, 0.0f, 2e-2f);
}

#endif  // VIREO_WITH_CUDA
