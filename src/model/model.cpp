// Model: loading (GGUF or random weights) and the device-independent half of forward():
// validate the batch, reserve KV slots for every token (all sequences or none), run the
// copy-on-write copies, build the ForwardPlan, and let the backend run the network. If
// anything throws after slots were reserved, every sequence is truncated back, so the
// cache holds exactly what it held before the call.
#include "vireo/model.hpp"

#include <fmt/format.h>

#include <unordered_map>

#include "kv/kv_cache_impl.hpp"
#include "model/loader.hpp"
#include "model/model_impl.hpp"
#include "vireo/error.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/log.hpp"

namespace vireo {
using detail::ModelImpl;

std::int64_t ModelConfig::n_params() const noexcept {
  std::int64_t d = d_model, qd = std::int64_t(n_heads) * head_dim, kvd = std::int64_t(n_kv_heads) * head_dim;
  std::int64_t per_layer = d * qd * 2 + d * kvd * 2 + 3 * d * std::int64_t(d_ff) + 2 * d;
  if (qkv_bias) per_layer += qd + 2 * kvd;
  return std::int64_t(n_layers) * per_layer + std::int64_t(vocab_size) * d * (tied_embeddings ? 1 : 2) + d;
}

Model::Model(std::unique_ptr<ModelImpl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

const ModelConfig& Model::config() const noexcept { return impl_->cfg; }
bool Model::has_tokenizer() const noexcept { return impl_->tokenizer != nullptr; }
const Tokenizer& Model::tokenizer() const {
  if (!impl_->tokenizer) throw Error(ErrorCode::InvalidArgument, "this model has no tokenizer (random weights)");
  return *impl_->tokenizer;
}
Device Model::device() const noexcept { return impl_->device; }
DType Model::kv_dtype() const noexcept { return impl_->backend->kv_dtype(); }
std::size_t Model::weight_bytes() const noexcept { return impl_->backend->weight_bytes(); }

namespace detail {

void attach_backend(ModelImpl& m) {
  if (m.opts.device.kind == DeviceKind::CUDA) {
#ifdef VIREO_WITH_CUDA
    m.backend = make_cuda_backend(m.cfg, m.weights, m.opts.device.index, m.opts.dtype);
    m.device = m.opts.device;
    return;
#else
    throw Error(ErrorCode::Unsupported, "this build of vireo has no CUDA backend (configure with the CUDA toolkit)");
#endif
  }
  m.backend = make_cpu_backend(m.cfg, m.weights, m.opts.n_threads);
  m.device = Device::cpu();
}

}  // namespace detail

Model Model::load(const std::filesystem::path& path, ModelOptions opts) {
  auto m = std::make_unique<ModelImpl>();
  m->opts = opts;
  m->file.emplace(gguf::File::open(path));
  if (opts.progress) opts.progress(0.1f);
  m->cfg = detail::config_from_gguf(*m->file);
  m->tokenizer = std::make_unique<Tokenizer>(Tokenizer::from_gguf(*m->file));
  if (m->tokenizer->vocab_size() != m->cfg.vocab_size)
    throw Error(ErrorCode::InvalidModel, fmt::format("vocabulary has {} tokens but the embedding has {} rows",
                                                     m->tokenizer->vocab_size(), m->cfg.vocab_size));
  m->weights = detail::map_weights(*m->file, m->cfg);
  if (opts.cancel && opts.cancel->load()) throw Error(ErrorCode::Cancelled, "model load cancelled");
  if (opts.progress) opts.progress(0.5f);
  detail::attach_backend(*m);
  if (opts.progress) opts.progress(1.0f);
  return Model(std::move(m));
}

void Model::forward(const Batch& batch, KVCache& cache, Logits& out) const {
  auto& kvi = cache.impl();
  if (kvi.model_identity != impl_.get())
    throw Error(ErrorCode::InvalidArgument, "the KV cache was created for a different model");
  auto& bm = *kvi.blocks;
  const auto entries = batch.entries();
  const int vocab = impl_->cfg.vocab_size;
  out.reset(vocab, batch.num_logit_rows());
  if (entries.empty()) return;

  // Validate everything before touching the cache.
  detail::ForwardPlan plan;
  plan.block_size = bm.block_size();
  std::vector<SeqId> seqs;
  std::unordered_map<SeqId, std::int32_t> seq_index;
  std::vector<std::vector<Token>> seq_tokens;
  plan.seq_of.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    if (e.token < 0 || e.token >= vocab)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("token {} at batch index {} is out of range for a vocabulary of {}", e.token, i, vocab));
    auto [it, inserted] = seq_index.try_emplace(e.seq, std::int32_t(seqs.size()));
    if (inserted) {
      if (!bm.contains(e.seq))
        throw Error(ErrorCode::InvalidArgument, fmt::format("sequence {} (batch index {}) is not in the cache", e.seq, i));
      if (bm.is_swapped(e.seq))
        throw Error(ErrorCode::InvalidArgument, fmt::format("sequence {} is swapped out; swap_in() it first", e.seq));
      seqs.push_back(e.seq);
      seq_tokens.emplace_back();
    }
    seq_tokens[std::size_t(it->second)].push_back(e.token);
    plan.seq_of.push_back(it->second);
  }
  std::int64_t needed = 0;
  std::vector<std::int64_t> old_len(seqs.size());
  for (std::size_t s = 0; s < seqs.size(); ++s) {
    old_len[s] = bm.length(seqs[s]);
    if (old_len[s] + std::int64_t(seq_tokens[s].size()) > impl_->cfg.context_length)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("sequence {} would reach {} tokens, past the model's context length {}", seqs[s],
                              old_len[s] + std::int64_t(seq_tokens[s].size()), impl_->cfg.context_length));
    needed += bm.blocks_needed(seqs[s], std::int64_t(seq_tokens[s].size()));
  }
  if (needed > bm.available_blocks())
    throw Error(ErrorCode::CacheFull,
                fmt::format("step needs {} more KV blocks but only {} of {} are available ({} tokens per block)", needed,
                            bm.available_blocks(), bm.num_blocks(), bm.block_size()));

  std::size_t appended = 0;
  auto rollback = [&] {
    for (std::size_t s = 0; s < appended; ++s) bm.rollback(seqs[s], old_len[s]);
  };
  try {
    std::vector<std::vector<std::int64_t>> slots(seqs.size());
    std::vector<detail::BlockManager::Copy> copies;
    for (std::size_t s = 0; s < seqs.size(); ++s) {
      copies.clear();
      bm.append(seqs[s], seq_tokens[s], slots[s], copies);
      ++appended;
      for (const auto& c : copies) kvi.storage->copy_block(c.src, c.dst);
    }
    // Per-token plan in batch order.
    std::vector<std::size_t> next(seqs.size(), 0);
    plan.tokens.reserve(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const std::size_t s = std::size_t(plan.seq_of[i]);
      const std::size_t j = next[s]++;
      plan.tokens.push_back(entries[i].token);
      plan.positions.push_back(std::int32_t(old_len[s] + std::int64_t(j)));
      plan.slots.push_back(slots[s][j]);
      if (entries[i].logits) {
        out.set_row_info(plan.logit_rows.size(), entries[i].seq, i);
        plan.logit_rows.push_back(std::int32_t(i));
      }
    }
    plan.block_indptr.push_back(0);
    for (std::size_t s = 0; s < seqs.size(); ++s) {
      plan.ctx_len.push_back(bm.length(seqs[s]));
      auto table = bm.block_table(seqs[s]);
      plan.block_ids.insert(plan.block_ids.end(), table.begin(), table.end());
      plan.block_indptr.push_back(std::int32_t(plan.block_ids.size()));
    }
    impl_->backend->forward(plan, *kvi.storage, out, impl_->opts.cancel);
  } catch (...) {
    rollback();
    throw;
  }
}

Logits Model::forward(const Batch& batch, KVCache& cache) const {
  Logits out;
  forward(batch, cache, out);
  return out;
}

}  // namespace vireo
