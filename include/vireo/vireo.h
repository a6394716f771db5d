/* vireo.h: the C API (C11). A thin layer over the C++ API (vireo.hpp) for hosts built without
 * exceptions and for other languages (C#, Rust, Python ctypes).
 *
 * Conventions:
 * - Objects are opaque handles made by vireo_*_new / vireo_model_load and released by the
 *   matching vireo_*_free (which accepts NULL). Parameters come in structs initialised by
 *   vireo_*_default_params().
 * - Every function that can fail returns a vireo_status. On failure the calling thread's
 *   vireo_last_error() holds a message naming the problem, outputs are left untouched unless
 *   the function says otherwise, and every handle is as it was before the call.
 * - No exception ever leaves this API; nothing here aborts the process.
 * - Text is UTF-8 with an explicit length (no NUL terminator needed); text that is not valid
 *   UTF-8 is refused with VIREO_STATUS_INVALID_ARGUMENT. File paths are NUL-terminated UTF-8,
 *   on Windows too.
 * - Threads: a model may be shared by several threads; a KV cache, sampler, scheduler,
 *   speculative decoder, batch, logits or stream decoder is used by one thread at a time.
 */
#ifndef VIREO_VIREO_H
#define VIREO_VIREO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vireo/export.h"
#include "vireo/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes and errors ----------------------------------------------------------- */

typedef enum vireo_status {
  VIREO_STATUS_OK = 0,
  /* A caller passed a bad value: a NULL handle or pointer, a wrong size, text that is not
   * UTF-8, a token id outside [0, vocab), an unknown sequence, a bad option. */
  VIREO_STATUS_INVALID_ARGUMENT = 1,
  /* The model file is malformed, truncated or inconsistent. */
  VIREO_STATUS_INVALID_MODEL = 2,
  /* Well-formed but not supported here (architecture, tensor type, device, loading from
   * memory). */
  VIREO_STATUS_UNSUPPORTED = 3,
  /* The KV cache has no room for the tokens asked for; nothing was appended. */
  VIREO_STATUS_CACHE_FULL = 4,
  /* A host or device allocation failed. */
  VIREO_STATUS_OUT_OF_MEMORY = 5,
  /* A file could not be opened, read or mapped. */
  VIREO_STATUS_IO = 6,
  /* A CUDA / cuBLAS call failed (the message has the CUDA error text). */
  VIREO_STATUS_CUDA = 7,
  /* The call was aborted by its progress or abort callback. */
  VIREO_STATUS_CANCELLED = 8,
  /* A broken invariant inside vireo: a bug, please report it with the message. */
  VIREO_STATUS_INTERNAL = 9,
  /* The caller's output buffer is too small; the size needed was written to the size output
   * and nothing else changed. */
  VIREO_STATUS_BUFFER_TOO_SMALL = 10,
  /* A queue is full (the scheduler's max_waiting): nothing was queued; retry later. */
  VIREO_STATUS_OVERLOADED = 11
} vireo_status;

/* The message of the most recent failed call on this thread ("" if none). The pointer stays
 * valid until the next failing vireo call on this thread. Never NULL. */
VIREO_API const char* vireo_last_error(void);
/* A short constant name for a status ("ok", "invalid argument", ...). Never NULL. */
VIREO_API const char* vireo_status_string(vireo_status status);
/* The library's version as "major.minor.patch" (compare with VIREO_VERSION_* of the headers). */
VIREO_API const char* vireo_version_string(void);

/* ---- logging ---------------------------------------------------------------------------- */

typedef enum vireo_log_level {
  VIREO_LOG_DEBUG = 0,
  VIREO_LOG_INFO = 1,
  VIREO_LOG_WARN = 2,
  VIREO_LOG_ERROR = 3
} vireo_log_level;

/* Receives one message (NUL-terminated, no trailing newline). It may be called from any
 * thread that runs vireo work, one message at a time. It may call vireo_log_set and
 * vireo_log_set_level (to reconfigure logging from inside itself); it must not call functions
 * that load, run or free models. */
typedef void (*vireo_log_fn)(vireo_log_level level, const char* message, void* user_data);

/* Send vireo's messages to `fn` with `user_data`; fn == NULL restores the default sink
 * (stderr). Replaces any sink set through the C++ vireo::set_log_callback. */
