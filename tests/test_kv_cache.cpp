// KVCache and CpuKVStorage tests: the storage's block copy / host round trip and layout,
// cache sizing from a byte budget (expected sizes from the footprint formula
// 2 * layers * kv_heads * head_dim * bytes), swap out/in restoring the exact bytes, and,
// through Model::forward on a small random model, that prefix reuse and fork + copy on write
// give the same logits as computing every sequence from scratch.
#include <catch2/catch.hpp>

#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kv/kv_cache_impl.hpp"
#include "test_util.hpp"
#include "model/access.hpp"
#include "vireo/batch.hpp"
#include "vireo/error.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/model.hpp"

using vireo::DType;
using vireo::Error;
using vireo::ErrorCode;
using vireo::KVCache;
using vireo::KVCacheOptions;
using vireo::Model;
using vireo::ModelConfig;
using vireo::SeqId;
using vireo::Token;
using vireo::detail::CpuKVStorage;
using vireo::detail::KVGeometry;

namespace {

KVGeometry small_geometry() {
  KVGeometry g;
  g.n_layers = 3;
  g.n_kv_heads = 2;
  g.head_dim = 4;
  g.block_size = 5;
  g.num_blocks = 6;
  g.dtype = DType::F32;
  return g;
}

// A distinct value for every element of the pool: layer, K/V, block, element.
float pattern(int layer, int kv, std::int64_t block, std::size_t e) {
  return float(layer * 100000 + kv * 50000 + block * 1000) + float(e);
}

void fill(CpuKVStorage& s) {
  const auto& g = s.geometry();
  for (int l = 0; l < g.n_layers; ++l)
    for (std::int64_t b = 0; b < g.num_blocks; ++b)
      for (std::size_t e = 0; e < g.block_elems(); ++e) {
        s.k(l)[std::size_t(b) * g.block_elems() + e] = pattern(l, 0, b, e);
        s.v(l)[std::size_t(b) * g.block_elems() + e] = pattern(l, 1, b, e);
      }
}

// The smallest model with SmolLM2-135M's KV shape (30 layers, 3 KV heads of 64, 9 query
// heads): the KV footprint depends on nothing else, so d_model / d_ff / vocab stay tiny.
ModelConfig smol_kv_shape() { return vireo::test::model_shape(30, 32, 9, 3, 64, 32, 64, 256); }

ModelConfig tiny_config() { return vireo::test::model_shape(2, 32, 4, 2, 8, 64, 97, 128); }

vireo::ModelOptions one_thread() {
  vireo::ModelOptions o;
  o.n_threads = 1;
  return o;
}

}  // namespace

TEST_CASE("CpuKVStorage: copy, read and write blocks", "[cpu][kv]") {
  const KVGeometry g = small_geometry();
  CpuKVStorage s(g);
  REQUIRE(g.bytes_per_block() == std::size_t(2 * 3 * 2 * 4 * 4 * 5));
  fill(s);

  // Host layout: [layer][K | V][block_elems].
  std::vector<float> host(g.bytes_per_block() / sizeof(float), -1.0f);
  s.read_block(4, host.data());
  const std::size_t n = g.block_elems();
  for (int l = 0; l < g.n_layers; ++l)
    for (std::size_t e = 0; e < n; ++e) {
      REQUIRE(host[std::size_t(l) * 2 * n + e] == pattern(l, 0, 4, e));
      REQUIRE(host[std::size_t(l) * 2 * n + n + e] == pattern(l, 1, 4, e));
    }

  // Write it into block 1; neighbours untouched.
  s.write_block(1, host.data());
  for (int l = 0; l < g.n_layers; ++l)
    for (std::size_t e = 0; e < n; ++e) {
      REQUIRE(s.k(l)[1 * n + e] == pattern(l, 0, 4, e));
      REQUIRE(s.v(l)[1 * n + e] == pattern(l, 1, 4, e));
      REQUIRE(s.k(l)[0 * n + e] == pattern(l, 0, 0, e));
      REQUIRE(s.v(l)[2 * n + e] == pattern(l, 1, 2, e));
    }

  // copy_block(2 -> 5) copies every layer's K and V.
  s.copy_block(2, 5);
  std::vector<float> a(host.size()), b(host.size());
  s.read_block(2, a.data());
  s.read_block(5, b.data());
  CHECK(a == b);
  CHECK(s.k(2)[5 * n + 3] == pattern(2, 0, 2, 3));
  CHECK(s.k(2)[4 * n + 3] == pattern(2, 0, 4, 3));

  CHECK_THROWS_AS(s.copy_block(6, 0), Error);
  try {
    s.read_block(-1, host.data());
    FAIL("read_block(-1) should throw");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::InvalidArgument);
    CHECK(std::string(e.what()).find("block -1 outside [0, 6)") != std::string::npos);
  }
  CHECK_THROWS_AS(s.write_block(6, host.data()), Error);

  auto mem = s.alloc_host(g.bytes_per_block());
  REQUIRE(mem);
  std::memcpy(mem.get(), host.data(), g.bytes_per_block());

  KVGeometry h = g;
  h.dtype = DType::F16;
  try {
    CpuKVStorage bad(h);
    FAIL("f16 CPU storage should throw");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::Unsupported);
  }
  KVGeometry huge = g;
  huge.num_blocks = std::int64_t(1) << 40;  // 2^40 blocks x 160 bytes: far past any host
  try {
    CpuKVStorage bad(huge);
    FAIL("a pool past memory should throw");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::OutOfMemory);
  }
}

