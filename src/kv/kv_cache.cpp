// KVCache: the public paged KV cache, a thin layer joining the BlockManager (which blocks
// hold which tokens) and the backend's KVStorage (the K/V bytes).
//
// Sizing: geometry from the model (layers, KV heads, head dim, the backend's KV dtype);
// blocks = opts.num_blocks if > 0, else memory_budget_bytes / bytes_per_block.
// Swap: swap_out copies the sequence's blocks, in table order, into one host buffer of
// n_blocks * bytes_per_block and then releases them; swap_in takes fresh blocks and writes
// the buffer back. Every call validates first so a throw leaves the cache as it was.
#include "vireo/kv_cache.hpp"

#include <fmt/format.h>

#include <limits>

#include "kv/kv_cache_impl.hpp"
#include "model/fingerprint.hpp"
#include "model/access.hpp"
#include "model/model_impl.hpp"
#include "vireo/error.hpp"
#include "vireo/model.hpp"

namespace vireo {

KVCache::KVCache(const Model& model, KVCacheOptions opts) {
  const ModelConfig& cfg = model.config();
  detail::KVGeometry geo;
  geo.n_layers = cfg.n_layers;
  geo.n_kv_heads = cfg.n_kv_heads;
  geo.head_dim = cfg.head_dim;
  geo.block_size = opts.block_size;
  geo.dtype = model.kv_dtype();
  geo.int8 = opts.precision == KVPrecision::Int8;
  if (opts.block_size < 1)
    throw Error(ErrorCode::InvalidArgument, fmt::format("KV block size {} must be at least 1", opts.block_size));
  if (opts.num_blocks < 0)
    throw Error(ErrorCode::InvalidArgument, fmt::format("KV cache num_blocks {} is negative", opts.num_blocks));
  if (geo.n_layers < 1 || geo.n_kv_heads < 1 || geo.head_dim < 1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("model shape has no KV: {} layers, {} KV heads, head dim {}", geo.n_layers,
                            geo.n_kv_heads, geo.head_dim));
  const std::size_t bpb = geo.bytes_per_block();
  const std::int64_t n = opts.num_blocks > 0 ? opts.num_blocks : std::int64_t(opts.memory_budget_bytes / bpb);
  if (n < 1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("KV memory budget of {} bytes is below one block of {} bytes ({} tokens x {} bytes per "
                            "token)",
                            opts.memory_budget_bytes, bpb, opts.block_size, geo.bytes_per_token()));
  if (n > std::numeric_limits<std::int32_t>::max())
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("KV cache of {} blocks exceeds the maximum of {} blocks", n,
                            std::numeric_limits<std::int32_t>::max()));
  geo.num_blocks = n;

  auto impl = std::make_unique<detail::KVCacheImpl>();
  impl->geo = geo;
  impl->storage = vireo::detail::Access::model(model).backend->make_kv_storage(geo);
  impl->blocks = std::make_unique<detail::BlockManager>(n, opts.block_size, opts.prefix_caching);
  impl->model_identity = &vireo::detail::Access::model(model);
  impl->model_fingerprint = detail::model_fingerprint(vireo::detail::Access::model(model));
  impl->vocab = cfg.vocab_size;
  impl_ = std::move(impl);
}

KVCache::KVCache(KVCache&&) noexcept = default;
KVCache& KVCache::operator=(KVCache&&) noexcept = default;
KVCache::~KVCache() = default;

SeqId KVCache::add_sequence() { return impl_->blocks->add_sequence(); }

SeqId KVCache::add_sequence(std::span<const Token> prompt, std::int64_t* reused_tokens) {
  return impl_->blocks->add_sequence(prompt, reused_tokens);
}

SeqId KVCache::fork(SeqId seq) { return impl_->blocks->fork(seq); }

void KVCache::truncate(SeqId seq, std::int64_t length) { impl_->blocks->truncate(seq, length); }