VIREO_API void vireo_log_set(vireo_log_fn fn, void* user_data);
/* Messages below `level` are dropped (default: VIREO_LOG_INFO). Out-of-range levels are
 * clamped. */
VIREO_API void vireo_log_set_level(vireo_log_level level);

/* ---- models ----------------------------------------------------------------------------- */

typedef int32_t vireo_token;   /* 0 <= token < vocabulary size */
typedef int32_t vireo_seq_id;  /* a sequence issued by a KV cache */

typedef struct vireo_model vireo_model;

typedef enum vireo_device_kind {
  VIREO_DEVICE_CPU = 0,
  VIREO_DEVICE_CUDA = 1,
  VIREO_DEVICE_BEST = 2 /* a usable CUDA GPU if there is one, else the CPU */
} vireo_device_kind;

typedef enum vireo_dtype { VIREO_DTYPE_F32 = 0, VIREO_DTYPE_F16 = 1, VIREO_DTYPE_BF16 = 2 } vireo_dtype;

/* Load progress in [0, 1]. Return false to abort the load: vireo_model_load then returns
 * VIREO_STATUS_CANCELLED. (The loader reports a few fixed stages today and checks for the
 * abort between them.) */
typedef bool (*vireo_progress_fn)(float progress, void* user_data);

typedef struct vireo_model_params {
  vireo_device_kind device;  /* default VIREO_DEVICE_CPU */
  int device_index;          /* CUDA device ordinal (VIREO_DEVICE_CUDA) */
  vireo_dtype dtype;         /* GPU activations / weights (default bf16); the CPU is always f32 */
  int n_threads;             /* CPU threads; 0 = all hardware threads */
  bool gpu_quantized;        /* CUDA: keep Q8_0 / Q4_0 / Q4_1 matrices quantized */
  bool cpu_quantize_activations; /* CPU: 8-bit activations for decode steps */
  vireo_progress_fn progress; /* optional */
  void* progress_user_data;
  /* CUDA: when the GPU cannot take the model (no CUDA in this build, a compute capability
   * or architecture without kernels, too little free memory), load on the CPU and log why
   * instead of failing (default false: UNSUPPORTED / OUT_OF_MEMORY / CUDA naming the reason,
   * before anything is uploaded). */
  bool fallback_to_cpu;
} vireo_model_params;

VIREO_API vireo_model_params vireo_model_default_params(void);

/* Load a GGUF file; `path` is UTF-8 text (on Windows too). `params` may be NULL (defaults).
 * On success *out_model is a new model; on failure it is left untouched. Returns
 * INVALID_ARGUMENT (NULL path / out), IO, INVALID_MODEL, UNSUPPORTED, OUT_OF_MEMORY, CUDA or
 * CANCELLED (the progress callback returned false). */
VIREO_API vireo_status vireo_model_load(const char* path, const vireo_model_params* params, vireo_model** out_model);
/* Load a GGUF image of `size` bytes held in memory (an asset pack, a download). The bytes are
 * copied: the caller may free them when the call returns. Errors as vireo_model_load, and
 * INVALID_ARGUMENT for NULL data or size 0. */
VIREO_API vireo_status vireo_model_load_from_memory(const void* data, size_t size, const vireo_model_params* params,
                                                    vireo_model** out_model);
VIREO_API void vireo_model_free(vireo_model* model);

typedef struct vireo_model_info {
  int32_t n_layers, d_model, n_heads, n_kv_heads, head_dim, d_ff, vocab_size, context_length;
  uint64_t weight_bytes;    /* weights as stored on the model's device */
  int64_t n_params;
  vireo_device_kind device; /* where it runs: CPU or CUDA */
  vireo_token bos, eos;     /* -1 when the vocabulary has none */
} vireo_model_info;

/* Fill *out with the model's shape. INVALID_ARGUMENT for NULL pointers. */
VIREO_API vireo_status vireo_model_get_info(const vireo_model* model, vireo_model_info* out);

/* ---- tokenizer -------------------------------------------------------------------------- */

