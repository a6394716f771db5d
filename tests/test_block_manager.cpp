// BlockManager tests: each operation on small pools whose expected tables are worked out by
// hand (CoW, prefix reuse, LRU eviction, CacheFull atomicity, swap), then a randomized
// property test that drives thousands of operations against a reference model written here:
// per sequence the expected tokens, and a simulated K/V store (per slot, a hash of the token
// and its whole prefix, as real K/V depends on both) to which the test applies the reported
// slots and copies exactly as a backend would, so every sequence's blocks must read back its
// own tokens behind its own prefix.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "kv/block_manager.hpp"
#include "vireo/error.hpp"

using vireo::Error;
using vireo::ErrorCode;
using vireo::SeqId;
using vireo::Token;
using vireo::detail::BlockManager;

namespace {

std::vector<Token> iota_tokens(int n, Token start) {
  std::vector<Token> t(static_cast<std::size_t>(n));
  std::iota(t.begin(), t.end(), start);
  return t;
}

struct AppendResult {
  std::vector<std::int64_t> slots;
  std::vector<BlockManager::Copy> copies;
};

AppendResult append(BlockManager& bm, SeqId s, const std::vector<Token>& toks) {
  AppendResult r;
  bm.append(s, toks, r.slots, r.copies);
  return r;
}

std::vector<std::int32_t> table(const BlockManager& bm, SeqId s) {
  auto t = bm.block_table(s);
  return {t.begin(), t.end()};
}

std::vector<Token> tokens(const BlockManager& bm, SeqId s) {
  auto t = bm.tokens(s);
  return {t.begin(), t.end()};
}

template <class F>
ErrorCode code_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  FAIL("expected a vireo::Error");
  return ErrorCode::Internal;
}

template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("expected a vireo::Error");
  return {};
}

// Everything observable about a manager, to compare before/after a failing call.
struct Snapshot {
  std::map<SeqId, std::tuple<std::vector<Token>, std::vector<std::int32_t>, bool>> seqs;
  std::vector<std::int64_t> stats;
  std::int64_t available = 0;
  bool operator==(const Snapshot&) const = default;
};

Snapshot snapshot(const BlockManager& bm) {
  Snapshot s;
  for (SeqId id : bm.sequences()) s.seqs[id] = {tokens(bm, id), table(bm, id), bm.is_swapped(id)};
  auto st = bm.stats();
  s.stats = {st.blocks_total,   st.blocks_used,       st.blocks_cached,       st.blocks_free,
             st.tokens_stored,  st.sequences,         st.swapped_sequences,   st.prefix_query_tokens,
             st.prefix_hit_tokens, st.evictions,      st.cow_copies};
  s.available = bm.available_blocks();
  return s;
}

}  // namespace

TEST_CASE("block manager: append fills blocks in order and reports slots", "[cpu][kv]") {
  BlockManager bm(8, 4, true);
  SeqId s = bm.add_sequence();
  CHECK(bm.length(s) == 0);
  CHECK(bm.blocks_needed(s, 0) == 0);
  CHECK(bm.blocks_needed(s, 1) == 1);
  CHECK(bm.blocks_needed(s, 4) == 1);
  CHECK(bm.blocks_needed(s, 5) == 2);
  auto r = append(bm, s, iota_tokens(6, 100));
  CHECK(r.copies.empty());
  // Blocks are handed out 0, 1, ...: slot = block * 4 + offset.
  CHECK(table(bm, s) == std::vector<std::int32_t>{0, 1});
  CHECK(r.slots == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5});
  CHECK(tokens(bm, s) == iota_tokens(6, 100));
  CHECK(bm.blocks_needed(s, 2) == 0);  // the private partial block has 2 free slots
  CHECK(bm.blocks_needed(s, 3) == 1);
  r = append(bm, s, {7, 8, 9});
  CHECK(r.slots == std::vector<std::int64_t>{6, 7, 8});
  CHECK(table(bm, s) == std::vector<std::int32_t>{0, 1, 2});
  auto st = bm.stats();
  CHECK(st.blocks_used == 3);
  CHECK(st.blocks_free == 5);
  CHECK(st.tokens_stored == 9);
  CHECK(st.waste() == Approx(double(3 * 4 - 9) / double(8 * 4)));
  bm.check_invariants();
}

