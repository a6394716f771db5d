// BlockManager: block pool bookkeeping for the paged KV cache (see block_manager.hpp).
//
// State per block: a reference count, whether it is registered in the prefix hash table
// (hash, parent hash, and its block_size tokens in block_tokens_ so a hash hit can be
// confirmed), and whether it sits in the LRU list of cached blocks. A block is in exactly one
// of three places: the free stack (refs 0, unregistered), the LRU list (refs 0, registered)
// or some sequence tables (refs >= 1). Allocation pops the free stack, else evicts the LRU
// front. Sequences release their blocks last-to-first, so the tail of a finished sequence is
// evicted before its (more shareable) head.
//
// Every mutating call validates and counts the blocks it needs before it changes anything,
// so a throw leaves the manager as it was.
#include "kv/block_manager.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <utility>

#include "vireo/error.hpp"

namespace vireo::detail {

namespace {

// splitmix64's finalizer: a bijective 64-bit mixer with full avalanche.
inline std::uint64_t mix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

}  // namespace

std::uint64_t block_hash(std::uint64_t parent, std::span<const Token> tokens) noexcept {
  std::uint64_t h = mix64(parent ^ 0x3c6ef372fe94f82bull);
  for (Token t : tokens) h = mix64(h ^ std::uint64_t(std::uint32_t(t)));
  return mix64(h ^ std::uint64_t(tokens.size()));
}

BlockManager::BlockManager(std::int64_t num_blocks, int block_size, bool prefix_caching)
    : num_blocks_(num_blocks), block_size_(block_size), prefix_caching_(prefix_caching) {
  if (block_size < 1)
    throw Error(ErrorCode::InvalidArgument, fmt::format("KV block size {} must be at least 1", block_size));
  if (num_blocks < 1 || num_blocks > std::numeric_limits<std::int32_t>::max())
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("KV cache of {} blocks: the number of blocks must be in [1, {}]", num_blocks,
                            std::numeric_limits<std::int32_t>::max()));
  try {
    blocks_.resize(std::size_t(num_blocks));
    free_.reserve(std::size_t(num_blocks));
    // Reverse order so block 0 is handed out first (deterministic, easy to read in tests).
    for (std::int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(std::int32_t(b));
    if (prefix_caching) {
      block_tokens_.resize(std::size_t(num_blocks) * std::size_t(block_size));
      hash_to_block_.reserve(std::size_t(num_blocks));
    }
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::OutOfMemory,
                fmt::format("KV block manager for {} blocks of {} tokens: host allocation failed", num_blocks,
                            block_size));
  }
}

// ---- lookups ----------------------------------------------------------------------------

BlockManager::Sequence& BlockManager::seq_ref(SeqId seq, const char* what) {
  return const_cast<Sequence&>(std::as_const(*this).seq_ref(seq, what));
}

const BlockManager::Sequence& BlockManager::seq_ref(SeqId seq, const char* what) const {
  auto it = seqs_.find(seq);
  if (it == seqs_.end())
    throw Error(ErrorCode::InvalidArgument, fmt::format("{}: unknown sequence {}", what, seq));
  return it->second;
}

BlockManager::Sequence& BlockManager::live_seq(SeqId seq, const char* what) {
  return const_cast<Sequence&>(std::as_const(*this).live_seq(seq, what));
}

const BlockManager::Sequence& BlockManager::live_seq(SeqId seq, const char* what) const {
  const Sequence& s = seq_ref(seq, what);
  if (s.swapped) throw Error(ErrorCode::InvalidArgument, fmt::format("{}: sequence {} is swapped out", what, seq));
  return s;
}

bool BlockManager::contains(SeqId seq) const noexcept { return seqs_.count(seq) != 0; }

std::int64_t BlockManager::length(SeqId seq) const {
  return std::int64_t(seq_ref(seq, "length").tokens.size());
}

std::span<const Token> BlockManager::tokens(SeqId seq) const { return seq_ref(seq, "tokens").tokens; }

std::span<const std::int32_t> BlockManager::block_table(SeqId seq) const {
  return seq_ref(seq, "block_table").table;
}

std::vector<SeqId> BlockManager::sequences() const {
  std::vector<SeqId> out;
  out.reserve(seqs_.size());
  for (const auto& [id, s] : seqs_) out.push_back(id);
  return out;
}

bool BlockManager::is_swapped(SeqId seq) const { return seq_ref(seq, "is_swapped").swapped; }

