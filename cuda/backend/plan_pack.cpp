// Plan packing (plan_pack.hpp): the byte layout of the plan arrays and their upload.
#include "backend/plan_pack.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "backend/limits.hpp"

namespace vireo::detail::cuda_backend {
namespace {

/// Byte offsets of the plan arrays in one buffer, for n token slots (the step's tokens padded
/// to a graph bucket) and n_tiles prefill tiles. block_ids comes last: its length varies.
struct PlanLayout {
  std::size_t tokens, positions, kv_len, bt_off, dec_list, pf_list, tiles, logit_rows, slots, block_ids;
  PlanLayout(int n, int n_tiles) {
    std::size_t o = 0;
    auto take = [&o](std::size_t bytes) {
      std::size_t at = o;
      o += (bytes + 15) / 16 * 16;
      return at;
    };
    const std::size_t i4 = std::size_t(n) * 4;
    tokens = take(i4);
    positions = take(i4);
    kv_len = take(i4);
    bt_off = take(i4);
    dec_list = take(i4);
    pf_list = take(i4);
    tiles = take(std::size_t(std::max(n_tiles, 1)) * 12);
    logit_rows = take(i4);
    slots = take(std::size_t(n) * 8);
    block_ids = o;
  }
};

}  // namespace

void PlanBuffers::allocate() {
  const PlanLayout max_layout(kMaxTokens, kMaxTokens);
  plan_bytes_ = max_layout.block_ids + std::size_t(kMaxBlockIds) * 4;
  plan_dev_ = cuda::DeviceBuffer(plan_bytes_);
  plan_host_ = cuda::PinnedBuffer(plan_bytes_);
  const PlanLayout graph_layout(kMaxGraphTokens, 1);
  graph_plan_bytes_ = graph_layout.block_ids + std::size_t(kMaxBlockIds) * 4;
  graph_plan_dev_ = cuda::DeviceBuffer(graph_plan_bytes_);
}

PackedPlan PlanBuffers::pack(const ForwardPlan& plan, bool graphs_on, bool f32, int n_kv_heads, int n_sms,
                             void* stream) {
  const int T = int(plan.tokens.size());
  // Which sequences have a single new token (decode) and which a chunk (prefill).
  const int S = int(plan.block_indptr.size()) - 1;
  std::vector<int> per_seq(static_cast<std::size_t>(std::max(S, 0)), 0);
  for (int t = 0; t < T; ++t) ++per_seq[std::size_t(plan.seq_of[std::size_t(t)])];
  const bool all_decode = std::all_of(per_seq.begin(), per_seq.end(), [](int c) { return c == 1; });
  const int R = int(plan.logit_rows.size());
  const bool graph = graphs_on && all_decode && T <= kMaxGraphTokens;
  int n = T;
  if (graph) {
    n = 1;
    while (n < T) n *= 2;
  }

  std::vector<int> dec, pf, tiles;
  if (f32 || all_decode) {
    for (int t = 0; t < n; ++t) dec.push_back(t);
  } else {
    std::vector<std::vector<int>> chunk(static_cast<std::size_t>(S));
    for (int t = 0; t < T; ++t) {
      const int sq = plan.seq_of[std::size_t(t)];
      if (per_seq[std::size_t(sq)] == 1)
        dec.push_back(t);
      else
        chunk[std::size_t(sq)].push_back(t);
    }
    for (auto& c : chunk)
      for (std::size_t i = 0; i < c.size(); i += cuda::prefill_tile()) {
        tiles.push_back(int(pf.size()));
        tiles.push_back(int(std::min<std::size_t>(cuda::prefill_tile(), c.size() - i)));
        tiles.push_back(0);
        for (std::size_t j = i; j < std::min(c.size(), i + cuda::prefill_tile()); ++j) pf.push_back(c[j]);
      }
  }
  const int n_tiles = int(tiles.size() / 3);
  const PlanLayout lay = graph ? PlanLayout(kMaxGraphTokens, 1) : PlanLayout(n, n_tiles);
  char* h = static_cast<char*>(plan_host_.get());
  auto i32 = [&](std::size_t off) { return reinterpret_cast<std::int32_t*>(h + off); };
  for (int t = 0; t < n; ++t) {
    const bool real = t < T;
    i32(lay.tokens)[t] = real ? plan.tokens[std::size_t(t)] : 0;
    i32(lay.positions)[t] = real ? plan.positions[std::size_t(t)] : 0;
    i32(lay.kv_len)[t] = real ? plan.positions[std::size_t(t)] + 1 : 0;
    i32(lay.bt_off)[t] = real ? plan.block_indptr[std::size_t(plan.seq_of[std::size_t(t)])] : 0;
    reinterpret_cast<std::int64_t*>(h + lay.slots)[t] = real ? plan.slots[std::size_t(t)] : -1;
  }
  std::copy(dec.begin(), dec.end(), i32(lay.dec_list));
  std::copy(pf.begin(), pf.end(), i32(lay.pf_list));
  std::copy(tiles.begin(), tiles.end(), i32(lay.tiles));
  const int rows_run = graph ? n : R;  // a graph always projects its whole bucket
  for (int r = 0; r < rows_run; ++r) i32(lay.logit_rows)[r] = r < R ? plan.logit_rows[std::size_t(r)] : 0;
  std::copy(plan.block_ids.begin(), plan.block_ids.end(), i32(lay.block_ids));
  const std::size_t bytes = lay.block_ids + plan.block_ids.size() * 4;
  cuda::DeviceBuffer& dplan = graph ? graph_plan_dev_ : plan_dev_;
  cuda::check(cudaMemcpyAsync(dplan.get(), h, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream)),
              "plan upload");

  PackedPlan out;
  out.graph = graph;
  out.logit_rows = R;
  Step& st = out.step;
  st.n = n;
  st.n_dec = int(dec.size());
  st.n_tiles = n_tiles;
  st.rows = rows_run;
  // Split-KV count from the longest decode context, rounded up to a power of two so a
  // captured graph (keyed by it) serves a whole range of context lengths.
  int max_kv = 1;
  for (int t : dec)
    if (t < T) max_kv = std::max(max_kv, plan.positions[std::size_t(t)] + 1);
  int kv_bucket = 1;
  while (kv_bucket < max_kv) kv_bucket *= 2;
  st.splits = cuda::decode_attention_splits(st.n_dec, n_kv_heads, n_sms, kv_bucket);
  char* d = static_cast<char*>(dplan.get());
  auto d32 = [&](std::size_t off) { return reinterpret_cast<std::int32_t*>(d + off); };
  st.tokens = d32(lay.tokens);
  st.positions = d32(lay.positions);
  st.kv_len = d32(lay.kv_len);
  st.bt_off = d32(lay.bt_off);
  st.dec_list = d32(lay.dec_list);
  st.pf_list = d32(lay.pf_list);
  st.tiles = d32(lay.tiles);
  st.logit_rows = d32(lay.logit_rows);
  st.block_ids = d32(lay.block_ids);
  st.slots = reinterpret_cast<const std::int64_t*>(d + lay.slots);
  st.block_size = plan.block_size;
  return out;
}

}  // namespace vireo::detail::cuda_backend
