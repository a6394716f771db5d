// C API: the sampler, the continuous-batching scheduler and the speculative decoder. Inputs
// that the C++ layer would only reject in the middle of a step (a request's sampling
// parameters, out-of-range stop tokens, a too-small output buffer) are checked up front so
// that a refused call changes nothing.
#include <memory>

#include "capi/capi_internal.hpp"

using namespace vireo::capi;

extern "C" {

vireo_sampler_params vireo_sampler_default_params(void) {
  const vireo::SamplerParams d;
  vireo_sampler_params p{};
  p.temperature = d.temperature;
  p.top_k = d.top_k;
  p.top_p = d.top_p;
  p.min_p = d.min_p;
  p.repetition_penalty = d.repetition_penalty;
  p.presence_penalty = d.presence_penalty;
  p.frequency_penalty = d.frequency_penalty;
  p.penalty_last_n = d.penalty_last_n;
  p.seed = d.seed;
  return p;
}

vireo_status vireo_sampler_new(const vireo_sampler_params* params, vireo_sampler** out_sampler) {
  return guard("vireo_sampler_new", [&] {
    need(out_sampler, "out_sampler");
    auto s = std::make_unique<vireo_sampler>();
    s->sampler.emplace(to_cpp(params ? *params : vireo_sampler_default_params()));
    *out_sampler = s.release();
  });
}

void vireo_sampler_free(vireo_sampler* sampler) { delete sampler; }

vireo_status vireo_sampler_set_logit_bias(vireo_sampler* sampler, const vireo_token* tokens, const float* biases,
                                          size_t n) {
  return guard("vireo_sampler_set_logit_bias", [&] {
    need(sampler, "sampler");
    if (n) {
      need(tokens, "tokens");
      need(biases, "biases");
    }
    vireo::SamplerParams p = sampler->sampler->params();
    p.logit_bias.clear();
    for (size_t i = 0; i < n; ++i) p.logit_bias.emplace_back(tokens[i], biases[i]);
    vireo::Sampler next(p);  // validates: a refused bias leaves the sampler as it was
    for (std::uint64_t c = sampler->sampler->counter(); c > 0; --c) next.advance();
    sampler->sampler.emplace(std::move(next));
  });
}

vireo_status vireo_sampler_sample(vireo_sampler* sampler, const float* logits, size_t n_vocab,
                                  const vireo_token* history, size_t n_history, vireo_token* out_token,
                                  float* out_logprob) {
  return guard("vireo_sampler_sample", [&] {
    need(sampler, "sampler");
    need(logits, "logits");
    need(out_token, "out_token");
    if (n_vocab == 0) invalid("n_vocab is 0");
    if (n_vocab > std::size_t(INT32_MAX)) invalid("n_vocab " + std::to_string(n_vocab) + " is too large");
    check_tokens(history, n_history, int(n_vocab), "history");
    const vireo::Sampled s = sampler->sampler->sample({logits, n_vocab}, {history, n_history});
    *out_token = s.token;
    if (out_logprob) *out_logprob = s.logprob;
  });
}

vireo_scheduler_params vireo_scheduler_default_params(void) {
  const vireo::SchedulerOptions d;
  vireo_scheduler_params p{};
  p.static_batching = d.mode == vireo::BatchingMode::Static;
  p.preempt_recompute = d.preemption == vireo::PreemptionMode::Recompute;
  p.max_batch_tokens = d.max_batch_tokens;
  p.max_running = d.max_running;
  p.prefix_caching = d.prefix_caching;
  return p;
}

vireo_request vireo_request_default_params(void) {
  const vireo::Request d;
  vireo_request r{};
  r.id = 0;
  r.prompt = nullptr;
  r.n_prompt = 0;
  r.max_new_tokens = d.max_new_tokens;
  r.sampling = vireo_sampler_default_params();
  r.stop_at_eog = d.stop_at_eog;
  r.stop_tokens = nullptr;
  r.n_stop_tokens = 0;
  return r;
}

vireo_status vireo_scheduler_new(const vireo_model* model, vireo_kv_cache* cache, const vireo_scheduler_params* params,
                                 vireo_scheduler** out_scheduler) {
  return guard("vireo_scheduler_new", [&] {
    const vireo::Model& m = model_of(model);
    need(cache, "cache");
    need(out_scheduler, "out_scheduler");
    if (cache->owner != model) invalid("the KV cache was created for a different model");
    const vireo_scheduler_params p = params ? *params : vireo_scheduler_default_params();
    vireo::SchedulerOptions o;
    o.mode = p.static_batching ? vireo::BatchingMode::Static : vireo::BatchingMode::Continuous;
    o.preemption = p.preempt_recompute ? vireo::PreemptionMode::Recompute : vireo::PreemptionMode::Swap;
    o.max_batch_tokens = p.max_batch_tokens;
    o.max_running = p.max_running;
    o.prefix_caching = p.prefix_caching;
    auto s = std::make_unique<vireo_scheduler>();
    s->owner = model;
    s->scheduler.emplace(m, *cache->cache, o);
    *out_scheduler = s.release();
  });
}

void vireo_scheduler_free(vireo_scheduler* scheduler) { delete scheduler; }

vireo_status vireo_scheduler_submit(vireo_scheduler* scheduler, const vireo_request* request) {
  return guard("vireo_scheduler_submit", [&] {
    need(scheduler, "scheduler");
    need(request, "request");
    const int vocab = model_of(scheduler->owner).config().vocab_size;
    check_tokens(request->prompt, request->n_prompt, vocab, "request->prompt");
    check_tokens(request->stop_tokens, request->n_stop_tokens, vocab, "request->stop_tokens");
    vireo::Request r;
    r.id = request->id;
    r.prompt.assign(request->prompt, request->prompt + request->n_prompt);
    r.max_new_tokens = request->max_new_tokens;
    r.sampling = to_cpp(request->sampling);
    vireo::Sampler check(r.sampling);  // refuse bad sampling parameters now, not mid-step
    r.stop_at_eog = request->stop_at_eog;
    if (request->n_stop_tokens)
      r.stop_tokens.assign(request->stop_tokens, request->stop_tokens + request->n_stop_tokens);
    scheduler->scheduler->submit(std::move(r));
  });
}

vireo_status vireo_scheduler_step(vireo_scheduler* scheduler, const vireo_token_event** out_events, size_t* out_n) {
  return guard("vireo_scheduler_step", [&] {
    need(scheduler, "scheduler");
    need(out_events, "out_events");
    need(out_n, "out_n");
    const vireo::StepResult r = scheduler->scheduler->step();
    scheduler->events.clear();
    for (const auto& e : r.tokens) scheduler->events.push_back({e.id, e.token, e.logprob, e.first, e.finished});
    *out_events = scheduler->events.data();
    *out_n = scheduler->events.size();
  });
}

bool vireo_scheduler_idle(const vireo_scheduler* scheduler) {
  return !scheduler || scheduler->scheduler->idle();
}

vireo_speculative_params vireo_speculative_default_params(void) {
  const vireo::SpeculativeParams d;
  vireo_speculative_params p{};
  p.draft_tokens = d.draft_tokens;
  p.lookup_ngram = d.lookup_ngram;
  p.lookup_min_ngram = d.lookup_min_ngram;
  p.adaptive = d.adaptive;
  return p;
}

vireo_status vireo_speculative_new(const vireo_model* target, const vireo_model* draft,
                                   const vireo_speculative_params* params, vireo_speculative** out_spec) {
  return guard("vireo_speculative_new", [&] {
    const vireo::Model& t = model_of(target);
    need(out_spec, "out_spec");
    const vireo_speculative_params p = params ? *params : vireo_speculative_default_params();
    vireo::SpeculativeParams o;
    o.draft_tokens = p.draft_tokens;
    o.lookup_ngram = p.lookup_ngram;
    o.lookup_min_ngram = p.lookup_min_ngram;
    o.adaptive = p.adaptive;
    auto s = std::make_unique<vireo_speculative>();
    s->target = target;
    s->draft = draft;
    if (draft)
      s->decoder.emplace(t, model_of(draft), o);
    else
      s->decoder.emplace(t, o);
    *out_spec = s.release();
  });
}

void vireo_speculative_free(vireo_speculative* spec) { delete spec; }

vireo_status vireo_speculative_step(vireo_speculative* spec, const vireo_token* tokens, size_t n_tokens,
                                    vireo_kv_cache* target_cache, vireo_seq_id target_seq,
                                    vireo_kv_cache* draft_cache, vireo_seq_id draft_seq, vireo_sampler* sampler,
                                    vireo_token* out_tokens, size_t capacity, size_t* out_n) {
  return guard("vireo_speculative_step", [&] {
    need(spec, "spec");
    need(target_cache, "target_cache");
    need(sampler, "sampler");
    need(out_tokens, "out_tokens");
    need(out_n, "out_n");
    if (n_tokens == 0) invalid("n_tokens is 0 (give at least the prompt)");
    check_tokens(tokens, n_tokens, model_of(spec->target).config().vocab_size, "tokens");
    const std::size_t most = std::size_t(spec->decoder->params().draft_tokens) + 1;
    if (capacity < most)
      throw CError{VIREO_STATUS_BUFFER_TOO_SMALL, "a round returns up to " + std::to_string(most) +
                                                      " tokens but out_tokens holds " + std::to_string(capacity)};
    if (target_cache->owner != spec->target) invalid("target_cache was created for another model than the target");
    std::vector<vireo::Token> out;
    if (!spec->draft) {
      out = spec->decoder->step({tokens, n_tokens}, *target_cache->cache, target_seq, *sampler->sampler);
    } else {
      need(draft_cache, "draft_cache");
      if (draft_cache->owner != spec->draft) invalid("draft_cache was created for another model than the draft");
      out = spec->decoder->step({tokens, n_tokens}, *target_cache->cache, target_seq, *draft_cache->cache, draft_seq,
                                *sampler->sampler);
    }
    std::copy(out.begin(), out.end(), out_tokens);
    *out_n = out.size();
  });
}

}  // extern "C"