std::int64_t BlockManager::num_blocks() const noexcept { return num_blocks_; }
int BlockManager::block_size() const noexcept { return block_size_; }
std::int64_t BlockManager::available_blocks() const noexcept {
  return std::int64_t(free_.size() + lru_.size());
}

// ---- pool primitives --------------------------------------------------------------------

SeqId BlockManager::new_id() {
  if (next_id_ == std::numeric_limits<SeqId>::max())
    throw Error(ErrorCode::InvalidArgument, "KV cache ran out of sequence ids (2^31 issued)");
  return next_id_;  // committed by the caller once nothing else can throw
}

std::int32_t BlockManager::allocate() {
  std::int32_t b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    b = lru_.front();
    lru_.pop_front();
    blocks_[b].in_lru = false;
    unregister_block(b);
    ++evictions_;
  } else {
    // Callers count blocks against available_blocks() first.
    throw Error(ErrorCode::Internal, "KV block allocation with an empty pool");
  }
  blocks_[b].refs = 1;
  return b;
}

void BlockManager::release(std::int32_t b) {
  Block& blk = blocks_[b];
  if (--blk.refs > 0) return;
  if (blk.hashed) {
    blk.lru_pos = lru_.insert(lru_.end(), b);
    blk.in_lru = true;
  } else {
    free_.push_back(b);
  }
}

void BlockManager::register_block(std::int32_t b, std::uint64_t hash, std::uint64_t parent,
                                  std::span<const Token> toks) {
  if (!prefix_caching_ || blocks_[b].hashed) return;
  // An equal block is already registered (computed independently): keep the first one.
  auto [it, inserted] = hash_to_block_.emplace(hash, b);
  if (!inserted) return;
  Block& blk = blocks_[b];
  blk.hashed = true;
  blk.hash = hash;
  blk.parent_hash = parent;
  std::copy(toks.begin(), toks.end(), block_tokens_.begin() + std::ptrdiff_t(b) * block_size_);
}

void BlockManager::unregister_block(std::int32_t b) {
  Block& blk = blocks_[b];
  if (!blk.hashed) return;
  hash_to_block_.erase(blk.hash);
  blk.hashed = false;
  blk.hash = blk.parent_hash = 0;
}

bool BlockManager::needs_cow(std::int32_t b) const noexcept {
  return blocks_[b].refs > 1 || blocks_[b].hashed;
}

void BlockManager::throw_full(std::int64_t needed) const {
  throw Error(ErrorCode::CacheFull,
              fmt::format("KV cache full: needed {} blocks, {} available, pool of {} blocks of {} tokens", needed,
                          available_blocks(), num_blocks_, block_size_));
}

// ---- sequences ----------------------------------------------------------------------------

SeqId BlockManager::add_sequence() {
  SeqId id = new_id();
  seqs_.emplace(id, Sequence{});
  ++next_id_;
  return id;
}

SeqId BlockManager::add_sequence(std::span<const Token> prompt, std::int64_t* reused) {
  SeqId id = new_id();
  const std::int64_t n = std::int64_t(prompt.size());
  // Never cover the whole prompt: the caller must compute at least one token for logits.
  const std::int64_t max_blocks = n > 0 ? (n - 1) / block_size_ : 0;
  Sequence s;
  if (prefix_caching_) {
    std::uint64_t parent = kRootBlockHash;
    for (std::int64_t i = 0; i < max_blocks; ++i) {
      auto toks = prompt.subspan(std::size_t(i * block_size_), std::size_t(block_size_));
      std::uint64_t h = block_hash(parent, toks);
      auto it = hash_to_block_.find(h);
      if (it == hash_to_block_.end()) break;
      const std::int32_t b = it->second;
      // Rule out a 64-bit collision: same parent chain and same tokens.
      auto stored = std::span<const Token>(block_tokens_).subspan(std::size_t(b) * block_size_, block_size_);
      if (blocks_[b].parent_hash != parent || !std::equal(toks.begin(), toks.end(), stored.begin())) break;
      s.table.push_back(b);
      s.hashes.push_back(h);
      parent = h;
    }
  }
  const std::int64_t hit = std::int64_t(s.table.size()) * block_size_;
  s.tokens.assign(prompt.begin(), prompt.begin() + hit);
  seqs_.emplace(id, std::move(s));
  ++next_id_;
  // Nothing below throws: take the references.
  for (std::int32_t b : seqs_.at(id).table) {
    Block& blk = blocks_[b];
    if (blk.in_lru) {
      lru_.erase(blk.lru_pos);
      blk.in_lru = false;
    }
    ++blk.refs;
  }
  prefix_query_tokens_ += n;
  prefix_hit_tokens_ += hit;
  if (reused) *reused = hit;
  return id;
}

