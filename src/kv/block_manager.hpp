// BlockManager: the bookkeeping half of the paged KV cache, with no K/V data in it.
//
// It owns the block pool (free list, reference counts, LRU list of cached unreferenced
// blocks, prefix hash table) and the per-sequence state (block table + tokens). The storage
// half (KVStorage) only moves bytes. Keeping them apart lets the randomized property test
// drive thousands of operations without touching K/V memory.
//
// Block lifecycle: free -> used (refcount >= 1) -> [refcount 0] -> cached (if it is a full,
// hashed block and prefix caching is on; evictable, LRU) or free. A block that is shared
// (refcount > 1) or hashed is never written in place: append() gives the sequence a private
// copy first (copy on write) and reports the (src, dst) pair for the storage to copy.
//
// Prefix hashes: the i-th full block of a sequence has hash H(hash of block i-1, its
// block_size tokens) (block -1 has a fixed seed), so equal hashes mean equal prefixes up to
// 64-bit collisions; a hit is confirmed by comparing the stored parent hash and tokens. A block
// is registered when append() fills it (unless an equal block is already registered). When a
// truncate() leaves a hashed block partially filled and the truncated sequence is its only
// user, the block is unregistered (its tail is about to be overwritten); a shared one stays
// registered and the writer gets a copy. Blocks given back by swap_in() are not registered.
#pragma once
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <span>
#include <unordered_map>
#include <vector>

#include "vireo/kv_cache.hpp"
#include "vireo/types.hpp"

namespace vireo::detail {

class BlockManager {
 public:
  struct Copy {
    std::int32_t src;
    std::int32_t dst;
  };

  BlockManager(std::int64_t num_blocks, int block_size, bool prefix_caching);

  SeqId add_sequence();
  /// Attach the longest cached prefix of `prompt` made of whole blocks, leaving at least one
  /// token to compute. *reused gets the number of prompt tokens covered.
  SeqId add_sequence(std::span<const Token> prompt, std::int64_t* reused);
  SeqId fork(SeqId src);
  void truncate(SeqId seq, std::int64_t length);
  void remove(SeqId seq);

  bool contains(SeqId seq) const noexcept;
  std::int64_t length(SeqId seq) const;
  std::span<const Token> tokens(SeqId seq) const;
  std::span<const std::int32_t> block_table(SeqId seq) const;
  std::vector<SeqId> sequences() const;

  /// Blocks append(seq, n tokens) would take from the pool (copy on write included).
  std::int64_t blocks_needed(SeqId seq, std::int64_t n_tokens) const;
  /// free + evictable cached blocks.
  std::int64_t available_blocks() const noexcept;

  /// Append tokens to `seq`: slots[i] = block * block_size + offset of token i (appended to
  /// `slots`); copies the storage must perform before writing are appended to `copies`.
  /// Throws CacheFull with no state changed if the pool cannot supply the blocks.
  void append(SeqId seq, std::span<const Token> tokens, std::vector<std::int64_t>& slots,
              std::vector<Copy>& copies);

  /// Swap support. swap_out releases the sequence's blocks (the caller has saved their data
  /// first, in block-table order) and keeps its tokens; swap_in allocates fresh blocks
  /// (throws CacheFull, state unchanged) and returns them in table order for the caller to
  /// restore into.
  void swap_out(SeqId seq);
  std::vector<std::int32_t> swap_in(SeqId seq);
  /// A new sequence in the swapped state holding `tokens` (a restored KV file): swap_in
  /// gives it blocks for the caller's bytes.
  SeqId add_swapped(std::span<const Token> tokens);
  bool is_swapped(SeqId seq) const;

  KVCacheStats stats() const;
  std::int64_t num_blocks() const noexcept;
  int block_size() const noexcept;
  /// Verifies every internal invariant (refcounts equal table references, free/cached/used
  /// partition the pool, hash table consistent); throws Error(Internal) naming the breach.
  void check_invariants() const;

  /// Keep a token tree's accepted rows: positions [from, length) hold a tree; keep[k]
  /// (strictly increasing, relative to from) moves to from + k and the sequence becomes
  /// from + keep.size() long. Validates first (throws InvalidArgument with nothing changed:
  /// bad indices, a swapped sequence, or tree blocks shared with another sequence), then calls
  /// move(src, dst) with the slot pairs (in an order safe for in-place copies, src != dst),
  /// then rewrites the tokens and prefix hashes of the blocks from `from` on.
  void compact(SeqId seq, std::int64_t from, std::span<const std::int32_t> keep,
               const std::function<void(std::span<const std::pair<std::int64_t, std::int64_t>>)>& move);

  /// Undo an append() whose K/V were never written (a failed forward): like truncate, but
  /// blocks the sequence alone held past `length` are unregistered and freed instead of
  /// being kept for prefix reuse, since their contents are not the tokens' K/V.
  void rollback(SeqId seq, std::int64_t length);

 private:
  struct Block {
    std::int32_t refs = 0;
    bool hashed = false;   // registered in hash_to_block_
    bool in_lru = false;   // refs == 0 and kept for prefix reuse
    std::uint64_t hash = 0;
    std::uint64_t parent_hash = 0;
    std::list<std::int32_t>::iterator lru_pos;
  };
  struct Sequence {
    std::vector<Token> tokens;
    std::vector<std::int32_t> table;    // ceil(len / block_size) blocks; empty when swapped
    std::vector<std::uint64_t> hashes;  // chain hash of each full block, len / block_size
    bool swapped = false;
  };

  Sequence& seq_ref(SeqId seq, const char* what);
  const Sequence& seq_ref(SeqId seq, const char* what) const;
  Sequence& live_seq(SeqId seq, const char* what);
  const Sequence& live_seq(SeqId seq, const char* what) const;
  SeqId new_id();
  std::int32_t allocate();
  void release(std::int32_t b);
  void register_block(std::int32_t b, std::uint64_t hash, std::uint64_t parent,
                      std::span<const Token> toks);
  void unregister_block(std::int32_t b);
  bool needs_cow(std::int32_t b) const noexcept;
  [[noreturn]] void throw_full(std::int64_t needed) const;
  void shrink(Sequence& s, std::int64_t length, bool forget);

  std::int64_t num_blocks_;
  int block_size_;
  bool prefix_caching_;
  std::vector<Block> blocks_;
  std::vector<std::int32_t> free_;          // stack; back is taken first
  std::list<std::int32_t> lru_;             // cached blocks, front = least recently used
  std::unordered_map<std::uint64_t, std::int32_t> hash_to_block_;
  std::vector<Token> block_tokens_;         // [num_blocks, block_size] of hashed blocks
  std::map<SeqId, Sequence> seqs_;
  SeqId next_id_ = 0;
  std::int64_t prefix_query_tokens_ = 0;
  std::int64_t prefix_hit_tokens_ = 0;
  std::int64_t evictions_ = 0;
  std::int64_t cow_copies_ = 0;
};

/// The chain hash of a full block: H(parent, tokens). Exposed for tests.
std::uint64_t block_hash(std::uint64_t parent, std::span<const Token> tokens) noexcept;
/// The parent hash of a sequence's first block.
inline constexpr std::uint64_t kRootBlockHash = 0x6a09e667f3bcc909ull;

}  // namespace vireo::detail