/* Encode `text_len` bytes of UTF-8 `text`. add_special: prepend BOS when the vocabulary
 * asks for it; parse_special: recognise special tokens such as "<|im_end|>" written in the
 * text (false for text a user typed). The ids are written to out_tokens (capacity
 * `capacity`) and their count to *out_n. If capacity is too small, *out_n receives the
 * count needed and VIREO_STATUS_BUFFER_TOO_SMALL is returned (out_tokens may be NULL then).
 * INVALID_ARGUMENT: NULL model / out_n, text NULL with text_len > 0, invalid UTF-8. */
VIREO_API vireo_status vireo_tokenize(const vireo_model* model, const char* text, size_t text_len, bool add_special,
                                      bool parse_special, vireo_token* out_tokens, size_t capacity, size_t* out_n);

/* The text of `n` tokens, written to out_text with a terminating NUL when it fits
 * (capacity counts the NUL). *out_len receives the text's length without the NUL; when
 * capacity < length + 1, BUFFER_TOO_SMALL is returned and only *out_len is written.
 * skip_special drops control tokens. INVALID_ARGUMENT: NULL pointers, a token outside the
 * vocabulary. */
VIREO_API vireo_status vireo_detokenize(const vireo_model* model, const vireo_token* tokens, size_t n,
                                        bool skip_special, char* out_text, size_t capacity, size_t* out_len);

/* true for end-of-generation tokens (EOS, "<|im_end|>", "<|eot_id|>", ...); false for NULL
 * or out-of-range arguments. */
VIREO_API bool vireo_token_is_eog(const vireo_model* model, vireo_token token);

typedef struct vireo_chat_message {
  const char* role;    /* "system", "user" or "assistant", NUL-terminated UTF-8 */
  const char* content; /* NUL-terminated UTF-8 */
} vireo_chat_message;

/* Render a conversation with the model's chat template (output as in vireo_detokenize), to
 * show or log it. To feed a model, use vireo_chat_tokenize: tokenizing this text with
 * parse_special = true would also turn special-token text inside a message (a user typing
 * "<|im_end|>") into a control token. UNSUPPORTED for a template vireo does not know. */
VIREO_API vireo_status vireo_chat_apply_template(const vireo_model* model, const vireo_chat_message* messages,
                                                 size_t n_messages, bool add_generation_prompt, char* out_text,
                                                 size_t capacity, size_t* out_len);

/* The token ids of that rendering (BOS first when add_special and the vocabulary asks for
 * it), written as in vireo_tokenize. Only the template's own markers become special tokens:
 * special-token text in a role or content stays text. */
VIREO_API vireo_status vireo_chat_tokenize(const vireo_model* model, const vireo_chat_message* messages,
                                           size_t n_messages, bool add_generation_prompt, bool add_special,
                                           vireo_token* out_tokens, size_t capacity, size_t* out_n);

/* Streaming detokenizer: turns generated tokens into text pieces that are always whole
 * UTF-8 characters (an incomplete character is held back until its last byte arrives). */
typedef struct vireo_stream vireo_stream;

/* `model` must outlive the stream. skip_special: drop control tokens from the text. */
VIREO_API vireo_status vireo_stream_new(const vireo_model* model, bool skip_special, vireo_stream** out_stream);
VIREO_API void vireo_stream_free(vireo_stream* stream);
/* Push one token; *out_text / *out_len receive the text completed by it (possibly empty;
 * NUL-terminated), valid until the next call on this stream.
 * INVALID_ARGUMENT for an out-of-range token (the stream is unchanged). */
VIREO_API vireo_status vireo_stream_push(vireo_stream* stream, vireo_token token, const char** out_text,
                                         size_t* out_len);
/* Whatever is held back (an incomplete tail becomes U+FFFD); the stream starts afresh. */
VIREO_API vireo_status vireo_stream_flush(vireo_stream* stream, const char** out_text, size_t* out_len);

/* ---- KV cache --------------------------------------------------------------------------- */

typedef struct vireo_kv_cache vireo_kv_cache;

typedef enum vireo_kv_precision {
  VIREO_KV_MODEL = 0, /* the model's KV type: f32 on the CPU, bf16 / f16 on a GPU */
  VIREO_KV_INT8 = 1   /* int8 with one f32 scale per row */
} vireo_kv_precision;