SeqId BlockManager::fork(SeqId src) {
  const Sequence& s = live_seq(src, "fork");
  SeqId id = new_id();
  Sequence copy = s;
  seqs_.emplace(id, std::move(copy));
  ++next_id_;
  for (std::int32_t b : seqs_.at(id).table) ++blocks_[b].refs;
  return id;
}

void BlockManager::shrink(Sequence& s, std::int64_t length, bool forget) {
  const std::size_t keep = std::size_t(ceil_div(length, block_size_));
  while (s.table.size() > keep) {
    std::int32_t b = s.table.back();
    s.table.pop_back();
    if (forget && blocks_[b].refs == 1) unregister_block(b);
    release(b);
  }
  s.tokens.resize(std::size_t(length));
  s.hashes.resize(std::size_t(length / block_size_));
  // The kept last block is now partial and its tail will be overwritten: if nobody else uses
  // it, it can no longer stand for its hash. A shared one keeps it (the writer copies).
  if (length % block_size_ != 0) {
    std::int32_t last = s.table.back();
    if (blocks_[last].refs == 1) unregister_block(last);
  }
}

void BlockManager::truncate(SeqId seq, std::int64_t length) {
  Sequence& s = live_seq(seq, "truncate");
  if (length < 0 || length > std::int64_t(s.tokens.size()))
    throw Error(ErrorCode::InvalidArgument, fmt::format("truncate: length {} out of range [0, {}] for sequence {}",
                                                        length, s.tokens.size(), seq));
  shrink(s, length, false);
}

void BlockManager::rollback(SeqId seq, std::int64_t length) {
  Sequence& s = live_seq(seq, "rollback");
  if (length < 0 || length > std::int64_t(s.tokens.size()))
    throw Error(ErrorCode::InvalidArgument, fmt::format("rollback: length {} out of range [0, {}] for sequence {}",
                                                        length, s.tokens.size(), seq));
  shrink(s, length, true);
}

void BlockManager::remove(SeqId seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) throw Error(ErrorCode::InvalidArgument, fmt::format("remove: unknown sequence {}", seq));
  auto& table = it->second.table;
  for (auto b = table.rbegin(); b != table.rend(); ++b) release(*b);
  seqs_.erase(it);
}

// ---- append -----------------------------------------------------------------------------

std::int64_t BlockManager::blocks_needed(SeqId seq, std::int64_t n_tokens) const {
  const Sequence& s = live_seq(seq, "blocks_needed");
  if (n_tokens < 0)
    throw Error(ErrorCode::InvalidArgument, fmt::format("blocks_needed: negative token count {} for sequence {}",
                                                        n_tokens, seq));
  if (n_tokens == 0) return 0;
  const std::int64_t len = std::int64_t(s.tokens.size());
  std::int64_t need = ceil_div(len + n_tokens, block_size_) - std::int64_t(s.table.size());
  if (len % block_size_ != 0 && needs_cow(s.table.back())) ++need;
  return need;
}

void BlockManager::append(SeqId seq, std::span<const Token> tokens, std::vector<std::int64_t>& slots,
                          std::vector<Copy>& copies) {
  Sequence& s = live_seq(seq, "append");
  const std::int64_t n = std::int64_t(tokens.size());
  if (n == 0) return;
  const std::int64_t need = blocks_needed(seq, n);
  if (need > available_blocks()) throw_full(need);
  const std::int64_t len = std::int64_t(s.tokens.size());
  // Grow every container first: past this point only noexcept work (and hash-map inserts,
  // whose buckets were reserved for every block) remains.
  s.tokens.reserve(std::size_t(len + n));
  s.table.reserve(std::size_t(ceil_div(len + n, block_size_)));
  s.hashes.reserve(std::size_t((len + n) / block_size_));
  slots.reserve(slots.size() + std::size_t(n));
  copies.reserve(copies.size() + 1);

  if (len % block_size_ != 0 && needs_cow(s.table.back())) {
    const std::int32_t src = s.table.back();
    const std::int32_t dst = allocate();  // src is referenced, so never the one evicted
    copies.push_back({src, dst});
    s.table.back() = dst;
    release(src);
    ++cow_copies_;
  }
  std::int64_t pos = len;
  for (Token t : tokens) {
    if (pos % block_size_ == 0) s.table.push_back(allocate());
    const std::int32_t b = s.table[std::size_t(pos / block_size_)];
    slots.push_back(std::int64_t(b) * block_size_ + pos % block_size_);
    s.tokens.push_back(t);
    ++pos;
    if (pos % block_size_ == 0) {
      const std::int64_t i = pos / block_size_ - 1;
      const std::uint64_t parent = i == 0 ? kRootBlockHash : s.hashes[std::size_t(i - 1)];
      auto toks = std::span<const Token>(s.tokens).subspan(std::size_t(i * block_size_), block_size_);
      const std::uint64_t h = block_hash(parent, toks);
      s.hashes.push_back(h);
      register_block(b, h, parent, toks);
    }
  }
}

