#!/usr/bin/env python3
"""A foreign caller of the C API: Python's ctypes loads the shared libvireo, generates a few
tokens greedily from the default model and compares them with the C++ API's greedy output
(the installed-package consumer's, when given), and sends bad input through every kind of
call (NULL handles, bad UTF-8, out-of-range tokens, a too-small buffer) expecting a status and
a message, never a crash.

usage: test_ctypes.py LIBVIREO.so MODEL.gguf [TEXT_FROM_THE_CPP_CONSUMER]
"""
import ctypes as C
import sys

OK, INVALID_ARGUMENT, INVALID_MODEL, IO, UNSUPPORTED, BUFFER_TOO_SMALL = 0, 1, 2, 6, 3, 10
PROGRESS_FN = C.CFUNCTYPE(C.c_bool, C.c_float, C.c_void_p)
LOG_FN = C.CFUNCTYPE(None, C.c_int, C.c_char_p, C.c_void_p)


class ModelParams(C.Structure):
    _fields_ = [("device", C.c_int), ("device_index", C.c_int), ("dtype", C.c_int), ("n_threads", C.c_int),
                ("gpu_quantized", C.c_bool), ("cpu_quantize_activations", C.c_bool),
                ("progress", PROGRESS_FN), ("progress_user_data", C.c_void_p), ("fallback_to_cpu", C.c_bool)]


class SamplerParams(C.Structure):
    _fields_ = [("temperature", C.c_float), ("top_k", C.c_int32), ("top_p", C.c_float), ("min_p", C.c_float),
                ("repetition_penalty", C.c_float), ("presence_penalty", C.c_float),
                ("frequency_penalty", C.c_float), ("penalty_last_n", C.c_int32), ("seed", C.c_uint64)]


def bind(lib):
    p = C.c_void_p
    sigs = {
        "vireo_last_error": (C.c_char_p, []),
        "vireo_version_string": (C.c_char_p, []),
        "vireo_log_set": (None, [LOG_FN, p]),
        "vireo_model_default_params": (ModelParams, []),
        "vireo_model_load": (C.c_int, [C.c_char_p, C.POINTER(ModelParams), C.POINTER(p)]),
        "vireo_model_load_from_memory": (C.c_int, [p, C.c_size_t, p, C.POINTER(p)]),
        "vireo_model_free": (None, [p]),
        "vireo_tokenize": (C.c_int, [p, C.c_char_p, C.c_size_t, C.c_bool, C.c_bool, C.POINTER(C.c_int32),
                                     C.c_size_t, C.POINTER(C.c_size_t)]),
        "vireo_detokenize": (C.c_int, [p, C.POINTER(C.c_int32), C.c_size_t, C.c_bool, C.c_char_p, C.c_size_t,
                                       C.POINTER(C.c_size_t)]),
        "vireo_kv_cache_new": (C.c_int, [p, p, C.POINTER(p)]),
        "vireo_kv_cache_free": (None, [p]),
        "vireo_kv_cache_add_sequence": (C.c_int, [p, C.POINTER(C.c_int32)]),
        "vireo_kv_cache_length": (C.c_int, [p, C.c_int32, C.POINTER(C.c_int64)]),
        "vireo_batch_new": (C.c_int, [C.POINTER(p)]),
        "vireo_batch_free": (None, [p]),
        "vireo_batch_clear": (None, [p]),
        "vireo_batch_add": (C.c_int, [p, C.c_int32, C.POINTER(C.c_int32), C.c_size_t, C.c_int]),
        "vireo_logits_new": (C.c_int, [C.POINTER(p)]),
        "vireo_logits_free": (None, [p]),
        "vireo_logits_row": (C.POINTER(C.c_float), [p, C.c_size_t, C.POINTER(C.c_size_t)]),
        "vireo_forward": (C.c_int, [p, p, p, p, p, p]),
        "vireo_sampler_default_params": (SamplerParams, []),
        "vireo_sampler_new": (C.c_int, [C.POINTER(SamplerParams), C.POINTER(p)]),
        "vireo_sampler_free": (None, [p]),
        "vireo_sampler_sample": (C.c_int, [p, C.POINTER(C.c_float), C.c_size_t, C.POINTER(C.c_int32), C.c_size_t,
                                           C.POINTER(C.c_int32), C.POINTER(C.c_float)]),
    }
    for name, (res, args) in sigs.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    return lib


failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAILED:", what, file=sys.stderr)


def expect(lib, status, want, fn):
    msg = lib.vireo_last_error().decode()
    check(status == want, f"{fn} returned {status}, expected {want} ({msg})")
    if want != OK:
        check(msg.startswith(fn + ": "), f"{fn}'s message names it: {msg!r}")


def tokenize(lib, model, text, add_special=True):
    buf = (C.c_int32 * 256)()
    n = C.c_size_t()
    expect(lib, lib.vireo_tokenize(model, text, len(text), add_special, False, buf, 256, C.byref(n)), OK, "vireo_tokenize")
    return list(buf[: n.value])


def detokenize(lib, model, tokens):
    arr = (C.c_int32 * len(tokens))(*tokens)
    out = C.create_string_buffer(4096)
    n = C.c_size_t()
    expect(lib, lib.vireo_detokenize(model, arr, len(tokens), True, out, 4096, C.byref(n)), OK, "vireo_detokenize")
    return out.raw[: n.value].decode("utf-8")


