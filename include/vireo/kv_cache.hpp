// KVCache: paged K/V storage for many sequences.
//
// Storage is a pool of fixed-size blocks (block_size tokens x all layers x K and V); each
// sequence owns a block table. Blocks are reference-counted: fork() shares them and a shared
// (or prefix-cached) block is copied only when a sequence writes into it (copy on write).
// With prefix caching on, every full block is identified by a hash chain over its tokens
// (parent hash + block tokens); add_sequence(prompt) reuses the longest cached prefix.
// Unreferenced cached blocks stay resident and are evicted least-recently-used first, only
// when a new block is needed. Sequences can be swapped to host memory and back (preemption).
//
// Footprint (the seed's formula): bytes_per_token = 2 * layers * kv_heads * head_dim * bytes;
// with KVPrecision::Int8, 2 * layers * kv_heads * (head_dim + 4) (int8 values + an fp32 scale).
// Every operation either succeeds or throws vireo::Error leaving the cache as it was: a full
// cache throws ErrorCode::CacheFull. One KVCache is used by one thread at a time.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "vireo/types.hpp"
#include "vireo/export.h"

VIREO_CXX_API_BEGIN
namespace vireo {
class Model;
namespace detail { struct KVCacheImpl; struct Access; }

/// How K and V are stored.
enum class KVPrecision {
  Model,  ///< the model's KV type: fp32 on the CPU, the activation type (bf16 / fp16) on a GPU
  /// int8 with one fp32 scale per token, KV head and K / V row (symmetric: absmax / 127,
  /// round to nearest). (head_dim + 4) bytes per row instead of 4 * head_dim on the CPU
  /// (~3.8x the tokens in the same memory) or 2 * head_dim on a GPU (~1.9x), for a small
  /// attention error. The CUDA backend needs head_dim 64 or 128 (ErrorCode::Unsupported
  /// otherwise).
  Int8,
};

struct KVCacheOptions {
  /// Size the pool from a byte budget (used when num_blocks == 0).
  std::size_t memory_budget_bytes = std::size_t(256) << 20;
  /// Exact number of blocks (overrides the budget when > 0).
  std::int64_t num_blocks = 0;
  int block_size = 16;  ///< tokens per block
  bool prefix_caching = true;
  KVPrecision precision = KVPrecision::Model;
};

struct KVCacheStats {
  std::int64_t blocks_total = 0;
  std::int64_t blocks_used = 0;    ///< referenced by at least one sequence
  std::int64_t blocks_cached = 0;  ///< unreferenced but kept for prefix reuse (evictable)
  std::int64_t blocks_free = 0;    ///< never used or evicted
  std::int64_t tokens_stored = 0;  ///< slots holding a token, summed over distinct used blocks
  std::size_t bytes_total = 0;
  std::size_t bytes_used = 0;
  std::int64_t sequences = 0;
  std::int64_t swapped_sequences = 0;
  std::int64_t prefix_query_tokens = 0;  ///< prompt tokens offered to add_sequence(prompt)
  std::int64_t prefix_hit_tokens = 0;    ///< of those, tokens served from cached blocks
  std::int64_t evictions = 0;
  std::int64_t cow_copies = 0;
  double hit_rate() const noexcept {
    return prefix_query_tokens ? double(prefix_hit_tokens) / double(prefix_query_tokens) : 0.0;
  }
  /// Allocated-but-empty slots of used blocks, as a fraction of the pool.
  double waste() const noexcept {
    std::int64_t slots = blocks_total * block_size;
    return slots ? double(blocks_used * block_size - tokens_stored) / double(slots) : 0.0;
  }
  int block_size = 0;
};

class KVCache {
 public:
  /// A cache shaped for `model` (layers, KV heads, head dim, dtype) on the model's device.
  /// Throws InvalidArgument for a budget below one block, OutOfMemory if allocation fails.
  KVCache(const Model& model, KVCacheOptions opts = {});
  KVCache(KVCache&&) noexcept;
  KVCache& operator=(KVCache&&) noexcept;
  ~KVCache();

  /// A new empty sequence.
  SeqId add_sequence();
  /// A new sequence that reuses the longest cached prefix of `prompt` (whole blocks; at
  /// least one prompt token is always left to compute so the caller gets logits). The
  /// caller feeds prompt.subspan(*reused_tokens) to the model.
  SeqId add_sequence(std::span<const Token> prompt, std::int64_t* reused_tokens);
  /// A new sequence sharing all of `seq`'s blocks (copy on write).
  SeqId fork(SeqId seq);
  /// Keep the first `length` tokens (0 <= length <= length(seq)).
  void truncate(SeqId seq, std::int64_t length);
  void remove(SeqId seq);
  /// After a step that added a token tree for `seq` (Batch::add_tree) at positions
  /// [from, length): keep the rows keep[0], keep[1], ... (indices into the tree, increasing:
  /// a root-to-leaf path in the order add_tree() took them), moved to from, from + 1, ...;
  /// the sequence becomes from + keep.size() long and equals a sequence that only ever saw
  /// the kept tokens. The prefix (< from) is never copied. Throws InvalidArgument (bad
  /// indices, a swapped sequence, tree blocks shared by a later fork) with nothing changed.
  void compact(SeqId seq, std::int64_t from, std::span<const std::int32_t> keep);

  bool contains(SeqId seq) const noexcept;
  std::int64_t length(SeqId seq) const;
  std::vector<SeqId> sequences() const;
  /// The tokens the sequence holds (what was appended through forward()).
  std::span<const Token> tokens(SeqId seq) const;

  /// Write a sequence (its tokens and K/V; resident or swapped) to a file, to restore() it
  /// later, in this process or another: a versioned format with a checksum, tied to this
  /// cache's model (a fingerprint of its weights), KV precision and dtype, and block size.
  /// Written to a temporary file renamed into place, so an existing file at `path` is
  /// either replaced whole or left as it was. Throws InvalidArgument (unknown sequence), Io.
  void save(SeqId seq, const std::filesystem::path& path) const;
  /// A new sequence holding what save() wrote. Throws Io (unreadable), InvalidArgument (not
  /// a vireo KV file, another format version, a checksum mismatch, a file saved with another
  /// model, KV precision, dtype or block size, each named), CacheFull (no room); on any throw
  /// the cache is unchanged.
  SeqId restore(const std::filesystem::path& path);

  /// Move a sequence's K/V to host memory (pinned for CUDA) and free its blocks.
  void swap_out(SeqId seq);
  /// Bring a swapped sequence back (throws CacheFull if there is no room; it stays swapped).
  void swap_in(SeqId seq);
  bool is_swapped(SeqId seq) const;

  std::size_t bytes_per_token() const noexcept;
  KVPrecision precision() const noexcept;
  std::size_t bytes_per_block() const noexcept;
  int block_size() const noexcept;
  std::int64_t num_blocks() const noexcept;
  std::int64_t capacity_tokens() const noexcept { return num_blocks() * block_size(); }
  /// Blocks that appending n tokens to `seq` would take (copy on write included).
  std::int64_t blocks_needed(SeqId seq, std::int64_t n_tokens) const;
  /// Blocks obtainable now: free plus evictable cached blocks.
  std::int64_t available_blocks() const noexcept;
  KVCacheStats stats() const;

 private:
  friend struct detail::Access;  // the library's internals (src/model/access.hpp)
  std::unique_ptr<detail::KVCacheImpl> impl_;
};

}  // namespace vireo
VIREO_CXX_API_END
