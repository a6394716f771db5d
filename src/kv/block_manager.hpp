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
#pragma once
#include <cstdint>
#include <span>
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
  bool is_swapped(SeqId seq) const;

  KVCacheStats stats() const;
  std::int64_t num_blocks() const noexcept;
  int block_size() const noexcept;
  /// Verifies every internal invariant (refcounts equal table references, free/cached/used
  /// partition the pool, hash table consistent); throws Error(Internal) naming the breach.
  void check_invariants() const;
};

}  // namespace vireo::detail