TEST_CASE("KVCache: sizing from a budget and bytes per token", "[cpu][kv]") {
  const ModelConfig cfg = smol_kv_shape();
  Model model = Model::random(cfg, 1, one_thread());
  REQUIRE(model.kv_dtype() == DType::F32);
  const std::size_t bpt = 2 * std::size_t(cfg.n_layers) * std::size_t(cfg.n_kv_heads) * std::size_t(cfg.head_dim) * 4;
  REQUIRE(bpt == 46080);

  KVCacheOptions o;
  o.memory_budget_bytes = 10 * 16 * bpt + 123;  // 10 blocks and change
  KVCache cache(model, o);
  CHECK(cache.bytes_per_token() == bpt);
  CHECK(cache.bytes_per_block() == 16 * bpt);
  CHECK(cache.block_size() == 16);
  CHECK(cache.num_blocks() == 10);
  CHECK(cache.capacity_tokens() == 160);
  auto st = cache.stats();
  CHECK(st.blocks_total == 10);
  CHECK(st.blocks_free == 10);
  CHECK(st.bytes_total == 10 * 16 * bpt);
  CHECK(st.bytes_used == 0);
  CHECK(cache.available_blocks() == 10);

  o.block_size = 4;
  o.num_blocks = 3;  // overrides the budget
  KVCache exact(model, o);
  CHECK(exact.num_blocks() == 3);
  CHECK(exact.bytes_per_block() == 4 * bpt);

  o.num_blocks = 0;
  o.memory_budget_bytes = 4 * bpt - 1;
  try {
    KVCache too_small(model, o);
    FAIL("a budget below one block should throw");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::InvalidArgument);
    const std::string msg = e.what();
    CHECK(msg.find(std::to_string(4 * bpt - 1)) != std::string::npos);
    CHECK(msg.find(std::to_string(4 * bpt)) != std::string::npos);
  }
  o.memory_budget_bytes = 4 * bpt;
  CHECK(KVCache(model, o).num_blocks() == 1);
  o.block_size = 0;
  CHECK_THROWS_AS(KVCache(model, o), Error);

  // Moves keep the cache.
  KVCache moved = std::move(cache);
  CHECK(moved.num_blocks() == 10);
  CHECK(vireo::detail::Access::cache(moved).model_identity == &vireo::detail::Access::model(model));
}

