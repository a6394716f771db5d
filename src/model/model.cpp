// Model: loading (GGUF or random weights) and the device-independent half of forward():
// validate the batch, reserve KV slots for every token (all sequences or none), run the
// copy-on-write copies, build the ForwardPlan, and let the backend run the network. If
// anything throws after slots were reserved, every sequence is truncated back, so the
// cache holds exactly what it held before the call.
#include "vireo/model.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <unordered_map>

#include "gguf/check_finite.hpp"
#include "kv/kv_cache_impl.hpp"
#include "model/access.hpp"
#include "model/arch/arch.hpp"
#include "model/device_fit.hpp"
#include "model/loader.hpp"
#include "model/patterns.hpp"
#include "model/model_impl.hpp"
#include "platform/path.hpp"
#include "vireo/error.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/log.hpp"

namespace vireo {
using detail::ModelImpl;

std::int64_t ModelConfig::n_params() const noexcept {
  std::int64_t d = d_model, qd = std::int64_t(n_heads) * head_dim, kvd = std::int64_t(n_kv_heads) * head_dim;
  std::int64_t per_layer = d * qd * 2 + d * kvd * 2 + 3 * d * std::int64_t(d_ff) + 2 * d;
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
void* Model::cuda_stream() const noexcept { return impl_->backend->stream(); }
std::size_t Model::weight_bytes() const noexcept { return impl_->backend->weight_bytes(); }

namespace detail {

void attach_backend(ModelImpl& m, const std::function<void(float)>& progress) {
  if (m.opts.device.kind == DeviceKind::CUDA) {
    // The device must run this build's kernels and hold the weights: checked before upload.
    if (std::optional<Error> unfit = cuda_unfit(m)) {
      if (!m.opts.fallback_to_cpu) throw *unfit;
      log(LogLevel::Warn, fmt::format("loading on the CPU instead of cuda:{}: {}", m.opts.device.index, unfit->what()));
    } else {
#ifdef VIREO_WITH_CUDA
      // The CUDA backend runs the pre-norm attention + gated-MLP block as one fused,
      // graph-captured step; a network of another shape is refused, naming what differs.
      m.backend = make_cuda_backend(m.cfg, match_decoder_stack(m.net, "the CUDA backend"), m.opts.device.index,
                                    m.opts.dtype, m.opts.cuda_stream, m.opts.gpu_quantized, progress);
      m.device = m.opts.device;
      return;
#endif
    }
  }
  m.backend = make_cpu_backend(m.net, m.opts.n_threads, m.opts.cpu_quantize_activations);
  m.device = Device::cpu();
}

}  // namespace detail

Model Model::load(const std::filesystem::path& path, ModelOptions opts) {
  return Model::load_impl_(gguf::File::open(path), platform::path_to_utf8(path), std::move(opts));
}

Model Model::load(std::span<const std::byte> image, ModelOptions opts) {
  if (image.empty()) throw Error(ErrorCode::InvalidArgument, "Model::load: the GGUF image in memory is empty");
  return Model::load_impl_(gguf::File::from_bytes(std::vector<std::byte>(image.begin(), image.end())),
                           fmt::format("<GGUF image of {} bytes in memory>", image.size()), std::move(opts));
}

Model Model::load_impl_(gguf::File file, const std::string& source, ModelOptions opts) {
  auto m = std::make_unique<ModelImpl>();
  m->opts = opts;
  m->file.emplace(std::move(file));
  // Progress in [lo, hi] for one stage, then a cancellation check. The stages that take
  // time report as they go: the weight check (per tensor) and the GPU upload (per layer).
  const bool checking = opts.check_weights;
  const bool to_gpu = opts.device.kind == DeviceKind::CUDA;
  auto stage = [&opts](float lo, float hi) {
    return [&opts, lo, hi](float f) {
      if (opts.progress) opts.progress(lo + (hi - lo) * f);
      if (opts.cancel && opts.cancel->load()) throw Error(ErrorCode::Cancelled, "model load cancelled");
    };
  };
  const float check_end = checking ? (to_gpu ? 0.45f : 0.9f) : 0.05f;
  stage(0.0f, 0.02f)(1.0f);  // the file is open and its directory validated
  if (checking) gguf::check_finite(*m->file, source, std::numeric_limits<float>::infinity(), stage(0.02f, check_end));
  m->net = detail::describe_network(*m->file, m->store, m->cfg);
  m->tokenizer = std::make_unique<Tokenizer>(Tokenizer::from_gguf(*m->file));
  if (m->tokenizer->vocab_size() != m->cfg.vocab_size)
    throw Error(ErrorCode::InvalidModel, fmt::format("vocabulary has {} tokens but the embedding has {} rows",
                                                     m->tokenizer->vocab_size(), m->cfg.vocab_size));
  stage(check_end, check_end + 0.05f)(1.0f);  // network described, tokenizer built
  detail::attach_backend(*m, stage(check_end + 0.05f, 1.0f));
  if (opts.progress) opts.progress(1.0f);
  return Model(std::move(m));
}

namespace {

// Validate `batch` against the model and cache, reserve KV slots for every token (all
// sequences or none), run the copy-on-write copies and build the ForwardPlan; then call
// run(plan, storage). If anything throws after the reservation, every sequence is rolled
// back to its old length. row_info(i, seq, batch_index) is told about each logits row.
template <class Run, class RowInfo>
void run_step(const detail::ModelImpl& m, const Batch& batch, KVCache& cache, RowInfo&& row_info, Run&& run) {
  auto& kvi = vireo::detail::Access::cache(cache);
  if (kvi.model_identity != &m)
    throw Error(ErrorCode::InvalidArgument, "the KV cache was created for a different model");
  auto& bm = *kvi.blocks;
  const auto entries = batch.entries();
  const int vocab = m.cfg.vocab_size;
  if (entries.empty()) return;

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
  // Token trees: each tree sequence's parents, as indices into its own tokens.
  std::vector<std::vector<std::int32_t>> tree_parent(seqs.size());
  bool any_tree = false;
  {
    std::vector<int> kind(seqs.size(), 0);  // 0 unseen, 1 chain, 2 tree
    std::vector<std::int32_t> local(entries.size());  // index of each entry within its sequence
    std::vector<std::int32_t> count(seqs.size(), 0);
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const auto& e = entries[i];
      const std::size_t s = std::size_t(plan.seq_of[i]);
      const int k = e.parent == -2 ? 1 : 2;
      if (kind[s] != 0 && kind[s] != k)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("sequence {} mixes a token tree with other tokens in one batch (batch index {})", e.seq, i));
      kind[s] = k;
      local[i] = count[s]++;
      if (k == 1) continue;
      any_tree = true;
      if (batch.has_tree_size_mismatch())
        throw Error(ErrorCode::InvalidArgument, "add_tree: the parents span and the tokens span differ in length");
      std::int32_t parent = -1;
      if (e.parent != -1) {
        if (e.parent < 0 || std::size_t(e.parent) >= i || entries[std::size_t(e.parent)].seq != e.seq ||
            entries[std::size_t(e.parent)].parent == -2)
          throw Error(ErrorCode::InvalidArgument,
                      fmt::format("tree token at batch index {} (sequence {}) names an invalid parent: it must be an "
                                  "earlier token of the same add_tree() call, or -1",
                                  i, e.seq));
        parent = local[std::size_t(e.parent)];
      }
      tree_parent[s].push_back(parent);
      if (tree_parent[s].size() > Batch::kMaxTreeTokens)
        throw Error(ErrorCode::InvalidArgument, fmt::format("sequence {}'s token tree has more than {} tokens", e.seq,
                                                            Batch::kMaxTreeTokens));
    }
  }
  if (any_tree && !m.backend->supports_trees())
    throw Error(ErrorCode::Unsupported,
                fmt::format("token trees (Batch::add_tree) are not implemented on the {} backend", m.device.name()));

  std::int64_t needed = 0;
  std::vector<std::int64_t> old_len(seqs.size());
  for (std::size_t s = 0; s < seqs.size(); ++s) {
    old_len[s] = bm.length(seqs[s]);
    if (old_len[s] + std::int64_t(seq_tokens[s].size()) > m.cfg.context_length)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("sequence {} would reach {} tokens, past the model's context length {}", seqs[s],
                              old_len[s] + std::int64_t(seq_tokens[s].size()), m.cfg.context_length));
    needed += bm.blocks_needed(seqs[s], std::int64_t(seq_tokens[s].size()));
  }
  if (needed > bm.available_blocks())
    throw Error(ErrorCode::CacheFull,
                fmt::format("step needs {} more KV blocks but only {} of {} are available ({} tokens per block)", needed,
                            bm.available_blocks(), bm.num_blocks(), bm.block_size()));

