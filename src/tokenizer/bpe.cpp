// Byte-level BPE and SentencePiece merge loops (see bpe.hpp for the algorithms).
#include "tokenizer/bpe.hpp"

#include <algorithm>

#include "tokenizer/unicode.hpp"

namespace vireo::detail {
namespace {

constexpr Token kDead = -2;

// std::push_heap builds a max-heap; "less" means "pops later".
struct SpmLater {
  bool operator()(const MergeWorkspace::Pair& a, const MergeWorkspace::Pair& b) const noexcept {
    if (a.score != b.score) return a.score < b.score;
    return a.left > b.left;
  }
};

}  // namespace

void bpe_merge(const MergeTable& merges, MergeWorkspace& ws) {
  auto& ids = ws.ids;
  const auto n = static_cast<std::int32_t>(ids.size());
  if (n < 2) return;
  auto& prev = ws.prev;
  auto& next = ws.next;
  prev.resize(n);
  next.resize(n);
  for (std::int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1;  // n means "none"
  }
  // Heap entries are (rank << 32 | left index) in one 64-bit key: 8 bytes, compared as
  // integers, popping the lowest rank and then the leftmost position. The right symbol is
  // always next[left]; since every merge rank names exactly one token pair, an entry is
  // current exactly when left is alive, has a right neighbour, and their pair has that rank.
  auto& heap = ws.heap;
  heap.clear();
  auto key = [](std::int32_t rank, std::int32_t left) {
    return (std::uint64_t(std::uint32_t(rank)) << 32) | std::uint32_t(left);
  };
  for (std::int32_t i = 0; i + 1 < n; ++i) {
    if (const MergeResult* m = merges.find(ids[i], ids[i + 1])) heap.push_back(key(m->rank, i));
  }
  std::make_heap(heap.begin(), heap.end(), std::greater<>{});
  auto push = [&](std::int32_t l) {
    if (const MergeResult* m = merges.find(ids[l], ids[next[l]])) {
      heap.push_back(key(m->rank, l));
      std::push_heap(heap.begin(), heap.end(), std::greater<>{});
    }
  };
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
    const std::uint64_t k = heap.back();
    heap.pop_back();
    const auto rank = static_cast<std::int32_t>(k >> 32);
    const auto left = static_cast<std::int32_t>(k & 0xFFFFFFFFu);
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

void spm_merge(std::string_view text, const TokenMap& mergeable, const std::vector<float>& scores,
               MergeWorkspace& ws, std::vector<SpmSymbol>& out) {
  auto& start = ws.start;
  auto& len = ws.len;
  start.clear();
  len.clear();
  for (std::size_t i = 0; i < text.size();) {
    std::uint32_t cp;
    const std::size_t l = utf8_decode(text, i, cp);
    start.push_back(static_cast<std::int32_t>(i));
    len.push_back(static_cast<std::int32_t>(l));
    i += l;
  }
  const auto n = static_cast<std::int32_t>(start.size());
  auto& prev = ws.prev;
  auto& next = ws.next;
  prev.resize(n);
  next.resize(n);
  for (std::int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1;
  }
  auto& heap = ws.spm_heap;
  heap.clear();
  auto push = [&](std::int32_t l, std::int32_t r) {
    const std::size_t size = std::size_t(len[l]) + std::size_t(len[r]);
    auto it = mergeable.find(text.substr(std::size_t(start[l]), size));
    if (it == mergeable.end()) return;
    heap.push_back({scores[std::size_t(it->second)], l, r, size});
    std::push_heap(heap.begin(), heap.end(), SpmLater{});
  };
  for (std::int32_t i = 0; i + 1 < n; ++i) push(i, i + 1);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), SpmLater{});
    const MergeWorkspace::Pair p = heap.back();
    heap.pop_back();
    // Symbols only grow to the right and a dead symbol has length 0, so a pair is current
    // exactly when both are alive, adjacent, and their lengths still add up to the queued size.
    if (len[p.left] == 0 || len[p.right] == 0 || next[p.left] != p.right ||
        std::size_t(len[p.left]) + std::size_t(len[p.right]) != p.size)
      continue;
    len[p.left] += len[p.right];
    len[p.right] = 0;
    next[p.left] = next[p.right];
    if (next[p.left] < n) prev[next[p.left]] = p.left;
    if (prev[p.left] >= 0) push(prev[p.left], p.left);
    if (next[p.left] < n) push(p.left, next[p.left]);
  }
  for (std::int32_t i = 0; i < n; i = next[i]) {
    const auto s = std::size_t(start[i]);
    const auto l = std::size_t(len[i]);
    auto it = mergeable.find(text.substr(s, l));
    out.push_back({it == mergeable.end() ? Token(-1) : it->second, s, l});
  }
}

}  // namespace vireo::detail
