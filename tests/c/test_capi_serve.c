/* The C API's scheduler and speculative decoder on the real SmolLM2 file: a greedy request
 * through the scheduler gives the tokens of a plain forward + sampler loop, concurrent
 * requests all finish, bad requests are refused before anything runs, and greedy
 * speculative decoding (prompt lookup, and a draft model) returns exactly the plain greedy
 * tokens. */
#include <stdlib.h>

#include "check.h"

#define N_NEW 12

/* Plain greedy loop: n_new tokens after `prompt`. */
static void plain_greedy(vireo_model* m, const vireo_token* prompt, size_t n, vireo_token* out, int n_new) {
  vireo_kv_cache* cache = NULL;
  vireo_sampler* sampler = NULL;
  vireo_batch* batch = NULL;
  vireo_logits* logits = NULL;
  vireo_sampler_params sp = vireo_sampler_default_params();
  sp.temperature = 0.0f;
  vireo_kv_cache_new(m, NULL, &cache);
  vireo_sampler_new(&sp, &sampler);
  vireo_batch_new(&batch);
  vireo_logits_new(&logits);
  vireo_seq_id seq = -1;
  vireo_kv_cache_add_sequence(cache, &seq);
  vireo_batch_add(batch, seq, prompt, n, VIREO_WANT_LAST);
  for (int i = 0; i < n_new; ++i) {
    CHECK_STATUS(vireo_forward(m, cache, batch, logits, NULL, NULL), VIREO_STATUS_OK);
    size_t vocab = 0;
    const float* row = vireo_logits_row(logits, 0, &vocab);
    if (!row) return;
    CHECK_STATUS(vireo_sampler_sample(sampler, row, vocab, NULL, 0, &out[i], NULL), VIREO_STATUS_OK);
    vireo_batch_clear(batch);
    vireo_batch_add(batch, seq, &out[i], 1, VIREO_WANT_LAST);
  }
  vireo_logits_free(logits);
  vireo_batch_free(batch);
  vireo_sampler_free(sampler);
  vireo_kv_cache_free(cache);
}