// ---- tree compaction --------------------------------------------------------------------

void BlockManager::compact(SeqId seq, std::int64_t from, std::span<const std::int32_t> keep,
                           const std::function<void(std::span<const std::pair<std::int64_t, std::int64_t>>)>& move) {
  Sequence& s = live_seq(seq, "compact");
  const std::int64_t len = std::int64_t(s.tokens.size());
  if (from < 0 || from > len)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("compact: start {} out of range [0, {}] for sequence {}", from, len, seq));
  for (std::size_t k = 0; k < keep.size(); ++k) {
    const std::int64_t idx = keep[k];
    if (idx < 0 || from + idx >= len || (k > 0 && idx <= keep[k - 1]))
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("compact: kept index {} (entry {}) must be increasing and within the {} tree tokens of "
                              "sequence {}",
                              idx, k, len - from, seq));
  }
  for (std::size_t i = std::size_t(from / block_size_); i < s.table.size(); ++i)
    if (blocks_[s.table[i]].refs != 1 && from + std::int64_t(keep.size()) > std::int64_t(i) * block_size_)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("compact: block {} of sequence {} is shared (forked after the tree step?)", i, seq));
  auto slot = [&](std::int64_t p) {
    return std::int64_t(s.table[std::size_t(p / block_size_)]) * block_size_ + p % block_size_;
  };
  std::vector<std::pair<std::int64_t, std::int64_t>> moves;
  for (std::size_t k = 0; k < keep.size(); ++k)
    if (keep[k] != std::int32_t(k)) moves.emplace_back(slot(from + keep[k]), slot(from + std::int64_t(k)));
  if (!moves.empty()) move(moves);

  // Tokens of the kept rows, then the blocks from `from` on: unregistered (their contents
  // changed), the tail released, full ones registered again under their new tokens.
  for (std::size_t k = 0; k < keep.size(); ++k) s.tokens[std::size_t(from) + k] = s.tokens[std::size_t(from + keep[k])];
  const std::int64_t n = from + std::int64_t(keep.size());
  const std::size_t first = std::size_t(from / block_size_);
  for (std::size_t i = first; i < s.table.size(); ++i)
    if (blocks_[s.table[i]].hashed && blocks_[s.table[i]].refs == 1) unregister_block(s.table[i]);
  while (s.table.size() > std::size_t(ceil_div(n, block_size_))) {
    release(s.table.back());
    s.table.pop_back();
  }
  s.tokens.resize(std::size_t(n));
  s.hashes.resize(std::min<std::size_t>(s.hashes.size(), first));
  for (std::int64_t i = std::int64_t(first); i < n / block_size_; ++i) {
    const std::uint64_t parent = i == 0 ? kRootBlockHash : s.hashes[std::size_t(i - 1)];
    auto toks = std::span<const Token>(s.tokens).subspan(std::size_t(i * block_size_), std::size_t(block_size_));
    const std::uint64_t h = block_hash(parent, toks);
    s.hashes.push_back(h);
    register_block(s.table[std::size_t(i)], h, parent, toks);
  }
}

// ---- swap -------------------------------------------------------------------------------

void BlockManager::swap_out(SeqId seq) {
  Sequence& s = live_seq(seq, "swap_out");
  for (auto b = s.table.rbegin(); b != s.table.rend(); ++b) release(*b);
  s.table.clear();
  s.table.shrink_to_fit();
  s.swapped = true;
}