TEST_CASE("block manager: fork shares blocks and copies a shared block only when written", "[cpu][kv]") {
  BlockManager bm(8, 4, true);
  SeqId a = bm.add_sequence();
  append(bm, a, iota_tokens(6, 0));  // blocks 0 (full), 1 (2 of 4)
  SeqId b = bm.fork(a);
  CHECK(table(bm, b) == table(bm, a));
  CHECK(tokens(bm, b) == tokens(bm, a));
  CHECK(bm.stats().blocks_used == 2);
  CHECK(bm.stats().tokens_stored == 6);
  bm.check_invariants();

  // Writing into the shared partial block 1 needs a private copy (block 2).
  CHECK(bm.blocks_needed(b, 1) == 1);
  auto r = append(bm, b, {50});
  REQUIRE(r.copies.size() == 1);
  CHECK(r.copies[0].src == 1);
  CHECK(r.copies[0].dst == 2);
  CHECK(r.slots == std::vector<std::int64_t>{2 * 4 + 2});
  CHECK(table(bm, b) == std::vector<std::int32_t>{0, 2});
  CHECK(table(bm, a) == std::vector<std::int32_t>{0, 1});  // a keeps its block untouched
  CHECK(bm.stats().cow_copies == 1);
  bm.check_invariants();

  // a is now the only user of block 1: it writes in place, no copy.
  CHECK(bm.blocks_needed(a, 2) == 0);
  r = append(bm, a, {60, 61});
  CHECK(r.copies.empty());
  CHECK(r.slots == std::vector<std::int64_t>{1 * 4 + 2, 1 * 4 + 3});
  // Block 0 stays shared; appending past it never copies it.
  CHECK(table(bm, a)[0] == table(bm, b)[0]);
  CHECK(bm.stats().cow_copies == 1);

  // A fork at a block boundary: the new token goes into a new block, nothing is copied.
  SeqId c = bm.fork(a);  // a has 8 tokens = 2 full blocks
  r = append(bm, c, {70});
  CHECK(r.copies.empty());
  const auto tc = table(bm, c);
  REQUIRE(tc.size() == 3);
  CHECK(std::vector<std::int32_t>(tc.begin(), tc.begin() + 2) == table(bm, a));
  bm.check_invariants();
}

TEST_CASE("block manager: prefix reuse after a sequence is removed", "[cpu][kv]") {
  BlockManager bm(16, 4, true);
  const auto doc = iota_tokens(10, 1000);  // 2 full blocks + 2 tokens
  SeqId a = bm.add_sequence();
  append(bm, a, doc);
  const auto a_table = table(bm, a);
  bm.remove(a);
  auto st = bm.stats();
  CHECK(st.blocks_cached == 2);  // the two full blocks; the partial one went free
  CHECK(st.blocks_used == 0);
  CHECK(bm.available_blocks() == 16);

  std::int64_t reused = -1;
  SeqId b = bm.add_sequence(doc, &reused);
  CHECK(reused == 8);
  CHECK(table(bm, b) == std::vector<std::int32_t>(a_table.begin(), a_table.begin() + 2));
  CHECK(tokens(bm, b) == std::vector<Token>(doc.begin(), doc.begin() + 8));
  st = bm.stats();
  CHECK(st.blocks_cached == 0);
  CHECK(st.blocks_used == 2);
  CHECK(st.prefix_query_tokens == 10);
  CHECK(st.prefix_hit_tokens == 8);
  bm.check_invariants();

  // Exactly 8 tokens: at most (8-1)/4 = 1 block, one token is always left to compute.
  SeqId c = bm.add_sequence(std::vector<Token>(doc.begin(), doc.begin() + 8), &reused);
  CHECK(reused == 4);
  CHECK(table(bm, c) == std::vector<std::int32_t>{a_table[0]});
  // A prompt that differs in its second block reuses only the first.
  auto other = doc;
  other[5] = -7;
  SeqId d = bm.add_sequence(other, &reused);
  CHECK(reused == 4);
  // Same second block behind a different first block: no hit (hashes chain the prefix).
  auto shifted = doc;
  shifted[0] = 99999;
  SeqId e = bm.add_sequence(shifted, &reused);
  CHECK(reused == 0);
  CHECK(bm.length(e) == 0);
  // Short prompts reuse nothing.
  SeqId f = bm.add_sequence(std::vector<Token>(doc.begin(), doc.begin() + 4), &reused);
  CHECK(reused == 0);
  SeqId g = bm.add_sequence({}, &reused);
  CHECK(reused == 0);
  st = bm.stats();
  CHECK(st.prefix_query_tokens == 10 + 8 + 10 + 10 + 4 + 0);
  CHECK(st.prefix_hit_tokens == 8 + 4 + 4);
  CHECK(st.hit_rate() == Approx(16.0 / 42.0));
  // The first block is now used by b, c and d.
  CHECK(st.blocks_used == 2);
  for (SeqId s : {b, c, d, e, f, g}) bm.remove(s);
  bm.check_invariants();
}

