// Token trees (Batch::add_tree) and KVCache::compact: a tree forward equals the separate
// forwards of each root-to-leaf path, and a cache compacted to one path equals a cache that
// only ever saw that path (its next step's logits, its tokens, prefix reuse of its blocks).
// Bad trees and bad compactions are refused with the cache unchanged.
#include <catch2/catch.hpp>

#include "kv/kv_cache_impl.hpp"
#include "test_util.hpp"
#include "model/access.hpp"
#include "vireo/vireo.hpp"

using namespace vireo;

namespace {

// root 0; 1 and 2 under it; 3, 4 under 1; 5 under 2; 6 under 5.
const std::vector<Token> kTree = {11, 22, 33, 44, 55, 66, 77};
const std::vector<std::int32_t> kParents = {-1, 0, 0, 1, 1, 2, 5};
const std::vector<std::vector<std::int32_t>> kPaths = {{0, 1, 3}, {0, 1, 4}, {0, 2, 5, 6}};

std::vector<std::vector<float>> rows(const Logits& lg) {
  std::vector<std::vector<float>> out;
  for (std::size_t r = 0; r < lg.rows(); ++r) out.emplace_back(lg.row(r).begin(), lg.row(r).end());
  return out;
}

/// Logits of every token of prefix + path, fed as one chain to a fresh cache.
std::vector<std::vector<float>> chain_logits(const Model& m, const KVCacheOptions& o, std::span<const Token> prefix,
                                             std::span<const Token> path) {
  KVCache c(m, o);
  const SeqId s = c.add_sequence();
  std::vector<Token> all(prefix.begin(), prefix.end());
  all.insert(all.end(), path.begin(), path.end());
  Batch b;
  b.add(s, all, All);
  return rows(m.forward(b, c));
}

void check_tree_equals_paths(const Model& m, const KVCacheOptions& o, std::span<const Token> prefix, double tol) {
  KVCache c(m, o);
  const SeqId s = c.add_sequence();
  Batch b;
  b.add(s, prefix, Last);
  (void)m.forward(b, c);
  b.clear();
  b.add_tree(s, kTree, kParents, All);
  const auto tree = rows(m.forward(b, c));
  REQUIRE(tree.size() == kTree.size());
  CHECK(c.length(s) == std::int64_t(prefix.size() + kTree.size()));
  for (const auto& path : kPaths) {
    std::vector<Token> toks;
    for (auto i : path) toks.push_back(kTree[std::size_t(i)]);
    const auto ref = chain_logits(m, o, prefix, toks);
    for (std::size_t k = 0; k < path.size(); ++k) {
      INFO("path node " << path[k] << " at depth " << k);
      CHECK(test::max_abs_diff(tree[std::size_t(path[k])], ref[prefix.size() + k]) < tol);
    }
  }
}

void check_compact(const Model& m, const KVCacheOptions& o, std::span<const Token> prefix, double tol) {
  for (const auto& path : kPaths) {
    KVCache c(m, o);
    const SeqId s = c.add_sequence();
    Batch b;
    b.add(s, prefix, Last);
    (void)m.forward(b, c);
    b.clear();
    b.add_tree(s, kTree, kParents, All);
    (void)m.forward(b, c);
    c.compact(s, std::int64_t(prefix.size()), path);
    std::vector<Token> want(prefix.begin(), prefix.end());
    for (auto i : path) want.push_back(kTree[std::size_t(i)]);
    CHECK(std::vector<Token>(c.tokens(s).begin(), c.tokens(s).end()) == want);
    vireo::detail::Access::cache(c).blocks->check_invariants();
    // The next steps: the compacted cache against a cache that saw prefix + path only.
    KVCache r(m, o);
    const SeqId rs = r.add_sequence();
    b.clear();
    b.add(rs, want, Last);
    (void)m.forward(b, r);
    for (Token next : {Token(5), Token(9)}) {
      Batch bc, br;
      bc.add(s, next, true);
      br.add(rs, next, true);
      const auto got = rows(m.forward(bc, c)), ref = rows(m.forward(br, r));
      INFO("path of " << path.size() << " nodes, next token " << next);
      CHECK(test::max_abs_diff(got[0], ref[0]) < tol);
    }
  }
}

ModelConfig tiny() { return test::model_shape(2, 64, 4, 2, 16, 96, 101, 512); }

}  // namespace

TEST_CASE("a token tree's logits equal each root-to-leaf path's own forward", "[cpu][tree]") {
  const Model m = Model::random(tiny(), 3, {.n_threads = 2});
  const std::vector<Token> prefix = {1, 2, 3, 4, 5, 6};
  for (int bs : {4, 16}) {
    INFO("block size " << bs);
    check_tree_equals_paths(m, {.num_blocks = 32, .block_size = bs}, prefix, 1e-5);
  }
  // A long prefix: keys spread over several attention chunks.
  std::vector<Token> long_prefix;
  for (int i = 0; i < 300; ++i) long_prefix.push_back(Token(1 + i % 97));
  check_tree_equals_paths(m, {.num_blocks = 64, .block_size = 16}, long_prefix, 1e-5);
}