typedef struct vireo_kv_cache_params {
  uint64_t memory_budget_bytes; /* size of the pool when num_blocks == 0 (default 256 MiB) */
  int64_t num_blocks;           /* exact number of blocks when > 0 */
  int32_t block_size;           /* tokens per block (default 16) */
  bool prefix_caching;          /* reuse cached prompt prefixes (default true) */
  vireo_kv_precision precision;
} vireo_kv_cache_params;

typedef struct vireo_kv_cache_stats {
  int64_t blocks_total, blocks_used, blocks_cached, blocks_free, tokens_stored;
  uint64_t bytes_total, bytes_used, bytes_per_token;
  int64_t sequences, prefix_query_tokens, prefix_hit_tokens, evictions;
} vireo_kv_cache_stats;

VIREO_API vireo_kv_cache_params vireo_kv_cache_default_params(void);
/* A cache shaped for `model` on its device; the model must outlive it. INVALID_ARGUMENT for a
 * budget below one block, OUT_OF_MEMORY when the pool cannot be allocated. */
VIREO_API vireo_status vireo_kv_cache_new(const vireo_model* model, const vireo_kv_cache_params* params,
                                          vireo_kv_cache** out_cache);
VIREO_API void vireo_kv_cache_free(vireo_kv_cache* cache);
/* A new, empty sequence. */
VIREO_API vireo_status vireo_kv_cache_add_sequence(vireo_kv_cache* cache, vireo_seq_id* out_seq);
/* A new sequence reusing the longest cached prefix of `prompt`; *out_reused receives how many
 * prompt tokens are already in it (feed prompt[*out_reused..] to the model). */
VIREO_API vireo_status vireo_kv_cache_add_sequence_prefix(vireo_kv_cache* cache, const vireo_token* prompt,
                                                          size_t n_prompt, vireo_seq_id* out_seq,
                                                          int64_t* out_reused);
/* A new sequence sharing all of `seq`'s blocks (copy on write). */
VIREO_API vireo_status vireo_kv_cache_fork(vireo_kv_cache* cache, vireo_seq_id seq, vireo_seq_id* out_seq);
/* Keep the first `length` tokens of `seq` (0 <= length <= its length). */
VIREO_API vireo_status vireo_kv_cache_truncate(vireo_kv_cache* cache, vireo_seq_id seq, int64_t length);
VIREO_API vireo_status vireo_kv_cache_remove(vireo_kv_cache* cache, vireo_seq_id seq);
/* Write `seq` (its tokens and K/V) to the file `path` (UTF-8), replaced whole or left as it
 * was: a versioned, checksummed format tied to the cache's model, KV precision and block
 * size. INVALID_ARGUMENT: NULL, unknown sequence; IO: cannot write. */
VIREO_API vireo_status vireo_kv_cache_save(const vireo_kv_cache* cache, vireo_seq_id seq, const char* path);
/* A new sequence holding what vireo_kv_cache_save wrote. INVALID_ARGUMENT: NULL, not a
 * vireo KV file, another version, damaged (checksum), saved with another model, precision
 * or block size (the message names which); IO: unreadable; CACHE_FULL: no room. The cache
 * is unchanged on any error. */
VIREO_API vireo_status vireo_kv_cache_restore(vireo_kv_cache* cache, const char* path, vireo_seq_id* out_seq);
/* Tokens `seq` holds. INVALID_ARGUMENT for an unknown sequence. */
VIREO_API vireo_status vireo_kv_cache_length(const vireo_kv_cache* cache, vireo_seq_id seq, int64_t* out_length);
VIREO_API vireo_status vireo_kv_cache_get_stats(const vireo_kv_cache* cache, vireo_kv_cache_stats* out);

/* ---- one forward step ------------------------------------------------------------------- */

typedef struct vireo_batch vireo_batch;
typedef struct vireo_logits vireo_logits;

typedef enum vireo_want {
  VIREO_WANT_NONE = 0, /* no logits for these tokens */
  VIREO_WANT_LAST = 1, /* logits for the last token of this add (a prompt, a decode token) */
  VIREO_WANT_ALL = 2   /* logits for every token (speculative verification) */
} vireo_want;