TEST_CASE("block manager: blocks filled by a live sequence are found by a new prompt", "[cpu][kv]") {
  BlockManager bm(8, 4, true);
  const auto doc = iota_tokens(9, 5);
  SeqId a = bm.add_sequence();
  append(bm, a, doc);
  std::int64_t reused = 0;
  SeqId b = bm.add_sequence(doc, &reused);
  CHECK(reused == 8);
  CHECK(table(bm, b) == std::vector<std::int32_t>{table(bm, a)[0], table(bm, a)[1]});
  // b continues with its own token: block 2 of a is not shared, b gets a fresh block.
  auto r = append(bm, b, {doc[8]});
  CHECK(r.copies.empty());
  CHECK(table(bm, b)[2] != table(bm, a)[2]);
  bm.check_invariants();
}

TEST_CASE("block manager: cached blocks are evicted least recently used first", "[cpu][kv]") {
  BlockManager bm(4, 2, true);
  const std::vector<Token> x = {1, 2, 3, 4}, y = {5, 6, 7, 8};
  SeqId a = bm.add_sequence();
  append(bm, a, x);  // blocks 0, 1
  SeqId b = bm.add_sequence();
  append(bm, b, y);  // blocks 2, 3
  bm.remove(a);      // LRU: 1, 0 (a tail first)
  bm.remove(b);      // LRU: 1, 0, 3, 2
  CHECK(bm.stats().blocks_cached == 4);
  CHECK(bm.available_blocks() == 4);

  // No free block left: a new block evicts the LRU front, x's second block (1).
  SeqId c = bm.add_sequence();
  append(bm, c, {40});
  CHECK(table(bm, c) == std::vector<std::int32_t>{1});
  CHECK(bm.stats().evictions == 1);
  std::int64_t reused = 0;
  // x's first block is still there, its second is gone.
  SeqId d = bm.add_sequence(std::vector<Token>{1, 2, 3, 4, 9}, &reused);
  CHECK(reused == 2);
  CHECK(table(bm, d) == std::vector<std::int32_t>{0});
  bm.remove(d);  // block 0 goes to the back of the LRU: 3, 2, 0
  append(bm, c, {41, 42});  // one more block: evicts 3 (y's second block)
  CHECK(table(bm, c) == std::vector<std::int32_t>{1, 3});
  SeqId e = bm.add_sequence(std::vector<Token>{5, 6, 7, 8, 9}, &reused);
  CHECK(reused == 2);  // y's first block (2) survived
  CHECK(table(bm, e) == std::vector<std::int32_t>{2});
  CHECK(bm.stats().evictions == 2);
  bm.check_invariants();
}

TEST_CASE("block manager: referenced blocks are never evicted", "[cpu][kv]") {
  BlockManager bm(3, 2, true);
  SeqId a = bm.add_sequence();
  append(bm, a, {1, 2, 3, 4});  // blocks 0, 1, both registered and referenced
  SeqId b = bm.add_sequence();
  append(bm, b, {5, 6});  // block 2
  bm.remove(b);           // block 2 cached
  CHECK(bm.available_blocks() == 1);
  SeqId c = bm.add_sequence();
  CHECK(code_of([&] { append(bm, c, {7, 8, 9}); }) == ErrorCode::CacheFull);
  append(bm, c, {7, 8});  // takes the cached block 2, not a's
  CHECK(table(bm, c) == std::vector<std::int32_t>{2});
  CHECK(table(bm, a) == std::vector<std::int32_t>{0, 1});
  CHECK(bm.stats().evictions == 1);
  CHECK(code_of([&] { append(bm, c, {1}); }) == ErrorCode::CacheFull);
  bm.check_invariants();
}

