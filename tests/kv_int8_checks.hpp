// Model-level checks of KVPrecision::Int8 shared by the CPU (test_kv_int8.cpp) and CUDA
// (test_cuda_kv_int8.cpp) tests: the logits of a fixed token sequence under a KV precision,
// and the cache operations that must carry int8 values and scales intact.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "test_util.hpp"
#include "vireo/batch.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/model.hpp"

namespace vireo::test {

inline const std::vector<Token> kInt8Prompt = {1, 5, 9, 200, 17, 17, 3, 99, 100, 101, 250, 7, 8, 9, 10, 11, 12, 13, 14, 15};
inline const std::vector<Token> kInt8Next = {42, 7, 300, 3, 3, 150, 99, 1};

/// The logits rows of: a prefill of `prompt` (every row), then one decode step per token of
/// `next` (fixed tokens, so both precisions see the same inputs whatever their argmax).
inline std::vector<std::vector<float>> kv_logit_rows(const Model& m, const std::vector<Token>& prompt,
                                                     const std::vector<Token>& next, KVPrecision p,
                                                     std::int64_t num_blocks = 64, int block_size = 8) {
  KVCache cache(m, {.num_blocks = num_blocks, .block_size = block_size, .precision = p});
  const SeqId s = cache.add_sequence();
  Batch b;
  b.add(s, prompt, All);
  std::vector<std::vector<float>> rows;
  Logits lg;
  for (std::size_t i = 0; i <= next.size(); ++i) {
    m.forward(b, cache, lg);
    for (std::size_t r = 0; r < lg.rows(); ++r) rows.emplace_back(lg.row(r).begin(), lg.row(r).end());
    if (i == next.size()) break;
    b.clear();
    b.add(s, next[i], true);
  }
  return rows;
}

/// The model's own greedy continuation of `prompt`, n tokens (the reference path's choices
/// that the int8-KV and 8-bit-activation tests feed to both paths).
inline std::vector<Token> greedy_continuation(const Model& m, const std::vector<Token>& prompt, int n) {
  std::vector<Token> next;
  KVCache c(m, {.num_blocks = 64, .block_size = 8});
  const SeqId s = c.add_sequence();
  Batch b;
  b.add(s, prompt, Last);
  for (int i = 0; i < n; ++i) {
    Logits lg = m.forward(b, c);
    next.push_back(Token(std::max_element(lg.row(0).begin(), lg.row(0).end()) - lg.row(0).begin()));
    b.clear();
    b.add(s, next.back(), true);
  }
  return next;
}

/// How many of `next` are the argmax of their row of `rows` (the kv_logit_rows of prompt and
/// next: row prompt_len - 1 + i predicts next[i]).
inline std::size_t greedy_agreement(const std::vector<std::vector<float>>& rows, std::size_t prompt_len,
                                    const std::vector<Token>& next) {
  std::size_t same = 0;
  for (std::size_t i = 0; i < next.size(); ++i) {
    const auto& r = rows[prompt_len - 1 + i];
    same += Token(std::max_element(r.begin(), r.end()) - r.begin()) == next[i];
  }
  return same;
}

/// With an int8 cache: a batched forward equals the separate ones (a row's quantization
/// depends on that row alone; within batch_tol, the model's own batching noise plus a value
/// that lands on the other side of a rounding boundary), a fork's copied blocks give its
/// parent's logits (within fork_tol), and a sequence swapped out and in gives a fresh
/// cache's (within swap_tol).
inline void check_int8_cache_ops(const Model& m, float batch_tol, float fork_tol, float swap_tol) {
  const std::vector<Token>& prompt = kInt8Prompt;
  KVCache c(m, {.num_blocks = 64, .block_size = 8, .precision = KVPrecision::Int8});
  const SeqId a = c.add_sequence(), b = c.add_sequence();
  Batch batch;
  batch.add(a, prompt, Last);
  batch.add(b, std::vector<Token>(prompt.begin(), prompt.begin() + 7), Last);
  Logits both = m.forward(batch, c);
  for (auto [len, row] : {std::pair{prompt.size(), 0}, std::pair{std::size_t(7), 1}}) {
    KVCache one(m, {.num_blocks = 64, .block_size = 8, .precision = KVPrecision::Int8});
    Batch bb;
    bb.add(one.add_sequence(), std::vector<Token>(prompt.begin(), prompt.begin() + std::ptrdiff_t(len)), Last);
    Logits alone = m.forward(bb, one);
    CHECK(max_abs_diff(alone.row(0), both.row(std::size_t(row))) <= batch_tol);
  }
  const SeqId f = c.fork(a);
  c.swap_out(b);
  c.swap_in(b);
  Batch step;
  step.add(a, Token(42), true);
  step.add(f, Token(42), true);
  step.add(b, Token(43), true);
  Logits lg = m.forward(step, c);
  CHECK(max_abs_diff(lg.row(0), lg.row(1)) <= fork_tol);  // the fork's copied int8 blocks and scales
  KVCache fresh(m, {.num_blocks = 64, .block_size = 8, .precision = KVPrecision::Int8});
  const SeqId nb = fresh.add_sequence();
  Batch pb;
  pb.add(nb, std::vector<Token>(prompt.begin(), prompt.begin() + 7), Want::None);
  m.forward(pb, fresh);
  Batch sb;
  sb.add(nb, Token(43), true);
  Logits lf = m.forward(sb, fresh);
  CHECK(max_abs_diff(lf.row(0), lg.row(2)) <= swap_tol);  // swapped out and in, against a fresh cache
}

}  // namespace vireo::test