TEST_CASE("compacting a tree to one path equals having seen only that path", "[cpu][tree]") {
  const Model m = Model::random(tiny(), 4, {.n_threads = 2});
  const std::vector<Token> prefix = {7, 8, 9, 10, 11};
  for (int bs : {4, 16}) {
    INFO("block size " << bs);
    check_compact(m, {.num_blocks = 32, .block_size = bs}, prefix, 1e-5);
  }
  INFO("int8 K/V");
  check_compact(m, {.num_blocks = 32, .block_size = 4, .precision = KVPrecision::Int8}, prefix, 1e-5);
}

TEST_CASE("a compacted sequence's full blocks serve prefix reuse with the kept tokens", "[cpu][tree]") {
  const Model m = Model::random(tiny(), 5, {.n_threads = 2});
  const KVCacheOptions o{.num_blocks = 32, .block_size = 4, .prefix_caching = true};
  KVCache c(m, o);
  const SeqId s = c.add_sequence();
  const std::vector<Token> prefix = {7, 8, 9, 10, 11, 12};
  Batch b;
  b.add(s, prefix, Last);
  (void)m.forward(b, c);
  b.clear();
  b.add_tree(s, kTree, kParents, All);
  (void)m.forward(b, c);
  c.compact(s, std::int64_t(prefix.size()), kPaths[2]);  // 6 + 4 = 10 tokens: two full blocks
  std::vector<Token> seen(c.tokens(s).begin(), c.tokens(s).end());
  seen.push_back(3);
  std::int64_t reused = 0;
  const SeqId s2 = c.add_sequence(seen, &reused);
  CHECK(reused == 8);
  b.clear();
  b.add(s2, std::span<const Token>(seen).subspan(std::size_t(reused)), Last);
  const auto got = rows(m.forward(b, c));
  const auto ref = chain_logits(m, {.num_blocks = 32, .block_size = 4}, seen, {});
  CHECK(test::max_abs_diff(got[0], ref.back()) < 1e-5);
  vireo::detail::Access::cache(c).blocks->check_invariants();
}

TEST_CASE("bad token trees and compactions are refused with the cache unchanged", "[cpu][tree]") {
  const Model m = Model::random(tiny(), 6, {.n_threads = 1});
  KVCache c(m, {.num_blocks = 16, .block_size = 4});
  const SeqId s = c.add_sequence();
  Batch b;
  b.add(s, std::vector<Token>{1, 2, 3}, Last);
  (void)m.forward(b, c);
  auto refused = [&](Batch& bad, const char* what) {
    INFO(what);
    CHECK_THROWS_WITH(m.forward(bad, c), Catch::Contains(what));
    CHECK(c.length(s) == 3);
  };
  Batch self_parent;
  const std::vector<Token> t2 = {4, 5};
  const std::vector<std::int32_t> p_self = {-1, 1};
  self_parent.add_tree(s, t2, p_self);
  refused(self_parent, "invalid parent");
  Batch sizes;
  const std::vector<std::int32_t> p_short = {-1};
  sizes.add_tree(s, t2, p_short);
  refused(sizes, "differ in length");
  Batch mixed;
  mixed.add(s, Token(9), true);
  const std::vector<std::int32_t> p_ok = {-1, 0};
  mixed.add_tree(s, t2, p_ok);
  refused(mixed, "mixes a token tree");
  Batch big;
  std::vector<Token> t65(65, 4);
  std::vector<std::int32_t> p65(65, -1);
  big.add_tree(s, t65, p65);
  refused(big, "more than 64 tokens");

  b.clear();
  b.add_tree(s, t2, p_ok);
  (void)m.forward(b, c);
  const std::vector<Token> before(c.tokens(s).begin(), c.tokens(s).end());
  const std::vector<std::int32_t> not_increasing = {1, 0}, out_of_range = {0, 2};
  CHECK_THROWS_WITH(c.compact(s, 3, not_increasing), Catch::Contains("increasing"));
  CHECK_THROWS_WITH(c.compact(s, 3, out_of_range), Catch::Contains("increasing and within"));
  CHECK_THROWS_WITH(c.compact(s, 9, p_ok), Catch::Contains("out of range"));
  CHECK(std::vector<Token>(c.tokens(s).begin(), c.tokens(s).end()) == before);
  const std::vector<std::int32_t> keep_second = {1};
  c.compact(s, 3, keep_second);
  CHECK(c.length(s) == 4);
  CHECK(c.tokens(s).back() == 5);
}

TEST_CASE("SmolLM2: a token tree's logits equal each path's own forward", "[golden][tree]") {
  const Model m = Model::load(test::require_model(), {.n_threads = 2});
  const auto prefix = m.tokenizer().encode("The capital of France is");
  // Fp32 on both sides, the same keys; the path forwards attend in another chunking only
  // when they span chunks (they do not here): differences are summation-order noise.
  check_tree_equals_paths(m, {.num_blocks = 16, .block_size = 16}, prefix, 1e-3);
  check_compact(m, {.num_blocks = 16, .block_size = 16}, prefix, 1e-3);
}