TEST_CASE("block manager: CacheFull names the numbers and changes nothing", "[cpu][kv]") {
  BlockManager bm(4, 4, true);
  SeqId a = bm.add_sequence();
  append(bm, a, iota_tokens(6, 0));
  SeqId b = bm.fork(a);
  SeqId c = bm.add_sequence();
  append(bm, c, iota_tokens(4, 50));
  bm.remove(c);  // one cached block
  const Snapshot before = snapshot(bm);
  // b: 1 copy + 3 new blocks for 14 more tokens (6 + 14 = 20 = 5 blocks) = 4 > 2 available.
  CHECK(bm.blocks_needed(b, 14) == 4);
  std::vector<std::int64_t> slots = {123};
  std::vector<BlockManager::Copy> copies;
  try {
    bm.append(b, iota_tokens(14, 9), slots, copies);
    FAIL("append should have thrown");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::CacheFull);
    const std::string msg = e.what();
    CHECK(msg.find("needed 4 blocks") != std::string::npos);
    CHECK(msg.find("2 available") != std::string::npos);
    CHECK(msg.find("pool of 4 blocks of 4 tokens") != std::string::npos);
  }
  CHECK(slots == std::vector<std::int64_t>{123});
  CHECK(copies.empty());
  CHECK(snapshot(bm) == before);
  bm.check_invariants();
  // The same call that fits works afterwards.
  CHECK(bm.blocks_needed(b, 6) == 2);
  append(bm, b, iota_tokens(6, 9));
  CHECK(bm.length(b) == 12);
  CHECK(bm.available_blocks() == 0);
  bm.check_invariants();
}

TEST_CASE("block manager: truncate drops blocks and unregisters a private partial block", "[cpu][kv]") {
  BlockManager bm(8, 4, true);
  SeqId a = bm.add_sequence();
  append(bm, a, iota_tokens(10, 0));  // blocks 0, 1 full (registered), 2 partial
  bm.truncate(a, 10);                 // no-op
  CHECK(table(bm, a).size() == 3);
  bm.truncate(a, 6);  // block 2 freed; block 1 becomes partial, a is its only user
  CHECK(table(bm, a) == std::vector<std::int32_t>{0, 1});
  CHECK(tokens(bm, a) == iota_tokens(6, 0));
  CHECK(bm.stats().blocks_free == 6);
  bm.check_invariants();
  // Block 1 was unregistered: writing into it happens in place, and the old prefix is gone.
  CHECK(bm.blocks_needed(a, 1) == 0);
  auto r = append(bm, a, {77});
  CHECK(r.copies.empty());
  CHECK(r.slots == std::vector<std::int64_t>{1 * 4 + 2});
  std::int64_t reused = 0;
  SeqId b = bm.add_sequence(iota_tokens(9, 0), &reused);
  CHECK(reused == 4);
  bm.check_invariants();

  // A shared block cut to partial stays registered; the writer copies it.
  SeqId c = bm.add_sequence();
  append(bm, c, iota_tokens(8, 200));
  SeqId d = bm.fork(c);
  bm.truncate(d, 5);
  CHECK(bm.blocks_needed(d, 1) == 1);
  r = append(bm, d, {1});
  REQUIRE(r.copies.size() == 1);
  CHECK(r.copies[0].src == table(bm, c)[1]);
  CHECK(table(bm, d)[1] == r.copies[0].dst);
  // c's second block still serves its prefix.
  SeqId e = bm.add_sequence(iota_tokens(9, 200), &reused);
  CHECK(reused == 8);
  bm.truncate(d, 0);
  CHECK(table(bm, d).empty());
  CHECK(code_of([&] { bm.truncate(d, 1); }) == ErrorCode::InvalidArgument);
  CHECK(code_of([&] { bm.truncate(c, -1); }) == ErrorCode::InvalidArgument);
  CHECK(message_of([&] { bm.truncate(c, 9); }).find("length 9 out of range [0, 8]") != std::string::npos);
  for (SeqId s : {a, b, c, d, e}) bm.remove(s);
  bm.check_invariants();
}

TEST_CASE("block manager: a hashed partial block left to one user is copied before a write", "[cpu][kv]") {
  BlockManager bm(8, 4, true);
  SeqId a = bm.add_sequence();
  append(bm, a, iota_tokens(8, 0));
  SeqId b = bm.fork(a);
  bm.truncate(b, 6);  // shared: block 1 stays registered
  bm.remove(a);       // b is now the only user of a registered, partially used block
  CHECK(bm.blocks_needed(b, 1) == 1);
  auto r = append(bm, b, {9});
  REQUIRE(r.copies.size() == 1);
  CHECK(bm.stats().blocks_cached == 1);  // the registered original stays for reuse
  std::int64_t reused = 0;
  SeqId c = bm.add_sequence(iota_tokens(9, 0), &reused);
  CHECK(reused == 8);
  bm.remove(c);
  bm.check_invariants();
}