VIREO_API vireo_status vireo_batch_new(vireo_batch** out_batch);
VIREO_API void vireo_batch_free(vireo_batch* batch);
VIREO_API void vireo_batch_clear(vireo_batch* batch);
/* Append `n` tokens of sequence `seq` (they follow what the sequence holds, in order).
 * Tokens are range-checked by vireo_forward, which knows the vocabulary. */
VIREO_API vireo_status vireo_batch_add(vireo_batch* batch, vireo_seq_id seq, const vireo_token* tokens, size_t n,
                                       vireo_want want);

VIREO_API vireo_status vireo_logits_new(vireo_logits** out_logits);
VIREO_API void vireo_logits_free(vireo_logits* logits);
/* Rows (one per token that asked for logits, in batch order); 0 for NULL. */
VIREO_API size_t vireo_logits_rows(const vireo_logits* logits);
/* Row `i` (vocabulary-sized floats, valid until the next forward into these logits), its
 * length, sequence and index in the batch. NULL / INVALID_ARGUMENT for a bad row. */
VIREO_API const float* vireo_logits_row(const vireo_logits* logits, size_t i, size_t* out_vocab);
VIREO_API vireo_status vireo_logits_row_info(const vireo_logits* logits, size_t i, vireo_seq_id* out_seq,
                                             size_t* out_batch_index);

/* Returns true to abort the forward step that it was passed to. */
typedef bool (*vireo_abort_fn)(void* user_data);

/* Run one step: append every batch token to its sequence in `cache`, and write the logits of
 * the tokens that asked for them into `out_logits`.
 *
 * abort_fn (optional) is polled about every millisecond while the step runs, from a helper
 * thread vireo starts for this call (so it must be thread-safe), and once before the step.
 * When it returns true the step stops at its next check and returns VIREO_STATUS_CANCELLED
 * with the cache as it was; other steps running on the same model go on. The CPU checks
 * between ops and runs a long prefill in chunks of a few hundred tokens, so the stop comes
 * within tens of milliseconds on a small model; a GPU step stops between layers.
 *
 * Errors: INVALID_ARGUMENT (NULL pointers, an out-of-range token, an unknown or swapped
 * sequence, a cache made for another model), CACHE_FULL (no room), CANCELLED, CUDA. On any
 * error the cache holds exactly what it held before the call. */
VIREO_API vireo_status vireo_forward(const vireo_model* model, vireo_kv_cache* cache, const vireo_batch* batch,
                                     vireo_logits* out_logits, vireo_abort_fn abort_fn, void* abort_user_data);

/* ---- sampling --------------------------------------------------------------------------- */

typedef struct vireo_sampler vireo_sampler;

typedef struct vireo_sampler_params {
  float temperature;        /* <= 0: greedy (default 1) */
  int32_t top_k;            /* 0: off */
  float top_p;              /* 1: off */
  float min_p;              /* 0: off */
  float repetition_penalty; /* 1: off */
  float presence_penalty;   /* 0: off */
  float frequency_penalty;  /* 0: off */
  int32_t penalty_last_n;   /* history window of the penalties (-1: all; default 64) */
  uint64_t seed;
} vireo_sampler_params;

VIREO_API vireo_sampler_params vireo_sampler_default_params(void);
/* params may be NULL (defaults). INVALID_ARGUMENT for values the sampler refuses (a NaN,
 * top_k < 0, top_p outside (0, 1], min_p outside [0, 1], ...), naming the field. */
VIREO_API vireo_status vireo_sampler_new(const vireo_sampler_params* params, vireo_sampler** out_sampler);
VIREO_API void vireo_sampler_free(vireo_sampler* sampler);
/* Replace the sampler's logit bias (OpenAI's logit_bias): biases[i] is added to the logit of
 * tokens[i] before penalties and truncation; -INFINITY bans the token. n = 0 clears it. The
 * random stream continues where it was. INVALID_ARGUMENT (sampler unchanged): NULL
 * pointers, a negative token, a NaN or +inf bias; a token outside the vocabulary is
 * refused by the next vireo_sampler_sample. */
VIREO_API vireo_status vireo_sampler_set_logit_bias(vireo_sampler* sampler, const vireo_token* tokens,
                                                    const float* biases, size_t n);
