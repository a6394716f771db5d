// Byte-level BPE and SentencePiece merge loops and their candidate queue (see bpe.hpp for
// the algorithms).
#include "tokenizer/bpe.hpp"

#include <algorithm>

#include "tokenizer/unicode.hpp"

namespace vireo::detail {
namespace {

constexpr Token kDead = -2;
// Pieces with at least this many symbols, and at least 1/16 as many as there are ranks,
// use the bucket queue. Below that a heap is cheaper than a table with one bucket per rank
// (sized once per encode call; a 262k-entry SentencePiece vocabulary has as many ranks).
constexpr std::size_t kBucketMinSymbols = 256;

}  // namespace

// ---- MergeTable ------------------------------------------------------------------------

void MergeTable::grow() {
  std::vector<Slot> old = std::move(slots_);
  const std::size_t cap = old.empty() ? 1024 : old.size() * 2;
  slots_.assign(cap, Slot{kEmpty, {0, 0}});
  mask_ = cap - 1;
  shift_ = 64;
  for (std::size_t c = cap; c > 1; c >>= 1) --shift_;
  for (const Slot& s : old) {
    if (s.key == kEmpty) continue;
    std::size_t i = slot_of(s.key);
    while (slots_[i].key != kEmpty) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

void MergeTable::add(Token left, Token right, std::int32_t rank, Token result) {
  if ((size_ + 1) * 2 > slots_.size()) grow();
  const std::uint64_t k = key(left, right);
  std::size_t i = slot_of(k);
  for (; slots_[i].key != kEmpty; i = (i + 1) & mask_) {
    if (slots_[i].key == k) return;  // first entry wins
  }
  slots_[i] = Slot{k, {rank, result}};
  ++size_;
  rank_limit_ = std::max(rank_limit_, rank + 1);
}

void MergeTable::clear() noexcept {
  for (Slot& s : slots_) s.key = kEmpty;
  size_ = 0;
  rank_limit_ = 0;
}

// ---- PairQueue -------------------------------------------------------------------------

void PairQueue::reset(std::size_t n_symbols, std::int32_t rank_limit) {
  for (std::int32_t r : touched_) buckets_[std::size_t(r)].clear();
  touched_.clear();
  ranks_.clear();
  heap_.clear();
  bucketed_ = n_symbols >= kBucketMinSymbols && n_symbols * 16 >= std::size_t(rank_limit);
  if (bucketed_ && buckets_.size() < std::size_t(rank_limit)) buckets_.resize(std::size_t(rank_limit));
}

void PairQueue::push(std::int32_t rank, std::int32_t pos) {
  if (!bucketed_) {
    heap_.push_back((std::uint64_t(std::uint32_t(rank)) << 32) | std::uint32_t(pos));
    std::push_heap(heap_.begin(), heap_.end(), std::greater<>{});
    return;
  }
  Bucket& b = buckets_[std::size_t(rank)];
  if (!b.queued) {
    b.clear();
    b.queued = true;
    touched_.push_back(rank);
    ranks_.push_back(rank);
    std::push_heap(ranks_.begin(), ranks_.end(), std::greater<>{});
  }
  if (b.consumed == b.pos.size()) {  // nothing pending in the list: restart it
    b.pos.clear();
    b.consumed = 0;
  }
  if (b.pos.empty() || pos >= b.pos.back()) {
    b.pos.push_back(pos);
  } else {
    b.late.push_back(pos);
    std::push_heap(b.late.begin(), b.late.end(), std::greater<>{});
  }
}

bool PairQueue::pop(std::int32_t& rank, std::int32_t& pos) {
  if (!bucketed_) {
    if (heap_.empty()) return false;
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>{});
    const std::uint64_t k = heap_.back();
    heap_.pop_back();
    rank = static_cast<std::int32_t>(k >> 32);
    pos = static_cast<std::int32_t>(k & 0xFFFFFFFFu);
    return true;
  }
  while (!ranks_.empty()) {
    const std::int32_t r = ranks_.front();
    Bucket& b = buckets_[std::size_t(r)];
    if (b.empty()) {  // drained: drop the rank
      std::pop_heap(ranks_.begin(), ranks_.end(), std::greater<>{});
      ranks_.pop_back();
      b.clear();
      continue;
    }
    rank = r;
    if (!b.late.empty() && (b.consumed == b.pos.size() || b.late.front() < b.pos[b.consumed])) {
      std::pop_heap(b.late.begin(), b.late.end(), std::greater<>{});
      pos = b.late.back();
      b.late.pop_back();
    } else {
      pos = b.pos[b.consumed++];
    }
    return true;
  }
  return false;
}

// ---- merge loops -----------------------------------------------------------------------

void bpe_merge(const MergeTable& merges, MergeWorkspace& ws) {
  auto& ids = ws.ids;
  const auto n = static_cast<std::int32_t>(ids.size());
  if (n < 2) return;
  auto& prev = ws.prev;
  auto& next = ws.next;
  prev.resize(std::size_t(n));
  next.resize(std::size_t(n));
  for (std::int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1;  // n means "none"
  }
  // The right symbol of a candidate is always next[left]; since every merge rank names
  // exactly one token pair, a popped (rank, left) is current exactly when left is alive, has
  // a right neighbour, and their pair has that rank.
  PairQueue& q = ws.queue;
  q.reset(std::size_t(n), merges.rank_limit());
  for (std::int32_t i = 0; i + 1 < n; ++i) {
    if (const MergeResult* m = merges.find(ids[i], ids[i + 1])) q.push(m->rank, i);
  }
  auto push = [&](std::int32_t l) {
    if (const MergeResult* m = merges.find(ids[l], ids[next[l]])) q.push(m->rank, l);
  };
  std::int32_t rank, left;
  while (q.pop(rank, left)) {
    const std::int32_t right = next[left];
    if (ids[left] == kDead || right >= n) continue;
    const MergeResult* m = merges.find(ids[left], ids[right]);
    if (m == nullptr || m->rank != rank) continue;
    ids[left] = m->result;
    ids[right] = kDead;
    next[left] = next[right];
    if (next[left] < n) prev[next[left]] = left;
    if (prev[left] >= 0) push(prev[left]);
    if (next[left] < n) push(left);
  }
  ids.erase(std::remove(ids.begin(), ids.end(), kDead), ids.end());
}

void spm_merge(std::string_view text, const TokenMap& mergeable, const std::vector<std::int32_t>& score_rank,
               std::int32_t rank_limit, MergeWorkspace& ws, std::vector<SpmSymbol>& out) {
  auto lookup = [&](std::size_t s, std::size_t l) -> Token {
    auto it = mergeable.find(text.substr(s, l));
    return it == mergeable.end() ? Token(-1) : it->second;
  };
  constexpr std::size_t kCharCache = 1024;
  if (ws.spm_chars.size() != kCharCache) ws.spm_chars.assign(kCharCache, {kInvalidCp, -1});
  auto& start = ws.start;
  auto& len = ws.len;
  auto& id = ws.spm_id;
  start.clear();
  len.clear();
  id.clear();
  for (std::size_t i = 0; i < text.size();) {
    std::uint32_t cp;
    const std::size_t l = utf8_decode(text, i, cp);
    Token t;
    if (cp == kInvalidCp) {
      t = lookup(i, l);
    } else {
      auto& c = ws.spm_chars[cp % kCharCache];
      if (c.cp != cp) c = {cp, lookup(i, l)};
      t = c.id;
    }
    start.push_back(static_cast<std::int32_t>(i));
    len.push_back(static_cast<std::int32_t>(l));
    id.push_back(t);
    i += l;
  }
  const auto n = static_cast<std::int32_t>(start.size());
  auto& prev = ws.prev;
  auto& next = ws.next;
  prev.resize(std::size_t(n));
  next.resize(std::size_t(n));
  for (std::int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1;
  }
  // The last candidate queued at each symbol l: its merged byte length, rank and id. A
  // symbol only grows to the right and a dead one has length 0, so the pair at l only ever
  // gets longer: a popped (rank, l) is current exactly when l is alive, has a right
  // neighbour, their lengths add up to the last queued length, and the rank is the last
  // queued rank.
  auto& qsize = ws.spm_size;
  auto& qrank = ws.spm_rank;
  auto& qid = ws.spm_qid;
  qsize.assign(std::size_t(n), -1);
  qrank.assign(std::size_t(n), -1);
  qid.assign(std::size_t(n), -1);
  ws.spm_pairs.clear();
  PairQueue& q = ws.queue;
  q.reset(std::size_t(n), rank_limit);
  auto push = [&](std::int32_t l, std::int32_t r) {
    const std::size_t size = std::size_t(len[l]) + std::size_t(len[r]);
    Token m;
    if (id[l] >= 0 && id[r] >= 0) {
      if (const MergeResult* c = ws.spm_pairs.find(id[l], id[r])) {
        m = c->result;
      } else {
        m = lookup(std::size_t(start[l]), size);
        ws.spm_pairs.add(id[l], id[r], 0, m);
      }
    } else {
      m = lookup(std::size_t(start[l]), size);
    }
    if (m < 0) return;
    const std::int32_t rank = score_rank[std::size_t(m)];
    qsize[l] = static_cast<std::int32_t>(size);
    qrank[l] = rank;
    qid[l] = m;
    q.push(rank, l);
  };
  for (std::int32_t i = 0; i + 1 < n; ++i) push(i, i + 1);

  std::int32_t rank, l;
  while (q.pop(rank, l)) {
    const std::int32_t r = next[l];
    if (len[l] == 0 || r >= n || len[l] + len[r] != qsize[l] || rank != qrank[l]) continue;
    len[l] += len[r];
    len[r] = 0;
    id[l] = qid[l];
    next[l] = next[r];
    if (next[l] < n) prev[next[l]] = l;
    if (prev[l] >= 0) push(prev[l], l);
    if (next[l] < n) push(l, next[l]);
  }
  for (std::int32_t i = 0; i < n; i = next[i])
    out.push_back({id[i], std::size_t(start[i]), std::size_t(len[i])});
}

}  // namespace vireo::detail