TEST_CASE("block manager: rollback forgets blocks whose K/V were never written", "[cpu][kv]") {
  BlockManager bm(8, 4, true);
  SeqId a = bm.add_sequence();
  append(bm, a, iota_tokens(2, 0));
  append(bm, a, iota_tokens(8, 2));  // fills blocks 0, 1 and starts 2
  bm.rollback(a, 2);
  CHECK(tokens(bm, a) == iota_tokens(2, 0));
  auto st = bm.stats();
  CHECK(st.blocks_cached == 0);  // after truncate() block 1 would be cached
  CHECK(st.blocks_free == 7);
  std::int64_t reused = 0;
  bm.remove(a);
  SeqId b = bm.add_sequence(iota_tokens(10, 0), &reused);
  CHECK(reused == 0);
  bm.remove(b);
  bm.check_invariants();
}

TEST_CASE("block manager: prefix caching off frees blocks and reuses nothing", "[cpu][kv]") {
  BlockManager bm(4, 2, false);
  SeqId a = bm.add_sequence();
  append(bm, a, {1, 2, 3, 4});
  bm.remove(a);
  CHECK(bm.stats().blocks_free == 4);
  std::int64_t reused = -1;
  SeqId b = bm.add_sequence(std::vector<Token>{1, 2, 3, 4, 5}, &reused);
  CHECK(reused == 0);
  CHECK(bm.stats().prefix_query_tokens == 5);
  // Unshared full blocks are never registered, so a truncated sequence writes in place.
  append(bm, b, {1, 2, 3, 4});
  bm.truncate(b, 3);
  CHECK(append(bm, b, {9}).copies.empty());
  bm.check_invariants();
}

TEST_CASE("block manager: swap out and in", "[cpu][kv]") {
  BlockManager bm(4, 2, true);
  SeqId a = bm.add_sequence();
  append(bm, a, {1, 2, 3});
  SeqId b = bm.fork(a);
  bm.swap_out(a);
  CHECK(bm.is_swapped(a));
  CHECK(bm.block_table(a).empty());
  CHECK(tokens(bm, a) == std::vector<Token>{1, 2, 3});
  CHECK(bm.length(a) == 3);
  CHECK(bm.stats().swapped_sequences == 1);
  CHECK(bm.stats().blocks_used == 2);  // b still holds them
  bm.check_invariants();

  for (auto op : std::vector<std::function<void()>>{
           [&] { append(bm, a, {4}); }, [&] { bm.fork(a); }, [&] { bm.truncate(a, 1); },
           [&] { bm.blocks_needed(a, 1); }, [&] { bm.swap_out(a); }, [&] { bm.rollback(a, 0); }}) {
    CHECK(message_of(op).find("sequence " + std::to_string(a) + " is swapped out") != std::string::npos);
  }
  CHECK(code_of([&] { bm.swap_in(b); }) == ErrorCode::InvalidArgument);

  // Fill the pool so swap_in cannot get its 2 blocks.
  append(bm, b, {7, 8, 9});  // b alone now: fills block 1 in place, + block 2
  CHECK(bm.available_blocks() == 1);
  const Snapshot before = snapshot(bm);
  CHECK(code_of([&] { bm.swap_in(a); }) == ErrorCode::CacheFull);
  CHECK(snapshot(bm) == before);
  bm.truncate(b, 2);
  auto ids = bm.swap_in(a);
  CHECK(ids.size() == 2);
  CHECK(table(bm, a) == ids);
  CHECK(!bm.is_swapped(a));
  append(bm, a, {4});
  CHECK(tokens(bm, a) == std::vector<Token>{1, 2, 3, 4});
  // A swapped sequence can be removed.
  bm.swap_out(b);
  bm.remove(b);
  CHECK(!bm.contains(b));
  bm.check_invariants();
}

