/* C API basics without a model: version, status names, the log callback (which reconfigures
 * logging from inside itself), and bad arguments to every kind of entry point: NULL handles
 * and outputs, a missing file, load from memory, bad parameters. */
#include <math.h>
#include <stdlib.h>
#if !defined(__STDC_NO_THREADS__)
#include <threads.h>
#endif

#include "check.h"

static int log_a_calls = 0, log_b_calls = 0;
static char log_last[256];

static void log_b(vireo_log_level level, const char* message, void* user) {
  (void)level;
  (void)message;
  ++*(int*)user;
}

/* The first message switches the sink to log_b and raises the level: a callback that
 * reconfigures logging from inside itself must not deadlock. */
static void log_a(vireo_log_level level, const char* message, void* user) {
  (void)level;
  ++*(int*)user;
  strncpy(log_last, message, sizeof log_last - 1);
  vireo_log_set(log_b, &log_b_calls);
  vireo_log_set_level(VIREO_LOG_INFO);
}

static void test_version(void) {
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", VIREO_VERSION_MAJOR, VIREO_VERSION_MINOR, VIREO_VERSION_PATCH);
  CHECK(strcmp(vireo_version_string(), want) == 0);
  CHECK(VIREO_VERSION == VIREO_VERSION_MAJOR * 10000 + VIREO_VERSION_MINOR * 100 + VIREO_VERSION_PATCH);
  CHECK(strcmp(vireo_status_string(VIREO_STATUS_OK), "ok") == 0);
  CHECK(strcmp(vireo_status_string(VIREO_STATUS_CANCELLED), "cancelled") == 0);
  CHECK(strcmp(vireo_status_string((vireo_status)1234), "unknown status") == 0);
}

static void test_log(void) {
  vireo_model_params p = vireo_model_default_params();
  vireo_model* m = NULL;
  p.device = VIREO_DEVICE_BEST; /* Device::best() logs its choice (info) */
  vireo_log_set_level(VIREO_LOG_DEBUG);
  vireo_log_set(log_a, &log_a_calls);
  CHECK_STATUS(vireo_model_load("/nonexistent/dir/model.gguf", &p, &m), VIREO_STATUS_IO);
  CHECK(m == NULL);
  CHECK(log_a_calls == 1);
  CHECK(strlen(log_last) > 0);
  CHECK_STATUS(vireo_model_load("/nonexistent/dir/model.gguf", &p, &m), VIREO_STATUS_IO);
  CHECK(log_a_calls == 1);
  CHECK(log_b_calls >= 1);
  /* Below the level: dropped. */
  vireo_log_set_level(VIREO_LOG_ERROR);
  int before = log_b_calls;
  CHECK_STATUS(vireo_model_load("/nonexistent/dir/model.gguf", &p, &m), VIREO_STATUS_IO);
  CHECK(log_b_calls == before);
  vireo_log_set_level((vireo_log_level)99); /* clamped, not UB */
  vireo_log_set(NULL, NULL);                /* the default stderr sink again */
  vireo_log_set_level(VIREO_LOG_WARN);
}

