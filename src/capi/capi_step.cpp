// C API: KV caches, batches, logits and the forward step with its abort callback.
//
// The C++ API cancels one forward through ForwardOptions::cancel, a std::atomic<bool> the
// backends read between ops. A C caller's per-call abort callback is wired to a flag of its
// own call by a watcher thread that lives for the call: it polls the callback about every
// millisecond and raises the flag when the callback says so. Other threads' steps on the same
// model are not affected.
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "capi/capi_internal.hpp"

using namespace vireo::capi;

namespace {

vireo::KVCache& cache_of(vireo_kv_cache* c) {
  need(c, "cache");
  return *c->cache;
}
const vireo::KVCache& cache_of(const vireo_kv_cache* c) {
  need(c, "cache");
  return *c->cache;
}

class AbortWatch {
 public:
  AbortWatch(vireo_abort_fn fn, void* user) {
    if (!fn) return;
    if (fn(user)) throw vireo::Error(vireo::ErrorCode::Cancelled, "aborted by the abort callback before the step");
    thread_ = std::thread([this, fn, user] {
      std::unique_lock lk(mu_);
      while (!done_) {
        if (fn(user)) {
          flag_.store(true);
          return;
        }
        cv_.wait_for(lk, std::chrono::milliseconds(1));
      }
    });
  }
  ~AbortWatch() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lk(mu_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  /// What the step passes as ForwardOptions.
  vireo::ForwardOptions options() const noexcept { return {.cancel = &flag_}; }

 private:
  std::atomic<bool> flag_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace

extern "C" {

vireo_kv_cache_params vireo_kv_cache_default_params(void) {
  const vireo::KVCacheOptions d;
  vireo_kv_cache_params p{};
  p.memory_budget_bytes = d.memory_budget_bytes;
  p.num_blocks = d.num_blocks;
  p.block_size = d.block_size;
  p.prefix_caching = d.prefix_caching;
  p.precision = VIREO_KV_MODEL;
  return p;
}

vireo_status vireo_kv_cache_new(const vireo_model* model, const vireo_kv_cache_params* params,
                                vireo_kv_cache** out_cache) {
  return guard("vireo_kv_cache_new", [&] {
    const vireo::Model& m = model_of(model);
    need(out_cache, "out_cache");
    const vireo_kv_cache_params p = params ? *params : vireo_kv_cache_default_params();
    if (p.block_size < 1) invalid("block_size " + std::to_string(p.block_size) + " must be at least 1");
    if (p.num_blocks < 0) invalid("num_blocks " + std::to_string(p.num_blocks) + " is negative");
    const int precision = enum_value(p.precision);
    if (precision != VIREO_KV_MODEL && precision != VIREO_KV_INT8)
      invalid("precision " + std::to_string(precision) + " is not one of MODEL, INT8");
    if (p.memory_budget_bytes > SIZE_MAX) invalid("memory_budget_bytes does not fit this machine's size_t");
    vireo::KVCacheOptions o;
    o.memory_budget_bytes = std::size_t(p.memory_budget_bytes);
    o.num_blocks = p.num_blocks;
    o.block_size = p.block_size;
    o.prefix_caching = p.prefix_caching;
    o.precision = precision == VIREO_KV_INT8 ? vireo::KVPrecision::Int8 : vireo::KVPrecision::Model;
    auto c = std::make_unique<vireo_kv_cache>();
    c->owner = model;
    c->cache.emplace(m, o);
    *out_cache = c.release();
  });
}

void vireo_kv_cache_free(vireo_kv_cache* cache) { delete cache; }

vireo_status vireo_kv_cache_add_sequence(vireo_kv_cache* cache, vireo_seq_id* out_seq) {
  return guard("vireo_kv_cache_add_sequence", [&] {
    auto& c = cache_of(cache);
    need(out_seq, "out_seq");
    *out_seq = c.add_sequence();
  });
}

vireo_status vireo_kv_cache_add_sequence_prefix(vireo_kv_cache* cache, const vireo_token* prompt, size_t n_prompt,
                                                vireo_seq_id* out_seq, int64_t* out_reused) {
  return guard("vireo_kv_cache_add_sequence_prefix", [&] {
    auto& c = cache_of(cache);
    need(out_seq, "out_seq");
    need(out_reused, "out_reused");
    check_tokens(prompt, n_prompt, model_of(cache->owner).config().vocab_size, "prompt");
    std::int64_t reused = 0;
    const vireo::SeqId s = c.add_sequence({prompt, n_prompt}, &reused);
    *out_seq = s;
    *out_reused = reused;
  });
}

vireo_status vireo_kv_cache_fork(vireo_kv_cache* cache, vireo_seq_id seq, vireo_seq_id* out_seq) {
  return guard("vireo_kv_cache_fork", [&] {
    auto& c = cache_of(cache);
    need(out_seq, "out_seq");
    *out_seq = c.fork(seq);
  });
}

vireo_status vireo_kv_cache_truncate(vireo_kv_cache* cache, vireo_seq_id seq, int64_t length) {
  return guard("vireo_kv_cache_truncate", [&] { cache_of(cache).truncate(seq, length); });
}

vireo_status vireo_kv_cache_remove(vireo_kv_cache* cache, vireo_seq_id seq) {
  return guard("vireo_kv_cache_remove", [&] {
    auto& c = cache_of(cache);
    if (!c.contains(seq)) invalid("sequence " + std::to_string(seq) + " is not in the cache");
    c.remove(seq);
  });
}

vireo_status vireo_kv_cache_save(const vireo_kv_cache* cache, vireo_seq_id seq, const char* path) {
  return guard("vireo_kv_cache_save", [&] {
    const auto& c = cache_of(cache);
    const std::filesystem::path file = utf8_path(path, "path");
    if (!c.contains(seq)) invalid("sequence " + std::to_string(seq) + " is not in the cache");
    c.save(seq, file);
  });
}

vireo_status vireo_kv_cache_restore(vireo_kv_cache* cache, const char* path, vireo_seq_id* out_seq) {
  return guard("vireo_kv_cache_restore", [&] {
    auto& c = cache_of(cache);
    need(out_seq, "out_seq");
    *out_seq = c.restore(utf8_path(path, "path"));
  });
}

vireo_status vireo_kv_cache_length(const vireo_kv_cache* cache, vireo_seq_id seq, int64_t* out_length) {
  return guard("vireo_kv_cache_length", [&] {
    const auto& c = cache_of(cache);
    need(out_length, "out_length");
    if (!c.contains(seq)) invalid("sequence " + std::to_string(seq) + " is not in the cache");
    *out_length = c.length(seq);
  });
}

vireo_status vireo_kv_cache_get_stats(const vireo_kv_cache* cache, vireo_kv_cache_stats* out) {
  return guard("vireo_kv_cache_get_stats", [&] {
    const auto& c = cache_of(cache);
    need(out, "out");
    const vireo::KVCacheStats s = c.stats();
    vireo_kv_cache_stats r{};
    r.blocks_total = s.blocks_total;
    r.blocks_used = s.blocks_used;
    r.blocks_cached = s.blocks_cached;
    r.blocks_free = s.blocks_free;
    r.tokens_stored = s.tokens_stored;
    r.bytes_total = s.bytes_total;
    r.bytes_used = s.bytes_used;
    r.bytes_per_token = c.bytes_per_token();
    r.sequences = s.sequences;
    r.prefix_query_tokens = s.prefix_query_tokens;
    r.prefix_hit_tokens = s.prefix_hit_tokens;
    r.evictions = s.evictions;
    *out = r;
  });
}

vireo_status vireo_batch_new(vireo_batch** out_batch) {
  return guard("vireo_batch_new", [&] {
    need(out_batch, "out_batch");
    *out_batch = new vireo_batch();
  });
}

void vireo_batch_free(vireo_batch* batch) { delete batch; }

void vireo_batch_clear(vireo_batch* batch) {
  if (batch) batch->batch.clear();
}

vireo_status vireo_batch_add(vireo_batch* batch, vireo_seq_id seq, const vireo_token* tokens, size_t n,
                             vireo_want want) {
  return guard("vireo_batch_add", [&] {
    need(batch, "batch");
    if (n && !tokens) invalid("tokens is NULL but n is " + std::to_string(n));
    vireo::Want w;
    switch (enum_value(want)) {
      case VIREO_WANT_NONE: w = vireo::Want::None; break;
      case VIREO_WANT_LAST: w = vireo::Want::Last; break;
      case VIREO_WANT_ALL: w = vireo::Want::All; break;
      default: invalid("want " + std::to_string(enum_value(want)) + " is not one of NONE, LAST, ALL");
    }
    batch->batch.add(seq, std::span<const vireo::Token>(tokens, n), w);
  });
}

vireo_status vireo_logits_new(vireo_logits** out_logits) {
  return guard("vireo_logits_new", [&] {
    need(out_logits, "out_logits");
    *out_logits = new vireo_logits();
  });
}

void vireo_logits_free(vireo_logits* logits) { delete logits; }

size_t vireo_logits_rows(const vireo_logits* logits) { return logits ? logits->logits.rows() : 0; }

const float* vireo_logits_row(const vireo_logits* logits, size_t i, size_t* out_vocab) {
  const float* row = nullptr;
  guard("vireo_logits_row", [&] {
    need(logits, "logits");
    if (i >= logits->logits.rows())
      invalid("row " + std::to_string(i) + " is out of range (rows: " + std::to_string(logits->logits.rows()) + ")");
    if (out_vocab) *out_vocab = std::size_t(logits->logits.vocab());
    row = logits->logits.row(i).data();
  });
  return row;
}

vireo_status vireo_logits_row_info(const vireo_logits* logits, size_t i, vireo_seq_id* out_seq,
                                   size_t* out_batch_index) {
  return guard("vireo_logits_row_info", [&] {
    need(logits, "logits");
    if (i >= logits->logits.rows())
      invalid("row " + std::to_string(i) + " is out of range (rows: " + std::to_string(logits->logits.rows()) + ")");
    if (out_seq) *out_seq = logits->logits.seq(i);
    if (out_batch_index) *out_batch_index = logits->logits.batch_index(i);
  });
}

vireo_status vireo_forward(const vireo_model* model, vireo_kv_cache* cache, const vireo_batch* batch,
                           vireo_logits* out_logits, vireo_abort_fn abort_fn, void* abort_user_data) {
  return guard("vireo_forward", [&] {
    const vireo::Model& m = model_of(model);
    auto& c = cache_of(cache);
    need(batch, "batch");
    need(out_logits, "out_logits");
    if (cache->owner != model) invalid("the KV cache was created for a different model");
    AbortWatch watch(abort_fn, abort_user_data);
    m.forward(batch->batch, c, out_logits->logits, watch.options());
  });
}

vireo_status vireo_forward_sample(const vireo_model* model, vireo_kv_cache* cache, const vireo_batch* batch,
                                  vireo_sampler* const* samplers, size_t n_samplers,
                                  const vireo_token* const* histories, const size_t* history_lens,
                                  vireo_token* out_tokens, float* out_logprobs, vireo_abort_fn abort_fn,
                                  void* abort_user_data) {
  return guard("vireo_forward_sample", [&] {
    const vireo::Model& m = model_of(model);
    auto& c = cache_of(cache);
    need(batch, "batch");
    need(out_tokens, "out_tokens");
    if (cache->owner != model) invalid("the KV cache was created for a different model");
    const std::size_t rows = batch->batch.num_logit_rows();
    if (n_samplers != rows)
      invalid("the batch asks for " + std::to_string(rows) + " logits rows but " + std::to_string(n_samplers) +
              " samplers were given");
    if (rows) need(samplers, "samplers");
    std::vector<vireo::Sampler*> ss(rows);
    for (std::size_t i = 0; i < rows; ++i) {
      if (!samplers[i]) invalid("samplers[" + std::to_string(i) + "] is NULL");
      ss[i] = &*samplers[i]->sampler;
    }
    std::vector<std::span<const vireo::Token>> hs;
    if (histories) {
      need(history_lens, "history_lens");
      hs.resize(rows);
      for (std::size_t i = 0; i < rows; ++i) {
        const std::string what = "histories[" + std::to_string(i) + "]";
        check_tokens(histories[i], history_lens[i], m.config().vocab_size, what.c_str());
        hs[i] = {histories[i], history_lens[i]};
      }
    }
    AbortWatch watch(abort_fn, abort_user_data);
    const auto out = m.forward_sample(batch->batch, c, ss, hs, watch.options());
    for (std::size_t i = 0; i < out.size(); ++i) {
      out_tokens[i] = out[i].token;
      if (out_logprobs) out_logprobs[i] = out[i].logprob;
    }
  });
}

}  // extern "C"