SeqId BlockManager::add_swapped(std::span<const Token> tokens) {
  Sequence s;
  s.tokens.assign(tokens.begin(), tokens.end());
  const std::size_t full = tokens.size() / std::size_t(block_size_);
  s.hashes.reserve(full);
  for (std::size_t i = 0; i < full; ++i)
    s.hashes.push_back(block_hash(i == 0 ? kRootBlockHash : s.hashes[i - 1],
                                  tokens.subspan(i * std::size_t(block_size_), std::size_t(block_size_))));
  s.swapped = true;
  const SeqId id = new_id();
  seqs_.emplace(id, std::move(s));
  ++next_id_;
  return id;
}

std::vector<std::int32_t> BlockManager::swap_in(SeqId seq) {
  Sequence& s = seq_ref(seq, "swap_in");
  if (!s.swapped)
    throw Error(ErrorCode::InvalidArgument, fmt::format("swap_in: sequence {} is not swapped out", seq));
  const std::int64_t need = ceil_div(std::int64_t(s.tokens.size()), block_size_);
  if (need > available_blocks()) throw_full(need);
  std::vector<std::int32_t> out;
  out.reserve(std::size_t(need));
  s.table.reserve(std::size_t(need));
  // Fresh blocks, unregistered: their bytes arrive only after this call returns.
  for (std::int64_t i = 0; i < need; ++i) {
    std::int32_t b = allocate();
    out.push_back(b);
    s.table.push_back(b);
  }
  s.swapped = false;
  return out;
}

// ---- stats and invariants ---------------------------------------------------------------

KVCacheStats BlockManager::stats() const {
  KVCacheStats st;
  st.block_size = block_size_;
  st.blocks_total = num_blocks_;
  st.blocks_cached = std::int64_t(lru_.size());
  st.blocks_free = std::int64_t(free_.size());
  st.blocks_used = num_blocks_ - st.blocks_cached - st.blocks_free;
  // A shared block holds as many tokens as its fullest user wrote into it.
  std::unordered_map<std::int32_t, std::int64_t> fill;
  for (const auto& [id, s] : seqs_) {
    ++st.sequences;
    if (s.swapped) ++st.swapped_sequences;
    const std::int64_t len = std::int64_t(s.tokens.size());
    for (std::size_t i = 0; i < s.table.size(); ++i) {
      std::int64_t f = std::min<std::int64_t>(block_size_, len - std::int64_t(i) * block_size_);
      auto& cur = fill[s.table[i]];
      cur = std::max(cur, f);
    }
  }
  for (const auto& [b, f] : fill) st.tokens_stored += f;
  st.prefix_query_tokens = prefix_query_tokens_;
  st.prefix_hit_tokens = prefix_hit_tokens_;
  st.evictions = evictions_;
  st.cow_copies = cow_copies_;
  return st;
}

