/* vireo-chat-c: the multi-turn chat of vireo_chat.cpp written against the C API (vireo.h).
 * Each line read from stdin is a user turn; the reply streams to stdout. Every turn renders
 * the conversation with the model's chat template and feeds only the tokens the KV cache
 * does not hold yet.
 *
 *   vireo-chat-c [model.gguf] [max_tokens] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vireo/vireo.h"

#define MAX_TURNS 64
#define MAX_CTX 8192

static int die(const char* what) {
  fprintf(stderr, "%s: %s\n", what, vireo_last_error());
  return 1;
}

int main(int argc, char** argv) {
  const char* path = argc > 1 ? argv[1] : "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  int max_tokens = argc > 2 ? atoi(argv[2]) : 256;
  static char texts[MAX_TURNS * 2 + 1][4096];
  static vireo_token prompt[MAX_CTX], held[MAX_CTX];
  vireo_chat_message chat[MAX_TURNS * 2 + 1] = {{"system", "You are a helpful assistant."}};
  size_t n_chat = 1, n_held = 0;

  vireo_log_set_level(VIREO_LOG_WARN);
  vireo_model* model = NULL;
  vireo_kv_cache* cache = NULL;
  vireo_sampler* sampler = NULL;
  vireo_batch* batch = NULL;
  vireo_logits* logits = NULL;
  vireo_sampler_params sp = vireo_sampler_default_params();
  sp.temperature = 0.7f;
  sp.top_p = 0.9f;
  sp.seed = 42;
  if (vireo_model_load(path, NULL, &model) || vireo_kv_cache_new(model, NULL, &cache) ||
      vireo_sampler_new(&sp, &sampler) || vireo_batch_new(&batch) || vireo_logits_new(&logits))
    return die("setup");
  vireo_seq_id seq;
  vireo_kv_cache_add_sequence(cache, &seq);

  char* line = texts[0];
  while (n_chat + 2 <= MAX_TURNS * 2 && (printf("> "), fflush(stdout), fgets(line = texts[n_chat], 4096, stdin))) {
    line[strcspn(line, "\n")] = '\0';
    chat[n_chat++] = (vireo_chat_message){"user", line};
    size_t n_prompt, same = 0;
    if (vireo_chat_tokenize(model, chat, n_chat, true, true, prompt, MAX_CTX, &n_prompt)) return die("prompt");
    while (same < n_held && same + 1 < n_prompt && held[same] == prompt[same]) ++same;
    vireo_kv_cache_truncate(cache, seq, (int64_t)same); /* keep the common prefix */
    memcpy(held, prompt, n_prompt * sizeof *prompt);
    n_held = n_prompt;

    vireo_stream* stream = NULL;
    vireo_stream_new(model, true, &stream);
    char* reply = texts[n_chat];
    size_t reply_len = 0;
    vireo_batch_clear(batch);
    vireo_batch_add(batch, seq, prompt + same, n_prompt - same, VIREO_WANT_LAST);
    for (int n = 0; n < max_tokens && n_held < MAX_CTX; ++n) {
      size_t vocab, plen;
      vireo_token t;
      const char* piece;
      if (vireo_forward(model, cache, batch, logits, NULL, NULL)) return die("forward");
      const float* row = vireo_logits_row(logits, 0, &vocab);
      if (vireo_sampler_sample(sampler, row, vocab, held, n_held, &t, NULL)) return die("sample");
      held[n_held++] = t;
      vireo_batch_clear(batch);
      vireo_batch_add(batch, seq, &t, 1, VIREO_WANT_LAST);
      if (vireo_token_is_eog(model, t)) break;
      vireo_stream_push(stream, t, &piece, &plen);
      fwrite(piece, 1, plen, stdout);
      fflush(stdout);
      if (reply_len + plen < 4095) memcpy(reply + reply_len, piece, plen), reply_len += plen;
    }
    reply[reply_len] = '\0';
    vireo_stream_free(stream);
    --n_held; /* the last sampled token was never fed: the cache does not hold it */
    printf("\n");
    chat[n_chat++] = (vireo_chat_message){"assistant", reply};
  }
  vireo_logits_free(logits);
  vireo_batch_free(batch);
  vireo_sampler_free(sampler);
  vireo_kv_cache_free(cache);
  vireo_model_free(model);
  return 0;
}