TEST_CASE("KVCache: swap out and in restores the exact bytes", "[cpu][kv]") {
  Model model = Model::random(tiny_config(), 2, one_thread());
  KVCacheOptions o;
  o.num_blocks = 4;
  o.block_size = 4;
  KVCache cache(model, o);
  auto& kvi = vireo::detail::Access::cache(cache);
  auto& storage = *kvi.storage;
  const std::size_t bpb = cache.bytes_per_block();

  // A sequence of 7 tokens (2 blocks) with recognisable K/V bytes.
  SeqId a = cache.add_sequence();
  std::vector<std::int64_t> slots;
  std::vector<vireo::detail::BlockManager::Copy> copies;
  kvi.blocks->append(a, std::vector<Token>{1, 2, 3, 4, 5, 6, 7}, slots, copies);
  std::vector<std::vector<unsigned char>> saved;
  std::mt19937 rng(3);
  for (std::int32_t b : kvi.blocks->block_table(a)) {
    std::vector<float> f(bpb / sizeof(float));
    for (auto& x : f) x = std::uniform_real_distribution<float>(-1, 1)(rng);
    storage.write_block(b, f.data());
    saved.emplace_back(bpb);
    std::memcpy(saved.back().data(), f.data(), bpb);
  }

  cache.swap_out(a);
  CHECK(cache.is_swapped(a));
  CHECK(cache.length(a) == 7);
  CHECK(cache.available_blocks() == 4);
  CHECK(cache.stats().swapped_sequences == 1);
  CHECK(kvi.swapped.count(a) == 1);
  CHECK_THROWS_AS(cache.swap_out(a), Error);
  try {
    cache.fork(a);
    FAIL("fork of a swapped sequence should throw");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("sequence " + std::to_string(a) + " is swapped out") != std::string::npos);
  }

  // Another sequence takes 3 blocks and scribbles over them: swap_in cannot fit.
  SeqId b = cache.add_sequence();
  slots.clear();
  kvi.blocks->append(b, std::vector<Token>(12, 9), slots, copies);
  std::vector<float> junk(bpb / sizeof(float), 42.0f);
  for (std::int32_t blk : kvi.blocks->block_table(b)) storage.write_block(blk, junk.data());
  try {
    cache.swap_in(a);
    FAIL("swap_in into a full cache should throw");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::CacheFull);
  }
  CHECK(cache.is_swapped(a));
  CHECK(kvi.swapped.count(a) == 1);

  cache.truncate(b, 4);  // frees 2 blocks that hold junk
  cache.swap_in(a);
  CHECK(!cache.is_swapped(a));
  CHECK(kvi.swapped.empty());
  auto table = kvi.blocks->block_table(a);
  REQUIRE(table.size() == saved.size());
  std::vector<unsigned char> back(bpb);
  for (std::size_t i = 0; i < table.size(); ++i) {
    storage.read_block(table[i], back.data());
    CHECK(back == saved[i]);
  }
  CHECK(std::vector<Token>(cache.tokens(a).begin(), cache.tokens(a).end()) == std::vector<Token>{1, 2, 3, 4, 5, 6, 7});

  // Removing a swapped sequence drops its host copy.
  cache.swap_out(b);
  CHECK(kvi.swapped.count(b) == 1);
  cache.remove(b);
  CHECK(kvi.swapped.empty());
  CHECK(!cache.contains(b));
  CHECK(cache.sequences() == std::vector<SeqId>{a});
  kvi.blocks->check_invariants();
}

TEST_CASE("KVCache: prefix reuse and fork give the logits of a fresh computation", "[cpu][kv]") {
  const ModelConfig cfg = tiny_config();
  Model model = Model::random(cfg, 5, one_thread());
  KVCacheOptions o;
  o.num_blocks = 32;
  o.block_size = 4;
  KVCache cache(model, o);
  std::vector<Token> prompt(19);
  for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = Token((i * 37 + 11) % std::size_t(cfg.vocab_size));

  auto last_logits = [&](SeqId s, std::span<const Token> toks) {
    vireo::Batch batch;
    batch.add(s, toks, vireo::Last);
    auto out = model.forward(batch, cache);
    REQUIRE(out.rows() == 1);
    return std::vector<float>(out.row(0).begin(), out.row(0).end());
  };
  auto close = [](const std::vector<float>& x, const std::vector<float>& y) {
    REQUIRE(x.size() == y.size());
    for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(x[i] == Approx(y[i]).margin(1e-4).epsilon(1e-4));
  };

  SeqId a = cache.add_sequence();
  const auto fresh = last_logits(a, prompt);
  cache.remove(a);
  CHECK(cache.stats().blocks_cached == 4);

  std::int64_t reused = 0;
  SeqId b = cache.add_sequence(prompt, &reused);
  CHECK(reused == 16);
  const auto again = last_logits(b, std::span<const Token>(prompt).subspan(std::size_t(reused)));
  close(again, fresh);
  CHECK(cache.stats().prefix_hit_tokens == 16);

  // Fork b (19 tokens: the last block is shared and partial) and continue both differently;
  // each must match a sequence computed from scratch without sharing.
  SeqId c = cache.fork(b);
  const auto cb = last_logits(b, std::vector<Token>{5, 6});
  const auto cc = last_logits(c, std::vector<Token>{7});
  CHECK(cache.stats().cow_copies == 1);
  KVCacheOptions off = o;
  off.prefix_caching = false;
  KVCache plain(model, off);
  auto scratch = [&](std::vector<Token> extra) {
    std::vector<Token> all = prompt;
    all.insert(all.end(), extra.begin(), extra.end());
    SeqId s = plain.add_sequence();
    vireo::Batch batch;
    batch.add(s, all, vireo::Last);
    auto out = model.forward(batch, plain);
    return std::vector<float>(out.row(0).begin(), out.row(0).end());
  };
  close(cb, scratch({5, 6}));
  close(cc, scratch({7}));

  // Truncate c back into the shared prefix and take another branch.
  cache.truncate(c, 10);
  const auto ct = last_logits(c, std::vector<Token>{3});
  std::vector<Token> branch(prompt.begin(), prompt.begin() + 10);
  branch.push_back(3);
  SeqId p = plain.add_sequence();
  vireo::Batch batch;
  batch.add(p, branch, vireo::Last);
  auto out = model.forward(batch, plain);
  close(ct, std::vector<float>(out.row(0).begin(), out.row(0).end()));
  vireo::detail::Access::cache(cache).blocks->check_invariants();
}