void KVCache::compact(SeqId seq, std::int64_t from, std::span<const std::int32_t> keep) {
  if (impl_->blocks->contains(seq) && impl_->blocks->is_swapped(seq))
    throw Error(ErrorCode::InvalidArgument, fmt::format("compact: sequence {} is swapped out", seq));
  impl_->blocks->compact(seq, from, keep, [&](std::span<const std::pair<std::int64_t, std::int64_t>> moves) {
    impl_->storage->copy_slots(moves);
  });
}

void KVCache::remove(SeqId seq) {
  impl_->blocks->remove(seq);
  impl_->swapped.erase(seq);  // a swapped sequence's host copy goes with it
}

bool KVCache::contains(SeqId seq) const noexcept { return impl_->blocks->contains(seq); }
std::int64_t KVCache::length(SeqId seq) const { return impl_->blocks->length(seq); }
std::vector<SeqId> KVCache::sequences() const { return impl_->blocks->sequences(); }
std::span<const Token> KVCache::tokens(SeqId seq) const { return impl_->blocks->tokens(seq); }
bool KVCache::is_swapped(SeqId seq) const { return impl_->blocks->is_swapped(seq); }

void KVCache::swap_out(SeqId seq) {
  auto& bm = *impl_->blocks;
  if (bm.is_swapped(seq))  // also rejects an unknown id
    throw Error(ErrorCode::InvalidArgument, fmt::format("swap_out: sequence {} is already swapped out", seq));
  const auto table = bm.block_table(seq);
  const std::size_t bpb = impl_->geo.bytes_per_block();
  std::shared_ptr<void> host = impl_->storage->alloc_host(table.size() * bpb);
  auto* dst = static_cast<unsigned char*>(host.get());
  for (std::size_t i = 0; i < table.size(); ++i) impl_->storage->read_block(table[i], dst + i * bpb);
  impl_->swapped[seq] = host;
  bm.swap_out(seq);  // cannot fail: the sequence is known and resident
}

void KVCache::swap_in(SeqId seq) {
  auto& bm = *impl_->blocks;
  if (!bm.is_swapped(seq))
    throw Error(ErrorCode::InvalidArgument, fmt::format("swap_in: sequence {} is not swapped out", seq));
  auto it = impl_->swapped.find(seq);
  if (it == impl_->swapped.end())
    throw Error(ErrorCode::Internal, fmt::format("swap_in: no host copy of swapped sequence {}", seq));
  const std::vector<std::int32_t> ids = bm.swap_in(seq);  // CacheFull leaves it swapped
  const std::size_t bpb = impl_->geo.bytes_per_block();
  const auto* src = static_cast<const unsigned char*>(it->second.get());
  try {
    for (std::size_t i = 0; i < ids.size(); ++i) impl_->storage->write_block(ids[i], src + i * bpb);
  } catch (...) {
    bm.swap_out(seq);  // give the fresh blocks back; the host copy is intact
    throw;
  }
  impl_->swapped.erase(it);
}

std::size_t KVCache::bytes_per_token() const noexcept { return impl_->geo.bytes_per_token(); }
KVPrecision KVCache::precision() const noexcept { return impl_->geo.int8 ? KVPrecision::Int8 : KVPrecision::Model; }
std::size_t KVCache::bytes_per_block() const noexcept { return impl_->geo.bytes_per_block(); }
int KVCache::block_size() const noexcept { return impl_->geo.block_size; }
std::int64_t KVCache::num_blocks() const noexcept { return impl_->geo.num_blocks; }

std::int64_t KVCache::blocks_needed(SeqId seq, std::int64_t n_tokens) const {
  return impl_->blocks->blocks_needed(seq, n_tokens);
}

std::int64_t KVCache::available_blocks() const noexcept { return impl_->blocks->available_blocks(); }

KVCacheStats KVCache::stats() const {
  KVCacheStats st = impl_->blocks->stats();
  const std::size_t bpb = impl_->geo.bytes_per_block();
  st.bytes_total = std::size_t(st.blocks_total) * bpb;
  st.bytes_used = std::size_t(st.blocks_used) * bpb;
  return st;
}

}  // namespace vireo