static void test_scheduler(vireo_model* m, const vireo_token* prompt, size_t n, const vireo_token* want) {
  vireo_kv_cache* cache = NULL;
  CHECK_STATUS(vireo_kv_cache_new(m, NULL, &cache), VIREO_STATUS_OK);
  vireo_scheduler_params sp = vireo_scheduler_default_params();
  sp.max_batch_tokens = 4;
  sp.max_running = 8;
  vireo_scheduler* s = NULL;
  CHECK_STATUS(vireo_scheduler_new(m, cache, &sp, &s), VIREO_STATUS_INVALID_ARGUMENT); /* running > tokens */
  sp = vireo_scheduler_default_params();
  CHECK_STATUS(vireo_scheduler_new(m, cache, &sp, &s), VIREO_STATUS_OK);
  if (!s) return;
  vireo_request r = vireo_request_default_params();
  r.prompt = prompt;
  r.n_prompt = n;
  r.max_new_tokens = N_NEW;
  r.stop_at_eog = false;
  r.sampling.temperature = 0.0f;
  /* Refused requests: nothing queued. */
  vireo_token bad[2] = {3, 70000};
  vireo_request rb = r;
  rb.prompt = bad;
  rb.n_prompt = 2;
  CHECK_STATUS(vireo_scheduler_submit(s, &rb), VIREO_STATUS_INVALID_ARGUMENT);
  rb = r;
  rb.n_prompt = 0;
  CHECK_STATUS(vireo_scheduler_submit(s, &rb), VIREO_STATUS_INVALID_ARGUMENT);
  rb = r;
  rb.sampling.top_k = -3;
  CHECK_STATUS(vireo_scheduler_submit(s, &rb), VIREO_STATUS_INVALID_ARGUMENT);
  rb = r;
  rb.stop_tokens = bad;
  rb.n_stop_tokens = 2;
  CHECK_STATUS(vireo_scheduler_submit(s, &rb), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK(vireo_scheduler_idle(s));
  /* One greedy request alone: the plain loop's tokens. */
  r.id = 1;
  CHECK_STATUS(vireo_scheduler_submit(s, &r), VIREO_STATUS_OK);
  CHECK_STATUS(vireo_scheduler_submit(s, &r), VIREO_STATUS_INVALID_ARGUMENT); /* duplicate id */
  vireo_token got[N_NEW];
  int n_got = 0, steps = 0;
  while (!vireo_scheduler_idle(s) && steps++ < 100) {
    const vireo_token_event* ev = NULL;
    size_t ne = 0;
    CHECK_STATUS(vireo_scheduler_step(s, &ev, &ne), VIREO_STATUS_OK);
    for (size_t i = 0; i < ne; ++i) {
      CHECK(ev[i].id == 1);
      CHECK(ev[i].first == (n_got == 0));
      if (n_got < N_NEW) got[n_got++] = ev[i].token;
      CHECK(ev[i].finished == (n_got == N_NEW));
    }
  }
  CHECK(n_got == N_NEW);
  for (int i = 0; i < n_got; ++i) CHECK(got[i] == want[i]);
  /* Three sampled requests at once: every one finishes with its tokens. */
  int counts[3] = {0, 0, 0}, finished = 0;
  for (int k = 0; k < 3; ++k) {
    vireo_request q = r;
    q.id = 10 + (uint64_t)k;
    q.max_new_tokens = 5 + k;
    q.sampling.temperature = 0.8f;
    q.sampling.seed = (uint64_t)k;
    CHECK_STATUS(vireo_scheduler_submit(s, &q), VIREO_STATUS_OK);
  }
  steps = 0;
  while (!vireo_scheduler_idle(s) && steps++ < 100) {
    const vireo_token_event* ev = NULL;
    size_t ne = 0;
    CHECK_STATUS(vireo_scheduler_step(s, &ev, &ne), VIREO_STATUS_OK);
    for (size_t i = 0; i < ne; ++i) {
      CHECK(ev[i].id >= 10 && ev[i].id < 13);
      if (ev[i].id >= 10 && ev[i].id < 13) ++counts[ev[i].id - 10];
      finished += ev[i].finished;
    }
  }
  CHECK(finished == 3);
  for (int k = 0; k < 3; ++k) CHECK(counts[k] == 5 + k);
  vireo_scheduler_free(s);
  vireo_kv_cache_free(cache);
}

static void test_speculative(vireo_model* m, const vireo_token* prompt, size_t n, const vireo_token* want) {
  vireo_speculative_params pp = vireo_speculative_default_params();
  vireo_speculative* spec = NULL;
  pp.draft_tokens = 0;
  CHECK_STATUS(vireo_speculative_new(m, NULL, &pp, &spec), VIREO_STATUS_INVALID_ARGUMENT);
  pp = vireo_speculative_default_params();
  CHECK_STATUS(vireo_speculative_new(m, NULL, &pp, &spec), VIREO_STATUS_OK);
  if (!spec) return;
  vireo_kv_cache* cache = NULL;
  vireo_kv_cache_new(m, NULL, &cache);
  vireo_seq_id seq = -1;
  vireo_kv_cache_add_sequence(cache, &seq);
  vireo_sampler_params sp = vireo_sampler_default_params();
  sp.temperature = 0.0f;
  vireo_sampler* sampler = NULL;
  vireo_sampler_new(&sp, &sampler);
  vireo_token toks[256];
  memcpy(toks, prompt, n * sizeof *toks);
  size_t len = n;
  vireo_token out[32];
  size_t got = 0;
  CHECK_STATUS(vireo_speculative_step(spec, toks, len, cache, seq, NULL, 0, sampler, out, 2, &got),
               VIREO_STATUS_BUFFER_TOO_SMALL);
  vireo_token bad[2] = {1, -4};
  CHECK_STATUS(vireo_speculative_step(spec, bad, 2, cache, seq, NULL, 0, sampler, out, 32, &got),
               VIREO_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(vireo_speculative_step(spec, toks, len, cache, seq, NULL, 0, NULL, out, 32, &got),
               VIREO_STATUS_INVALID_ARGUMENT);
  int rounds = 0;
  while (len < n + N_NEW && rounds++ < 64) {
    CHECK_STATUS(vireo_speculative_step(spec, toks, len, cache, seq, NULL, 0, sampler, out, 32, &got),
                 VIREO_STATUS_OK);
    if (got == 0) break;
    for (size_t i = 0; i < got && len < 256; ++i) toks[len++] = out[i];
  }
  CHECK(len >= n + N_NEW);
  for (int i = 0; i < N_NEW; ++i) CHECK(toks[n + (size_t)i] == want[i]);
  vireo_sampler_free(sampler);
  vireo_kv_cache_free(cache);
  vireo_speculative_free(spec);
}

/* A draft model (the target itself, so every draft is kept): the plain greedy tokens too. */
static void test_speculative_draft(vireo_model* m, const vireo_token* prompt, size_t n, const vireo_token* want) {
  vireo_speculative* spec = NULL;
  CHECK_STATUS(vireo_speculative_new(m, m, NULL, &spec), VIREO_STATUS_OK);
  if (!spec) return;
  vireo_kv_cache *tc = NULL, *dc = NULL;
  vireo_kv_cache_new(m, NULL, &tc);
  vireo_kv_cache_new(m, NULL, &dc);
  vireo_seq_id ts = -1, ds = -1;
  vireo_kv_cache_add_sequence(tc, &ts);
  vireo_kv_cache_add_sequence(dc, &ds);
  vireo_sampler_params sp = vireo_sampler_default_params();
  sp.temperature = 0.0f;
  vireo_sampler* sampler = NULL;
  vireo_sampler_new(&sp, &sampler);
  vireo_token toks[256], out[32];
  memcpy(toks, prompt, n * sizeof *toks);
  size_t len = n, got = 0;
  CHECK_STATUS(vireo_speculative_step(spec, toks, len, tc, ts, NULL, 0, sampler, out, 32, &got),
               VIREO_STATUS_INVALID_ARGUMENT); /* a draft model needs its cache */
  int rounds = 0;
  while (len < n + N_NEW && rounds++ < 64) {
    CHECK_STATUS(vireo_speculative_step(spec, toks, len, tc, ts, dc, ds, sampler, out, 32, &got), VIREO_STATUS_OK);
    if (got == 0) break;
    for (size_t i = 0; i < got && len < 256; ++i) toks[len++] = out[i];
  }
  CHECK(len >= n + N_NEW);
  CHECK(rounds < N_NEW); /* a perfect drafter: several tokens per round */
  for (int i = 0; i < N_NEW; ++i) CHECK(toks[n + (size_t)i] == want[i]);
  vireo_sampler_free(sampler);
  vireo_kv_cache_free(dc);
  vireo_kv_cache_free(tc);
  vireo_speculative_free(spec);
}

/* forward_sample: two sequences in one step, each row with its own greedy sampler, give the
 * plain greedy tokens; a sampler count that does not match the rows changes nothing. */
static void test_forward_sample(vireo_model* m, const vireo_token* prompt, size_t n, const vireo_token* want) {
  vireo_kv_cache* cache = NULL;
  vireo_batch* batch = NULL;
  vireo_sampler *s0 = NULL, *s1 = NULL;
  vireo_sampler_params sp = vireo_sampler_default_params();
  sp.temperature = 0.0f;
  vireo_kv_cache_new(m, NULL, &cache);
  vireo_batch_new(&batch);
  vireo_sampler_new(&sp, &s0);
  vireo_sampler_new(&sp, &s1);
  vireo_seq_id a = -1, b = -1;
  vireo_kv_cache_add_sequence(cache, &a);
  vireo_kv_cache_add_sequence(cache, &b);
  vireo_batch_add(batch, a, prompt, n, VIREO_WANT_LAST);
  vireo_batch_add(batch, b, prompt, n, VIREO_WANT_LAST);
  vireo_sampler* both[2] = {s0, s1};
  vireo_token out[2], got_a[N_NEW], got_b[N_NEW];
  float lp[2];
  CHECK_STATUS(vireo_forward_sample(m, cache, batch, both, 1, NULL, NULL, out, lp, NULL, NULL),
               VIREO_STATUS_INVALID_ARGUMENT);
  vireo_sampler* with_null[2] = {s0, NULL};
  CHECK_STATUS(vireo_forward_sample(m, cache, batch, with_null, 2, NULL, NULL, out, lp, NULL, NULL),
               VIREO_STATUS_INVALID_ARGUMENT);
  const vireo_token bad_hist[1] = {60000};
  const vireo_token* hists[2] = {bad_hist, bad_hist};
  const size_t lens[2] = {1, 1};
  CHECK_STATUS(vireo_forward_sample(m, cache, batch, both, 2, hists, lens, out, lp, NULL, NULL),
               VIREO_STATUS_INVALID_ARGUMENT);
  int64_t len = -1;
  vireo_kv_cache_length(cache, a, &len);
  CHECK(len == 0);
  for (int i = 0; i < N_NEW; ++i) {
    CHECK_STATUS(vireo_forward_sample(m, cache, batch, both, 2, NULL, NULL, out, lp, NULL, NULL), VIREO_STATUS_OK);
    got_a[i] = out[0];
    got_b[i] = out[1];
    CHECK(lp[0] <= 0.0f && lp[1] <= 0.0f);
    vireo_batch_clear(batch);
    vireo_batch_add(batch, a, &got_a[i], 1, VIREO_WANT_LAST);
    vireo_batch_add(batch, b, &got_b[i], 1, VIREO_WANT_LAST);
  }
  for (int i = 0; i < N_NEW; ++i) CHECK(got_a[i] == want[i] && got_b[i] == want[i]);
  vireo_sampler_free(s1);
  vireo_sampler_free(s0);
  vireo_batch_free(batch);
  vireo_kv_cache_free(cache);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s model.gguf\n", argv[0]);
    return 2;
  }
  vireo_log_set_level(VIREO_LOG_WARN);
  vireo_model* m = NULL;
  CHECK_STATUS(vireo_model_load(argv[1], NULL, &m), VIREO_STATUS_OK);
  if (!m) return check_summary("capi serve");
  /* A prompt that repeats itself, so prompt lookup finds drafts. */
  const char* text = "one two three four five, one two three four five, one two three";
  vireo_token prompt[64], want[N_NEW];
  size_t n = 0;
  CHECK_STATUS(vireo_tokenize(m, text, strlen(text), true, false, prompt, 64, &n), VIREO_STATUS_OK);
  plain_greedy(m, prompt, n, want, N_NEW);
  test_scheduler(m, prompt, n, want);
  test_forward_sample(m, prompt, n, want);
  test_speculative(m, prompt, n, want);
  test_speculative_draft(m, prompt, n, want);
  vireo_model_free(m);
  return check_summary("capi serve");
}