/* Draw one token from `n_vocab` logits; `history` (n_history tokens, may be NULL when 0)
 * feeds the penalties. INVALID_ARGUMENT for NULL pointers, n_vocab == 0, NaN logits or a
 * history token outside [0, n_vocab). out_logprob may be NULL. */
VIREO_API vireo_status vireo_sampler_sample(vireo_sampler* sampler, const float* logits, size_t n_vocab,
                                            const vireo_token* history, size_t n_history, vireo_token* out_token,
                                            float* out_logprob);

/* One step, then one token per logits row (as vireo_forward followed by
 * vireo_sampler_sample on each row, drawing the same numbers): row i, in batch order, is
 * sampled with samplers[i]. On a GPU, when no sampler has penalties and the step has at most
 * 64 logits rows, sampling runs on the device and only the tokens and log-probs come back.
 * n_samplers must equal the batch's logits rows (checked before anything runs). histories
 * may be NULL; else histories[i] (history_lens[i] tokens, may be NULL when 0) is row i's
 * sequence so far for the penalties. out_logprobs may be NULL. Errors as vireo_forward, and
 * INVALID_ARGUMENT for a count mismatch or a history token outside the vocabulary; on any
 * error no sampler advances and the cache holds what it held. */
VIREO_API vireo_status vireo_forward_sample(const vireo_model* model, vireo_kv_cache* cache, const vireo_batch* batch,
                                            vireo_sampler* const* samplers, size_t n_samplers,
                                            const vireo_token* const* histories, const size_t* history_lens,
                                            vireo_token* out_tokens, float* out_logprobs, vireo_abort_fn abort_fn,
                                            void* abort_user_data);

/* ---- scheduler (continuous batching) ---------------------------------------------------- */

typedef struct vireo_scheduler vireo_scheduler;

typedef struct vireo_scheduler_params {
  bool static_batching;    /* false: continuous batching (default) */
  bool preempt_recompute;  /* false: preempt by swapping to host memory (default) */
  int32_t max_batch_tokens; /* token budget of one forward (default 256) */
  int32_t max_running;      /* sequences in flight (default 32) */
  bool prefix_caching;      /* default true */
} vireo_scheduler_params;

typedef struct vireo_request {
  uint64_t id;                /* unique among the scheduler's requests */
  const vireo_token* prompt;  /* copied by submit */
  size_t n_prompt;
  int32_t max_new_tokens;     /* default 64 */
  vireo_sampler_params sampling;
  bool stop_at_eog;           /* default true */
  const vireo_token* stop_tokens; /* more tokens that end the request, copied */
  size_t n_stop_tokens;
} vireo_request;

typedef struct vireo_token_event {
  uint64_t id;
  vireo_token token;
  float logprob;
  bool first;    /* the request's first output token */
  bool finished; /* the request ended with this token */
} vireo_token_event;

VIREO_API vireo_scheduler_params vireo_scheduler_default_params(void);
VIREO_API vireo_request vireo_request_default_params(void);
/* The model and cache must outlive the scheduler, and the cache is the scheduler's while it
 * runs. INVALID_ARGUMENT for bad budgets (max_running > max_batch_tokens, < 1). */
VIREO_API vireo_status vireo_scheduler_new(const vireo_model* model, vireo_kv_cache* cache,
                                           const vireo_scheduler_params* params, vireo_scheduler** out_scheduler);
VIREO_API void vireo_scheduler_free(vireo_scheduler* scheduler);
/* Queue a request. INVALID_ARGUMENT: empty prompt, a token outside the vocabulary, a
 * duplicate id, max_new_tokens < 1, a request longer than the context or than the pool. */
VIREO_API vireo_status vireo_scheduler_submit(vireo_scheduler* scheduler, const vireo_request* request);
/* One forward over the scheduled tokens. *out_events / *out_n receive the sampled tokens in
 * batch order, valid until the next step or free. A failed step (CACHE_FULL, CANCELLED,
 * CUDA, ...) leaves the scheduler only destructible: free it. */
VIREO_API vireo_status vireo_scheduler_step(vireo_scheduler* scheduler, const vireo_token_event** out_events,
                                            size_t* out_n);
/* true when nothing is waiting, running or swapped (and for NULL). */
VIREO_API bool vireo_scheduler_idle(const vireo_scheduler* scheduler);