  std::size_t appended = 0;
  try {
    std::vector<std::vector<std::int64_t>> slots(seqs.size());
    std::vector<detail::BlockManager::Copy> copies;
    for (std::size_t s = 0; s < seqs.size(); ++s) {
      copies.clear();
      bm.append(seqs[s], seq_tokens[s], slots[s], copies);
      ++appended;
      for (const auto& c : copies) kvi.storage->copy_block(c.src, c.dst);
    }
    // Per-token plan in batch order. A tree token's position is the cached length plus
    // its depth; it sees its ancestors (tree_mask) and the cached prefix.
    std::vector<std::size_t> next(seqs.size(), 0);
    std::vector<std::vector<std::int32_t>> depth(seqs.size());
    std::vector<std::vector<std::uint64_t>> anc(seqs.size());
    plan.tokens.reserve(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const std::size_t s = std::size_t(plan.seq_of[i]);
      const std::size_t j = next[s]++;
      plan.tokens.push_back(entries[i].token);
      std::int64_t pos = old_len[s] + std::int64_t(j);
      if (any_tree) {
        plan.kv_pos.push_back(std::int32_t(pos));
        if (tree_parent[s].empty()) {
          plan.tree_base.push_back(-1);
          plan.tree_mask.push_back(0);
        } else {
          const std::int32_t par = tree_parent[s][j];
          depth[s].push_back(par < 0 ? 0 : depth[s][std::size_t(par)] + 1);
          anc[s].push_back((std::uint64_t(1) << j) | (par < 0 ? 0 : anc[s][std::size_t(par)]));
          pos = old_len[s] + depth[s].back();
          plan.tree_base.push_back(std::int32_t(old_len[s]));
          plan.tree_mask.push_back(anc[s].back());
        }
      }
      plan.positions.push_back(std::int32_t(pos));
      plan.slots.push_back(slots[s][j]);
      if (entries[i].logits) {
        row_info(plan.logit_rows.size(), entries[i].seq, i);
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
    run(plan, *kvi.storage);
  } catch (...) {
    // rollback (not truncate): blocks this step filled must not stay in the prefix cache
    // with K/V that were never computed.
    for (std::size_t s = 0; s < appended; ++s) bm.rollback(seqs[s], old_len[s]);
    throw;
  }
}

}  // namespace

namespace {

/// A model whose weights hold NaN / Inf (or overflow) gives non-finite logits: name it as a
/// model error here rather than let a sampler fail on "logit -nan" later.
void check_logits(const Logits& lg) {
  for (std::size_t r = 0; r < lg.rows(); ++r)
    for (const float v : lg.row(r))
      if (!std::isfinite(v))
        throw Error(ErrorCode::InvalidModel,
                    fmt::format("the model produced a non-finite logit ({}) for batch index {}: its weights may be "
                                "corrupt (ModelOptions::check_weights checks them at load)",
                                v, lg.batch_index(r)));
}

}  // namespace

void Model::forward(const Batch& batch, KVCache& cache, Logits& out, const ForwardOptions& fo) const {
  const detail::Cancel cancel{impl_->opts.cancel, fo.cancel};
  cancel.check();
  if (out.hidden_requested() && !impl_->backend->supports_hidden())
    throw Error(ErrorCode::Unsupported,
                fmt::format("hidden states (Logits::request_hidden) are not implemented on the {} backend",
                            impl_->device.name()));
  out.reset(impl_->cfg.vocab_size, batch.num_logit_rows(), impl_->cfg.d_model);
  run_step(
      *impl_, batch, cache, [&](std::size_t r, SeqId seq, std::size_t i) { out.set_row_info(r, seq, i); },
      [&](const detail::ForwardPlan& plan, detail::KVStorage& kv) {
        impl_->backend->forward(plan, kv, out, cancel);
        check_logits(out);  // inside the step: a throw rolls the cache back
      });
}

std::vector<Sampled> Model::forward_sample(const Batch& batch, KVCache& cache, std::span<Sampler* const> samplers,
                                           std::span<const std::span<const Token>> histories,
                                           const ForwardOptions& fo) const {
  const detail::Cancel cancel{impl_->opts.cancel, fo.cancel};
  cancel.check();
  const std::size_t R = batch.num_logit_rows();
  if (samplers.size() != R)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("forward_sample: {} samplers for {} logits rows", samplers.size(), R));
  if (!histories.empty() && histories.size() != R)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("forward_sample: {} histories for {} logits rows", histories.size(), R));
  std::vector<SamplerParams> params;
  std::vector<std::uint64_t> counters;
  for (std::size_t i = 0; i < R; ++i) {
    if (samplers[i] == nullptr)
      throw Error(ErrorCode::InvalidArgument, fmt::format("forward_sample: sampler {} is null", i));
    params.push_back(samplers[i]->params());
    counters.push_back(samplers[i]->counter());
  }
  std::vector<Sampled> out(R);
  if (R > 0 && impl_->backend->can_sample(params)) {
    run_step(
        *impl_, batch, cache, [](std::size_t, SeqId, std::size_t) {},
        [&](const detail::ForwardPlan& plan, detail::KVStorage& kv) {
          impl_->backend->forward_sample(plan, kv, params, counters, out, cancel);
        });
    for (Sampler* s : samplers) s->advance();
    return out;
  }
  // Host sampling inside the step, on copies of the samplers: a sampling error rolls the
  // cache back and leaves every stream where it was.
  Logits logits;
  logits.reset(impl_->cfg.vocab_size, R);
  std::vector<Sampler> trial;
  trial.reserve(R);
  run_step(
      *impl_, batch, cache, [&](std::size_t r, SeqId seq, std::size_t i) { logits.set_row_info(r, seq, i); },
      [&](const detail::ForwardPlan& plan, detail::KVStorage& kv) {
        impl_->backend->forward(plan, kv, logits, cancel);
        for (std::size_t i = 0; i < R; ++i) {
          trial.push_back(*samplers[i]);
          out[i] = trial.back().sample(logits.row(i), histories.empty() ? std::span<const Token>{} : histories[i]);
        }
      });
  for (std::size_t i = 0; i < R; ++i) *samplers[i] = std::move(trial[i]);
  return out;
}

Logits Model::forward(const Batch& batch, KVCache& cache) const {
  Logits out;
  forward(batch, cache, out);
  return out;
}

}  // namespace vireo