void BlockManager::check_invariants() const {
  auto fail = [](const std::string& what) { throw Error(ErrorCode::Internal, "KV block manager: " + what); };
  const std::size_t nb = std::size_t(num_blocks_);
  // Where each block is: 1 = free stack, 2 = LRU list.
  std::vector<int> place(nb, 0);
  for (std::int32_t b : free_) {
    if (b < 0 || std::size_t(b) >= nb) fail(fmt::format("free list holds block {} outside [0, {})", b, nb));
    if (place[b]) fail(fmt::format("block {} is twice in the free list", b));
    place[b] = 1;
  }
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    std::int32_t b = *it;
    if (b < 0 || std::size_t(b) >= nb) fail(fmt::format("LRU list holds block {} outside [0, {})", b, nb));
    if (place[b]) fail(fmt::format("block {} is in the LRU list and in {}", b, place[b] == 1 ? "the free list" : "the LRU list again"));
    place[b] = 2;
    if (!blocks_[b].in_lru || blocks_[b].lru_pos != it) fail(fmt::format("block {}: stale LRU position", b));
  }
  // References from sequence tables, and the token each (block, offset) holds according to
  // every sequence that can see it: users of one block must agree on their common slots.
  std::vector<std::int32_t> refs(nb, 0);
  std::vector<std::int32_t> content_fill(nb, 0);
  std::vector<Token> slot_tok(nb * std::size_t(block_size_));
  for (const auto& [id, s] : seqs_) {
    const std::int64_t len = std::int64_t(s.tokens.size());
    if (s.swapped) {
      if (!s.table.empty()) fail(fmt::format("swapped sequence {} still holds {} blocks", id, s.table.size()));
    } else if (std::int64_t(s.table.size()) != ceil_div(len, block_size_)) {
      fail(fmt::format("sequence {} of {} tokens has {} blocks (block size {})", id, len, s.table.size(), block_size_));
    }
    if (std::int64_t(s.hashes.size()) != len / block_size_)
      fail(fmt::format("sequence {} of {} tokens has {} block hashes", id, len, s.hashes.size()));
    std::uint64_t parent = kRootBlockHash;
    for (std::size_t i = 0; i < s.hashes.size(); ++i) {
      auto toks = std::span<const Token>(s.tokens).subspan(i * block_size_, block_size_);
      std::uint64_t h = block_hash(parent, toks);
      if (h != s.hashes[i]) fail(fmt::format("sequence {}: stale hash of block index {}", id, i));
      parent = h;
    }
    for (std::size_t i = 0; i < s.table.size(); ++i) {
      const std::int32_t b = s.table[i];
      if (b < 0 || std::size_t(b) >= nb) fail(fmt::format("sequence {} references block {} outside [0, {})", id, b, nb));
      ++refs[b];
      const std::int64_t base = std::int64_t(i) * block_size_;
      const std::int32_t f = std::int32_t(std::min<std::int64_t>(block_size_, len - base));
      for (std::int32_t o = 0; o < std::min(f, content_fill[b]); ++o)
        if (slot_tok[std::size_t(b) * block_size_ + o] != s.tokens[std::size_t(base + o)])
          fail(fmt::format("block {} slot {}: sequences disagree on its token", b, o));
      for (std::int32_t o = content_fill[b]; o < f; ++o)
        slot_tok[std::size_t(b) * block_size_ + o] = s.tokens[std::size_t(base + o)];
      content_fill[b] = std::max(content_fill[b], f);
      const Block& blk = blocks_[b];
      if (blk.hashed) {
        // A registered block stands for exactly this prefix.
        const Token* stored = block_tokens_.data() + std::size_t(b) * block_size_;
        if (!std::equal(s.tokens.begin() + base, s.tokens.begin() + base + f, stored))
          fail(fmt::format("sequence {} block index {} (block {}): tokens differ from the registered ones", id, i, b));
        if (f == block_size_ && blk.hash != s.hashes[i])
          fail(fmt::format("sequence {} block index {} (block {}): registered hash differs", id, i, b));
        if (f == block_size_ && blk.parent_hash != (i == 0 ? kRootBlockHash : s.hashes[i - 1]))
          fail(fmt::format("sequence {} block index {} (block {}): registered parent hash differs", id, i, b));
      }
    }
  }
  std::size_t hashed = 0;
  for (std::size_t b = 0; b < nb; ++b) {
    const Block& blk = blocks_[b];
    if (blk.refs != refs[b])
      fail(fmt::format("block {} has refcount {} but {} table references", b, blk.refs, refs[b]));
    if (refs[b] > 0 && place[b]) fail(fmt::format("block {} is referenced and in the {} list", b, place[b] == 1 ? "free" : "LRU"));
    if (refs[b] == 0 && !place[b]) fail(fmt::format("block {} is unreferenced but in neither free nor LRU list", b));
    if (place[b] == 1 && blk.hashed) fail(fmt::format("free block {} is still registered", b));
    if (place[b] == 2 && !blk.hashed) fail(fmt::format("cached block {} is not registered", b));
    if ((place[b] == 2) != blk.in_lru) fail(fmt::format("block {}: in_lru flag disagrees with the LRU list", b));
    if (blk.hashed) {
      ++hashed;
      if (!prefix_caching_) fail(fmt::format("block {} registered with prefix caching off", b));
      auto it = hash_to_block_.find(blk.hash);
      if (it == hash_to_block_.end() || std::size_t(it->second) != b)
        fail(fmt::format("block {} is marked registered but the hash table disagrees", b));
      auto stored = std::span<const Token>(block_tokens_).subspan(b * block_size_, block_size_);
      if (block_hash(blk.parent_hash, stored) != blk.hash)
        fail(fmt::format("block {}: registered hash does not match its stored tokens", b));
    }
  }
  if (hashed != hash_to_block_.size())
    fail(fmt::format("hash table has {} entries but {} blocks are registered", hash_to_block_.size(), hashed));
  for (const auto& [id, s] : seqs_)
    if (id >= next_id_) fail(fmt::format("sequence id {} not below the next id {}", id, next_id_));
}

}  // namespace vireo::detail