/* ---- speculative decoding --------------------------------------------------------------- */

typedef struct vireo_speculative vireo_speculative;

typedef struct vireo_speculative_params {
  int32_t draft_tokens;     /* most drafts per round, 1..16 (default 4) */
  int32_t lookup_ngram;     /* prompt lookup: longest n-gram matched (default 3) */
  int32_t lookup_min_ngram; /* prompt lookup: shortest n-gram (default 2) */
  bool adaptive;            /* draft length follows the acceptance (default true) */
} vireo_speculative_params;

VIREO_API vireo_speculative_params vireo_speculative_default_params(void);
/* A decoder for `target` with `draft` as the drafter, or prompt lookup when draft is NULL.
 * Both models must outlive it. INVALID_ARGUMENT for vocabularies that differ or bad params. */
VIREO_API vireo_status vireo_speculative_new(const vireo_model* target, const vireo_model* draft,
                                             const vireo_speculative_params* params, vireo_speculative** out_spec);
VIREO_API void vireo_speculative_free(vireo_speculative* spec);
/* One round for the sequence `tokens` (prompt + everything generated so far): writes 1 ..
 * draft_tokens + 1 new tokens to out_tokens and their count to *out_n. `capacity` must be at
 * least draft_tokens + 1 (checked before anything runs). draft_cache / draft_seq are used
 * with a draft model and ignored (may be NULL / 0) with prompt lookup. The caches must hold
 * a prefix of `tokens` in those sequences; see vireo/speculative.hpp for the protocol. */
VIREO_API vireo_status vireo_speculative_step(vireo_speculative* spec, const vireo_token* tokens, size_t n_tokens,
                                              vireo_kv_cache* target_cache, vireo_seq_id target_seq,
                                              vireo_kv_cache* draft_cache, vireo_seq_id draft_seq,
                                              vireo_sampler* sampler, vireo_token* out_tokens, size_t capacity,
                                              size_t* out_n);

/* ---- memory planning before load ------------------------------------------------------- */

/* What a model, a context length and a number of sequences take on a device, from the GGUF
 * header alone (nothing is loaded); see vireo/plan.hpp for how each figure is counted. */
typedef struct vireo_plan_params {
  vireo_device_kind device;      /* VIREO_DEVICE_CPU (default) or VIREO_DEVICE_CUDA */
  vireo_dtype dtype;             /* GPU weights and K/V (default bf16) */
  bool gpu_quantized;            /* GPU: keep Q8_0 / Q4_0 / Q4_1 matrices quantized */
  vireo_kv_precision kv_precision;
  int32_t block_size;            /* KV block size (default 16) */
  int64_t context;               /* tokens per sequence; 0: the model's context length */
  int64_t concurrency;           /* sequences held at once (default 1) */
  int32_t max_batch_tokens;      /* CPU: tokens of the largest step (default 512) */
  uint64_t device_memory_bytes;  /* one device's memory; 0: 80 GiB */
  uint64_t memory_budget_bytes;  /* for the largest context x concurrency; 0: device memory */
  int64_t reserve_bytes;         /* runtime overhead per device; -1: 1 GiB on a GPU, 0 on the CPU */
} vireo_plan_params;

typedef struct vireo_memory_plan {
  uint64_t weight_bytes, file_bytes, kv_bytes_per_token, kv_bytes, workspace_bytes, reserve_bytes, total_bytes;
  int64_t context, concurrency; /* with the defaults filled in */
  bool fits;                    /* total_bytes <= device_memory_bytes */
  int64_t budget_kv_tokens, budget_max_context, budget_max_concurrency;
  int32_t devices_needed;       /* fewest devices holding weights + KV split evenly; 0: none */
} vireo_memory_plan;

VIREO_API vireo_plan_params vireo_plan_default_params(void);
/* Plan for the GGUF file at `path` (UTF-8). INVALID_ARGUMENT (NULL pointers, bad params), IO,
 * INVALID_MODEL (a malformed header or missing shape keys). */
VIREO_API vireo_status vireo_plan_file(const char* path, const vireo_plan_params* params, vireo_memory_plan* out);

#ifdef __cplusplus
}
#endif

#endif /* VIREO_VIREO_H */
