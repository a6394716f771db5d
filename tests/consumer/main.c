/* Consumer smoke test of the C API: the C++ consumer's greedy generation (main.cpp) through
 * vireo.h only, from a C11 program linked against the installed package. Prints the same
 * text, so CI can compare the two. */
#include <stdio.h>

#include <vireo/vireo.h>

#if !defined(VIREO_VERSION_MAJOR) || VIREO_VERSION < 100
#error "vireo.h must carry the version macros (0.1 or later)"
#endif

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: consumer_c model.gguf\n");
    return 2;
  }
  vireo_model* model = NULL;
  vireo_kv_cache* cache = NULL;
  vireo_sampler* sampler = NULL;
  vireo_batch* batch = NULL;
  vireo_logits* logits = NULL;
  vireo_kv_cache_params cp = vireo_kv_cache_default_params();
  vireo_sampler_params sp = vireo_sampler_default_params();
  cp.memory_budget_bytes = 64u << 20;
  sp.temperature = 0.0f;
  vireo_seq_id seq;
  vireo_token toks[64], out[8];
  size_t n = 0;
  const char* prompt = "The capital of France is";
  if (vireo_model_load(argv[1], NULL, &model) || vireo_kv_cache_new(model, &cp, &cache) ||
      vireo_sampler_new(&sp, &sampler) || vireo_batch_new(&batch) || vireo_logits_new(&logits) ||
      vireo_kv_cache_add_sequence(cache, &seq) ||
      vireo_tokenize(model, prompt, 24, true, false, toks, 64, &n) ||
      vireo_batch_add(batch, seq, toks, n, VIREO_WANT_LAST)) {
    fprintf(stderr, "%s\n", vireo_last_error());
    return 1;
  }
  for (int i = 0; i < 8; ++i) {
    size_t vocab = 0;
    const float* row = NULL;
    if (vireo_forward(model, cache, batch, logits, NULL, NULL) || !(row = vireo_logits_row(logits, 0, &vocab)) ||
        vireo_sampler_sample(sampler, row, vocab, NULL, 0, &out[i], NULL)) {
      fprintf(stderr, "%s\n", vireo_last_error());
      return 1;
    }
    vireo_batch_clear(batch);
    vireo_batch_add(batch, seq, &out[i], 1, VIREO_WANT_LAST);
  }
  char text[512];
  size_t len = 0;
  if (vireo_detokenize(model, out, 8, false, text, sizeof text, &len)) {
    fprintf(stderr, "%s\n", vireo_last_error());
    return 1;
  }
  printf("%s\n", text);
  vireo_logits_free(logits);
  vireo_batch_free(batch);
  vireo_sampler_free(sampler);
  vireo_kv_cache_free(cache);
  vireo_model_free(model);
  return 0;
}