TEST_CASE("block manager: invalid arguments name the offending values", "[cpu][kv]") {
  CHECK(code_of([] { BlockManager(0, 16, true); }) == ErrorCode::InvalidArgument);
  CHECK(code_of([] { BlockManager(4, 0, true); }) == ErrorCode::InvalidArgument);
  BlockManager bm(4, 2, true);
  SeqId a = bm.add_sequence();
  CHECK(message_of([&] { bm.length(42); }).find("unknown sequence 42") != std::string::npos);
  CHECK(code_of([&] { bm.remove(42); }) == ErrorCode::InvalidArgument);
  CHECK(code_of([&] { bm.fork(-1); }) == ErrorCode::InvalidArgument);
  CHECK(code_of([&] { append(bm, 42, {1}); }) == ErrorCode::InvalidArgument);
  CHECK(code_of([&] { bm.swap_out(42); }) == ErrorCode::InvalidArgument);
  CHECK(code_of([&] { bm.tokens(42); }) == ErrorCode::InvalidArgument);
  CHECK(message_of([&] { bm.blocks_needed(a, -3); }).find("-3") != std::string::npos);
  CHECK(!bm.contains(42));
  bm.remove(a);
  CHECK(code_of([&] { bm.remove(a); }) == ErrorCode::InvalidArgument);
  // Ids are never reused.
  CHECK(bm.add_sequence() != a);
}

// ---- randomized property test ---------------------------------------------------------

namespace {

// The test's own model of the cache: expected tokens per sequence, and a simulated storage
// updated only through what append() reports. A slot holds what a token's K/V depends on:
// the token *and every token before it* (attention), as a hash of the sequence's prefix up
// to that token. So a block reused behind a different prefix (same tokens, other history)
// reads as wrong, which one token per slot would not show.
using Cell = std::uint64_t;  // 0 = never written

/// The cell of each position of `toks`: a hash chain over the tokens (never 0).
std::vector<Cell> prefix_cells(const std::vector<Token>& toks) {
  std::vector<Cell> out;
  Cell h = 0x9E3779B97F4A7C15ull;
  for (Token t : toks) {
    h ^= std::uint64_t(std::uint32_t(t)) + 0x632BE59BD9B4E019ull + (h << 6) + (h >> 2);
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
    out.push_back(h | 1);
  }
  return out;
}

struct Reference {
  struct Seq {
    std::vector<Token> tokens;
    bool swapped = false;
    std::vector<Cell> host;  // swapped contents, block-table order, block_size per block
  };
  std::map<SeqId, Seq> seqs;
  std::vector<Cell> store;  // [num_blocks * block_size]