static void test_bad_arguments(void) {
  vireo_model* m = NULL;
  CHECK_STATUS(vireo_model_load(NULL, NULL, &m), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(vireo_model_load("x.gguf", NULL, NULL), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(vireo_model_load("/nonexistent.gguf", NULL, &m), VIREO_STATUS_IO);
  CHECK(m == NULL);
  vireo_model_params p = vireo_model_default_params();
  p.device = (vireo_device_kind)7;
  CHECK_STATUS(vireo_model_load("/nonexistent.gguf", &p, &m), VIREO_STATUS_INVALID_ARGUMENT);
  p = vireo_model_default_params();
  p.n_threads = -2;
  CHECK_STATUS(vireo_model_load("/nonexistent.gguf", &p, &m), VIREO_STATUS_INVALID_ARGUMENT);
  /* A file that is not GGUF. */
  {
    const char* path = "vireo_c_not_gguf.bin";
    FILE* f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
      fputs("this is not a GGUF file, just some text that is long enough to be read", f);
      fclose(f);
      CHECK_STATUS(vireo_model_load(path, NULL, &m), VIREO_STATUS_INVALID_MODEL);
      remove(path);
    }
  }
  {
    char buf[16] = {0};
    CHECK_STATUS(vireo_model_load_from_memory(buf, sizeof buf, NULL, &m), VIREO_STATUS_INVALID_MODEL);
    CHECK_STATUS(vireo_model_load_from_memory(NULL, 16, NULL, &m), VIREO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(vireo_model_load_from_memory(buf, 0, NULL, &m), VIREO_STATUS_INVALID_ARGUMENT);
  }
  vireo_model_info info;
  CHECK_STATUS(vireo_model_get_info(NULL, &info), VIREO_STATUS_INVALID_ARGUMENT);
  size_t n = 0;
  vireo_token toks[4];
  CHECK_STATUS(vireo_tokenize(NULL, "hi", 2, true, false, toks, 4, &n), VIREO_STATUS_INVALID_ARGUMENT);
  char text[8];
  CHECK_STATUS(vireo_detokenize(NULL, toks, 0, false, text, sizeof text, &n), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK(!vireo_token_is_eog(NULL, 0));
  vireo_stream* st = NULL;
  CHECK_STATUS(vireo_stream_new(NULL, true, &st), VIREO_STATUS_INVALID_ARGUMENT);
  const char* piece = NULL;
  CHECK_STATUS(vireo_stream_push(NULL, 1, &piece, &n), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(vireo_stream_flush(NULL, &piece, &n), VIREO_STATUS_INVALID_ARGUMENT);
  vireo_kv_cache* c = NULL;
  CHECK_STATUS(vireo_kv_cache_new(NULL, NULL, &c), VIREO_STATUS_INVALID_ARGUMENT);
  vireo_seq_id s = 0;
  CHECK_STATUS(vireo_kv_cache_add_sequence(NULL, &s), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(vireo_kv_cache_truncate(NULL, 0, 0), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(vireo_kv_cache_remove(NULL, 0), VIREO_STATUS_INVALID_ARGUMENT);
  int64_t len = 0;
  CHECK_STATUS(vireo_kv_cache_length(NULL, 0, &len), VIREO_STATUS_INVALID_ARGUMENT);
  vireo_kv_cache_stats stats;
  CHECK_STATUS(vireo_kv_cache_get_stats(NULL, &stats), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(vireo_batch_new(NULL), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(vireo_batch_add(NULL, 0, toks, 1, VIREO_WANT_LAST), VIREO_STATUS_INVALID_ARGUMENT);
  vireo_batch* b = NULL;
  CHECK_STATUS(vireo_batch_new(&b), VIREO_STATUS_OK);
  CHECK_STATUS(vireo_batch_add(b, 0, NULL, 3, VIREO_WANT_LAST), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(vireo_batch_add(b, 0, toks, 1, (vireo_want)9), VIREO_STATUS_INVALID_ARGUMENT);
  vireo_batch_clear(NULL);
  vireo_logits* lg = NULL;
  CHECK_STATUS(vireo_logits_new(&lg), VIREO_STATUS_OK);
  CHECK(vireo_logits_rows(lg) == 0);
  CHECK(vireo_logits_rows(NULL) == 0);
  CHECK(vireo_logits_row(lg, 0, NULL) == NULL);
  CHECK_STATUS(vireo_logits_row_info(lg, 0, &s, &n), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(vireo_forward(NULL, NULL, b, lg, NULL, NULL), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(vireo_forward_sample(NULL, NULL, b, NULL, 0, NULL, NULL, toks, NULL, NULL, NULL),
               VIREO_STATUS_INVALID_ARGUMENT);
  vireo_logits_free(lg);
  vireo_batch_free(b);

  vireo_sampler* sm = NULL;
  vireo_sampler_params sp = vireo_sampler_default_params();
  sp.top_p = 2.0f;
  CHECK_STATUS(vireo_sampler_new(&sp, &sm), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK(sm == NULL);
  sp = vireo_sampler_default_params();
  sp.temperature = 0.0f;
  CHECK_STATUS(vireo_sampler_new(&sp, &sm), VIREO_STATUS_OK);
  float logits[4] = {0.1f, 2.0f, -1.0f, 0.5f};
  vireo_token t = -1;
  float lp = 0.0f;
  CHECK_STATUS(vireo_sampler_sample(sm, logits, 4, NULL, 0, &t, &lp), VIREO_STATUS_OK);
  CHECK(t == 1);
  CHECK(lp < 0.0f);
  CHECK_STATUS(vireo_sampler_sample(sm, logits, 0, NULL, 0, &t, &lp), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(vireo_sampler_sample(sm, NULL, 4, NULL, 0, &t, &lp), VIREO_STATUS_INVALID_ARGUMENT);
  vireo_token hist[2] = {1, 4};
  CHECK_STATUS(vireo_sampler_sample(sm, logits, 4, hist, 2, &t, &lp), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(vireo_sampler_sample(sm, logits, 4, NULL, 2, &t, &lp), VIREO_STATUS_INVALID_ARGUMENT);
  /* Logit bias: ban the argmax, the next best wins; a bad bias changes nothing. */
  vireo_token ban_tok[1] = {1};
  float ban[1] = {-INFINITY}, nan_bias[1] = {NAN};
  CHECK_STATUS(vireo_sampler_set_logit_bias(sm, ban_tok, ban, 1), VIREO_STATUS_OK);
  CHECK_STATUS(vireo_sampler_sample(sm, logits, 4, NULL, 0, &t, &lp), VIREO_STATUS_OK);
  CHECK(t == 3);
  CHECK_STATUS(vireo_sampler_set_logit_bias(sm, ban_tok, nan_bias, 1), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(vireo_sampler_set_logit_bias(sm, NULL, ban, 1), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(vireo_sampler_set_logit_bias(NULL, ban_tok, ban, 1), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(vireo_sampler_sample(sm, logits, 4, NULL, 0, &t, &lp), VIREO_STATUS_OK);
  CHECK(t == 3); /* still banned */
  vireo_token far_tok[1] = {4};
  float up[1] = {1.0f};
  CHECK_STATUS(vireo_sampler_set_logit_bias(sm, far_tok, up, 1), VIREO_STATUS_OK);
  CHECK_STATUS(vireo_sampler_sample(sm, logits, 4, NULL, 0, &t, &lp), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(vireo_sampler_set_logit_bias(sm, NULL, NULL, 0), VIREO_STATUS_OK);
  CHECK_STATUS(vireo_sampler_sample(sm, logits, 4, NULL, 0, &t, &lp), VIREO_STATUS_OK);
  CHECK(t == 1);
  {
    volatile float zero = 0.0f;
    logits[2] = zero / zero; /* NaN */
  }
  CHECK_STATUS(vireo_sampler_sample(sm, logits, 4, NULL, 0, &t, &lp), VIREO_STATUS_INVALID_ARGUMENT);
  vireo_sampler_free(sm);
  vireo_sampler_free(NULL);

  vireo_scheduler* sc = NULL;
  CHECK_STATUS(vireo_scheduler_new(NULL, NULL, NULL, &sc), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(vireo_scheduler_submit(NULL, NULL), VIREO_STATUS_INVALID_ARGUMENT);
  const vireo_token_event* ev = NULL;
  CHECK_STATUS(vireo_scheduler_step(NULL, &ev, &n), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK(vireo_scheduler_idle(NULL));
  vireo_speculative* spec = NULL;
  CHECK_STATUS(vireo_speculative_new(NULL, NULL, NULL, &spec), VIREO_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(vireo_speculative_step(NULL, toks, 1, NULL, 0, NULL, 0, NULL, toks, 4, &n),
               VIREO_STATUS_INVALID_ARGUMENT);
  /* Freeing NULL is a no-op everywhere. */
  vireo_model_free(NULL);
  vireo_kv_cache_free(NULL);
  vireo_batch_free(NULL);
  vireo_logits_free(NULL);
  vireo_stream_free(NULL);
  vireo_scheduler_free(NULL);
  vireo_speculative_free(NULL);
}

#if !defined(__STDC_NO_THREADS__)
static int fail_on_thread(void* arg) {
  vireo_model* m = NULL;
  (void)arg;
  return vireo_model_load("/nonexistent/other-thread.gguf", NULL, &m) == VIREO_STATUS_IO &&
         strstr(vireo_last_error(), "other-thread") != NULL;
}

/* The last error is per thread: a failure on another thread leaves this thread's alone. */
static void test_thread_local_error(void) {
  CHECK_STATUS(vireo_sampler_new(NULL, NULL), VIREO_STATUS_INVALID_ARGUMENT);
  const char* before = vireo_last_error();
  char copy[256];
  strncpy(copy, before, sizeof copy - 1);
  copy[sizeof copy - 1] = '\0';
  thrd_t t;
  int ok = 0;
  CHECK(thrd_create(&t, fail_on_thread, NULL) == thrd_success);
  CHECK(thrd_join(t, &ok) == thrd_success);
  CHECK(ok == 1);
  CHECK(strcmp(vireo_last_error(), copy) == 0);
}
#endif

int main(void) {
#if !defined(__STDC_NO_THREADS__)
  test_thread_local_error();
#endif
  test_version();
  test_log();
  test_bad_arguments();
  return check_summary("capi basics");
}