def greedy(lib, model, prompt, n_new):
    cache, batch, logits, sampler = C.c_void_p(), C.c_void_p(), C.c_void_p(), C.c_void_p()
    expect(lib, lib.vireo_kv_cache_new(model, None, C.byref(cache)), OK, "vireo_kv_cache_new")
    lib.vireo_batch_new(C.byref(batch))
    lib.vireo_logits_new(C.byref(logits))
    sp = lib.vireo_sampler_default_params()
    sp.temperature = 0.0
    expect(lib, lib.vireo_sampler_new(C.byref(sp), C.byref(sampler)), OK, "vireo_sampler_new")
    seq = C.c_int32()
    lib.vireo_kv_cache_add_sequence(cache, C.byref(seq))
    toks = (C.c_int32 * len(prompt))(*prompt)
    lib.vireo_batch_add(batch, seq, toks, len(prompt), 1)
    out = []
    for _ in range(n_new):
        expect(lib, lib.vireo_forward(model, cache, batch, logits, None, None), OK, "vireo_forward")
        vocab = C.c_size_t()
        row = lib.vireo_logits_row(logits, 0, C.byref(vocab))
        t = C.c_int32()
        expect(lib, lib.vireo_sampler_sample(sampler, row, vocab.value, None, 0, C.byref(t), None), OK,
               "vireo_sampler_sample")
        out.append(t.value)
        lib.vireo_batch_clear(batch)
        lib.vireo_batch_add(batch, seq, C.byref(t), 1, 1)
    # Bad input on live handles: an out-of-range token leaves the cache as it was.
    before, after = C.c_int64(), C.c_int64()
    lib.vireo_kv_cache_length(cache, seq, C.byref(before))
    bad = (C.c_int32 * 2)(1, 10**9)
    lib.vireo_batch_clear(batch)
    lib.vireo_batch_add(batch, seq, bad, 2, 1)
    expect(lib, lib.vireo_forward(model, cache, batch, logits, None, None), INVALID_ARGUMENT, "vireo_forward")
    lib.vireo_kv_cache_length(cache, seq, C.byref(after))
    check(before.value == after.value, "a refused forward leaves the cache length unchanged")
    for free, h in (("vireo_sampler_free", sampler), ("vireo_logits_free", logits), ("vireo_batch_free", batch),
                    ("vireo_kv_cache_free", cache)):
        getattr(lib, free)(h)
    return out


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    lib = bind(C.CDLL(sys.argv[1]))
    model_path = sys.argv[2].encode()
    print("libvireo", lib.vireo_version_string().decode())
    messages = []
    log_cb = LOG_FN(lambda level, msg, user: messages.append(msg.decode()))
    lib.vireo_log_set(log_cb, None)

    # Bad input before a model exists.
    model = C.c_void_p()
    expect(lib, lib.vireo_model_load(None, None, C.byref(model)), INVALID_ARGUMENT, "vireo_model_load")
    expect(lib, lib.vireo_model_load(b"/nonexistent.gguf", None, C.byref(model)), IO, "vireo_model_load")
    expect(lib, lib.vireo_model_load_from_memory(b"GGUF", 4, None, C.byref(model)), INVALID_MODEL,
           "vireo_model_load_from_memory")
    n = C.c_size_t()
    expect(lib, lib.vireo_tokenize(None, b"hi", 2, True, False, None, 0, C.byref(n)), INVALID_ARGUMENT,
           "vireo_tokenize")
    expect(lib, lib.vireo_forward(None, None, None, None, None, None), INVALID_ARGUMENT, "vireo_forward")
    lib.vireo_model_free(None)

    seen = []
    progress = PROGRESS_FN(lambda f, user: seen.append(f) or True)
    params = lib.vireo_model_default_params()
    params.progress = progress
    expect(lib, lib.vireo_model_load(model_path, C.byref(params), C.byref(model)), OK, "vireo_model_load")
    check(seen and seen[-1] == 1.0, f"progress ends at 1: {seen}")
    if not model:
        return 1

    # Bad input on a live model: bad UTF-8, a too-small buffer, an out-of-range token.
    expect(lib, lib.vireo_tokenize(model, b"\xff\xfe", 2, True, False, None, 0, C.byref(n)), INVALID_ARGUMENT,
           "vireo_tokenize")
    small = (C.c_int32 * 1)()
    expect(lib, lib.vireo_tokenize(model, b"hello there world", 17, False, False, small, 1, C.byref(n)),
           BUFFER_TOO_SMALL, "vireo_tokenize")
    check(n.value > 1, "BUFFER_TOO_SMALL reports the count needed")
    oob = (C.c_int32 * 1)(-3)
    out = C.create_string_buffer(16)
    expect(lib, lib.vireo_detokenize(model, oob, 1, False, out, 16, C.byref(n)), INVALID_ARGUMENT,
           "vireo_detokenize")

    prompt = tokenize(lib, model, b"The capital of France is")
    text = detokenize(lib, model, greedy(lib, model, prompt, 8))
    print("ctypes greedy:", repr(text))
    check("Paris" in text, "the greedy continuation names Paris")
    if len(sys.argv) > 3:
        want = sys.argv[3]
        check(text.strip() == want.strip(), f"same text as the C++ consumer: {text!r} vs {want!r}")
    lib.vireo_model_free(model)
    lib.vireo_log_set(LOG_FN(), None)  # back to the default sink before log_cb goes away
    print("ctypes test:", "FAILED" if failures else "passed", f"({len(failures)} failures)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