  /// Records the K/V of `toks` appended to sequence `s` at `slots` (the sequence's tokens
  /// are extended by the caller afterwards).
  void write(SeqId s, const std::vector<Token>& toks, const std::vector<std::int64_t>& slots) {
    std::vector<Token> all = seqs[s].tokens;
    all.insert(all.end(), toks.begin(), toks.end());
    const std::vector<Cell> cells = prefix_cells(all);
    const std::size_t from = all.size() - toks.size();
    for (std::size_t i = 0; i < toks.size(); ++i) store[std::size_t(slots[i])] = cells[from + i];
  }
};

void check_against(const BlockManager& bm, const Reference& ref, int bs, std::int64_t nb) {
  bm.check_invariants();
  auto ids = bm.sequences();
  REQUIRE(ids.size() == ref.seqs.size());
  std::map<std::int32_t, std::vector<SeqId>> users;
  std::map<std::int32_t, std::int64_t> fill;
  std::int64_t swapped = 0;
  for (const auto& [id, rs] : ref.seqs) {
    REQUIRE(bm.contains(id));
    REQUIRE(bm.length(id) == std::int64_t(rs.tokens.size()));
    REQUIRE(tokens(bm, id) == rs.tokens);
    REQUIRE(bm.is_swapped(id) == rs.swapped);
    if (rs.swapped) {
      ++swapped;
      continue;
    }
    auto t = table(bm, id);
    REQUIRE(std::int64_t(t.size()) == (std::int64_t(rs.tokens.size()) + bs - 1) / bs);
    const std::vector<Cell> cells = prefix_cells(rs.tokens);
    for (std::size_t i = 0; i < rs.tokens.size(); ++i) {
      const std::int32_t b = t[i / bs];
      // The simulated K/V of every token of the sequence, computed behind this sequence's
      // own prefix, is where the table says.
      INFO("sequence " << id << " position " << i << " block " << b);
      REQUIRE(ref.store[std::size_t(b) * bs + i % bs] == cells[i]);
    }
    for (std::size_t i = 0; i < t.size(); ++i) {
      auto& u = users[t[i]];
      if (std::find(u.begin(), u.end(), id) == u.end()) u.push_back(id);
      fill[t[i]] = std::max<std::int64_t>(fill[t[i]], std::min<std::int64_t>(bs, std::int64_t(rs.tokens.size()) - std::int64_t(i) * bs));
    }
  }
  auto st = bm.stats();
  CHECK(st.sequences == std::int64_t(ref.seqs.size()));
  CHECK(st.swapped_sequences == swapped);
  REQUIRE(st.blocks_used == std::int64_t(users.size()));
  REQUIRE(st.blocks_used + st.blocks_cached + st.blocks_free == nb);
  REQUIRE(bm.available_blocks() == st.blocks_cached + st.blocks_free);
  std::int64_t stored = 0;
  for (const auto& [b, f] : fill) stored += f;
  REQUIRE(st.tokens_stored == stored);
}

void run_property_test(std::int64_t nb, int bs, bool prefix, std::uint32_t seed, int n_ops) {
  BlockManager bm(nb, bs, prefix);
  Reference ref;
  ref.store.assign(std::size_t(nb * bs), 0);
  std::mt19937 rng(seed);
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  // A few "documents" so prompts share prefixes; tokens from a tiny vocabulary so
  // independent sequences produce equal blocks too.
  std::vector<std::vector<Token>> docs(4);
  for (auto& d : docs)
    for (int i = 0; i < 40; ++i) d.push_back(uni(0, 3));
  auto pick_seq = [&](bool want_swapped) -> SeqId {
    std::vector<SeqId> c;
    for (const auto& [id, s] : ref.seqs)
      if (s.swapped == want_swapped) c.push_back(id);
    return c.empty() ? -1 : c[std::size_t(uni(0, int(c.size()) - 1))];
  };
  std::int64_t hits = 0, cows = 0, fulls = 0;
  for (int op = 0; op < n_ops; ++op) {
    INFO("op " << op);
    const int kind = uni(0, 99);
    if (kind < 6 && ref.seqs.size() < 12) {
      ref.seqs[bm.add_sequence()] = {};
    } else if (kind < 18 && ref.seqs.size() < 12) {
      const auto& d = docs[std::size_t(uni(0, 3))];
      std::vector<Token> prompt(d.begin(), d.begin() + uni(0, 40));
      if (!prompt.empty() && uni(0, 2) == 0) prompt[std::size_t(uni(0, int(prompt.size()) - 1))] = uni(0, 3);
      std::int64_t reused = -1;
      SeqId s = bm.add_sequence(prompt, &reused);
      const std::int64_t maxr = prompt.empty() ? 0 : (std::int64_t(prompt.size()) - 1) / bs * bs;
      REQUIRE(reused >= 0);
      REQUIRE(reused % bs == 0);
      REQUIRE(reused <= maxr);
      if (!prefix) REQUIRE(reused == 0);
      hits += reused > 0;
      // The reused blocks must already hold the prompt's tokens (checked by check_against
      // through the simulated store); the sequence then continues with the rest.
      ref.seqs[s].tokens.assign(prompt.begin(), prompt.begin() + reused);
      check_against(bm, ref, bs, nb);
      std::vector<Token> rest(prompt.begin() + reused, prompt.end());
      if (!rest.empty() && bm.blocks_needed(s, std::int64_t(rest.size())) <= bm.available_blocks()) {
        AppendResult r = append(bm, s, rest);
        for (const auto& c : r.copies)
          std::copy_n(ref.store.begin() + std::ptrdiff_t(c.src) * bs, bs, ref.store.begin() + std::ptrdiff_t(c.dst) * bs);
        ref.write(s, rest, r.slots);
        ref.seqs[s].tokens.insert(ref.seqs[s].tokens.end(), rest.begin(), rest.end());
      }
    } else if (kind < 26) {
      SeqId s = pick_seq(false);
      if (s < 0 || ref.seqs.size() >= 12) continue;
      SeqId f = bm.fork(s);
      ref.seqs[f].tokens = ref.seqs[s].tokens;
    } else if (kind < 60) {
      SeqId s = pick_seq(false);
      if (s < 0) continue;
      std::vector<Token> toks;
      const int n = uni(1, 3) == 1 ? uni(1, 3 * bs) : uni(1, 2);
      // Half the time continue a document, so appended blocks match cached prefixes.
      const auto& d = docs[std::size_t(uni(0, 3))];
      for (int i = 0; i < n; ++i) {
        const std::size_t at = ref.seqs[s].tokens.size() + std::size_t(i);
        toks.push_back(uni(0, 1) && at < d.size() ? d[at] : uni(0, 3));
      }
      const std::int64_t need = bm.blocks_needed(s, n);
      const auto before_table = table(bm, s);
      if (need > bm.available_blocks()) {
        const Snapshot snap = snapshot(bm);
        REQUIRE(code_of([&] { append(bm, s, toks); }) == ErrorCode::CacheFull);
        REQUIRE(snapshot(bm) == snap);
        ++fulls;
      } else {
        AppendResult r = append(bm, s, toks);
        REQUIRE(r.slots.size() == toks.size());
        // blocks_needed is exact: the blocks new to the table are the ones allocated.
        auto after = table(bm, s);
        std::set<std::int32_t> fresh(after.begin(), after.end());
        for (std::int32_t b : before_table) fresh.erase(b);
        REQUIRE(std::int64_t(fresh.size()) == need);
        REQUIRE(r.copies.size() <= 1);
        cows += std::int64_t(r.copies.size());
        for (const auto& c : r.copies)
          std::copy_n(ref.store.begin() + std::ptrdiff_t(c.src) * bs, bs, ref.store.begin() + std::ptrdiff_t(c.dst) * bs);
        // Every written slot lies in a block no other resident sequence can see.
        for (std::int64_t slot : r.slots) {
          const std::int32_t b = std::int32_t(slot / bs);
          for (const auto& [id, rs] : ref.seqs) {
            if (id == s || rs.swapped) continue;
            auto t = bm.block_table(id);
            REQUIRE(std::find(t.begin(), t.end(), b) == t.end());
          }
        }
        ref.write(s, toks, r.slots);
        auto& rt = ref.seqs[s].tokens;
        rt.insert(rt.end(), toks.begin(), toks.end());
      }
    } else if (kind < 72) {
      SeqId s = pick_seq(false);
      if (s < 0) continue;
      auto& rt = ref.seqs[s].tokens;
      const int len = uni(0, int(rt.size()));
      if (uni(0, 3) == 0)
        bm.rollback(s, len);
      else
        bm.truncate(s, len);
      rt.resize(std::size_t(len));
    } else if (kind < 82) {
      SeqId s = pick_seq(uni(0, 1) == 1);
      if (s < 0) continue;
      bm.remove(s);
      ref.seqs.erase(s);
    } else if (kind < 91) {
      SeqId s = pick_seq(false);
      if (s < 0) continue;
      // What a KVCache does: save the blocks' contents in table order, then release them.
      auto& rs = ref.seqs[s];
      rs.host.clear();
      for (std::int32_t b : bm.block_table(s))
        rs.host.insert(rs.host.end(), ref.store.begin() + std::ptrdiff_t(b) * bs, ref.store.begin() + std::ptrdiff_t(b + 1) * bs);
      bm.swap_out(s);
      rs.swapped = true;
    } else {
      SeqId s = pick_seq(true);
      if (s < 0) continue;
      auto& rs = ref.seqs[s];
      const std::int64_t need = (std::int64_t(rs.tokens.size()) + bs - 1) / bs;
      if (need > bm.available_blocks()) {
        const Snapshot snap = snapshot(bm);
        REQUIRE(code_of([&] { bm.swap_in(s); }) == ErrorCode::CacheFull);
        REQUIRE(snapshot(bm) == snap);
        ++fulls;
        continue;
      }
      auto ids = bm.swap_in(s);
      REQUIRE(std::int64_t(ids.size()) == need);
      for (std::size_t i = 0; i < ids.size(); ++i)
        std::copy_n(rs.host.begin() + std::ptrdiff_t(i) * bs, bs, ref.store.begin() + std::ptrdiff_t(ids[i]) * bs);
      rs.swapped = false;
    }
    check_against(bm, ref, bs, nb);
  }
  // The run exercised the interesting paths.
  if (prefix) CHECK(hits > 10);
  if (bs > 1) CHECK(cows > 10);
  CHECK(fulls > 5);
  if (prefix) CHECK(bm.stats().evictions > 10);
  for (SeqId s : bm.sequences()) bm.remove(s);
  bm.check_invariants();
  CHECK(bm.stats().blocks_used == 0);
  CHECK(bm.available_blocks() == nb);
}

}  // namespace

TEST_CASE("block manager: randomized operations agree with a reference model", "[cpu][kv]") {
  SECTION("block size 4, prefix caching") { run_property_test(24, 4, true, 1234, 4000); }
  SECTION("block size 3, prefix caching, tight pool") { run_property_test(12, 3, true, 99, 3000); }
  SECTION("block size 1") { run_property_test(40, 1, true, 7, 2000); }
  SECTION("block size 4, no prefix caching") { run_property_test(24, 4, false, 5, 3000); }
}
