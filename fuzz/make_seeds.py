#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/), a few KB in all.

GGUF seeds are written by gguf-py's GGUFWriter (an implementation independent of vireo's
reader): tiny files with every metadata value type, nested arrays, F32 / F16 / Q8_0 / Q4_0
tensors, a byte-level BPE vocabulary with merges and a ChatML template, and a 64-aligned
file. The other targets' seeds are byte strings laid out as each target reads its input
(see the comment at the top of fuzz/fuzz_<target>.cpp). Run from anywhere:
    python3 fuzz/make_seeds.py        (needs: pip install gguf==0.19.0 numpy)
"""
import os
import struct
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGUFWriter, GGMLQuantizationType, GGUFValueType

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gguf_bytes(build, alignment=None):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "seed.gguf")
        w = GGUFWriter(path, "llama")
        if alignment:
            w.add_custom_alignment(alignment)
        build(w)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        with open(path, "rb") as f:
            return f.read()


def byte_vocab():
    # GPT-2's bytes_to_unicode, written out here (not taken from vireo).
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def q8_0_rows(rows, cols, rng):
    out = bytearray()
    for _ in range(rows * cols // 32):
        out += np.float16(rng.uniform(0.001, 0.02)).tobytes()
        out += rng.integers(-127, 128, 32, dtype=np.int8).tobytes()
    return np.frombuffer(bytes(out), dtype=np.uint8)


def q4_0_rows(rows, cols, rng):
    out = bytearray()
    for _ in range(rows * cols // 32):
        out += np.float16(rng.uniform(0.001, 0.02)).tobytes()
        out += rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
    return np.frombuffer(bytes(out), dtype=np.uint8)


def gguf_seeds():
    rng = np.random.default_rng(1)

    def metadata_only(w):
        w.add_name("seed")
        w.add_uint8("t.u8", 200)
        w.add_int8("t.i8", -5)
        w.add_uint16("t.u16", 60000)
        w.add_int16("t.i16", -300)
        w.add_uint32("t.u32", 7)
        w.add_int32("t.i32", -7)
        w.add_uint64("t.u64", 1 << 40)
        w.add_int64("t.i64", -(1 << 40))
        w.add_float32("t.f32", 1.5)
        w.add_float64("t.f64", -2.25)
        w.add_bool("t.bool", True)
        w.add_string("t.str", "héllo")
        w.add_array("t.arr_i32", [1, -2, 3])
        w.add_array("t.arr_str", ["a", "bc", ""])
        w.add_array("t.arr_arr", [[1, 2], [3]])
    put("gguf", "metadata_types.gguf", gguf_bytes(metadata_only))

    def tensors(w):
        w.add_block_count(1)
        w.add_tensor("f32", rng.standard_normal((2, 8)).astype(np.float32))
        w.add_tensor("f16", rng.standard_normal((4,)).astype(np.float16))
        w.add_tensor("q8", q8_0_rows(1, 32, rng), raw_shape=(1, 34), raw_dtype=GGMLQuantizationType.Q8_0)
        w.add_tensor("q4", q4_0_rows(1, 32, rng), raw_shape=(1, 18), raw_dtype=GGMLQuantizationType.Q4_0)
    put("gguf", "tensors.gguf", gguf_bytes(tensors))
    put("gguf", "aligned64.gguf", gguf_bytes(tensors, alignment=64))

    def vocab(w):
        toks = byte_vocab() + ["Ġt", "he", "Ġthe", "<|im_start|>", "<|im_end|>", "<|endoftext|>"]
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("smollm")
        w.add_token_list(toks)
        w.add_token_types([1] * (len(toks) - 3) + [3, 3, 3])
        w.add_token_merges(["Ġ t", "h e", "Ġt he"])
        w.add_bos_token_id(len(toks) - 1)
        w.add_eos_token_id(len(toks) - 2)
        w.add_chat_template("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                            "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}")
    put("gguf", "vocab.gguf", gguf_bytes(vocab))


def tokenizer_seeds():
    texts = {
        "plain": b"\x00Hello, world! The quick brown fox jumps over the lazy dog.",
        "special": b"\x02<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
        "bos": b"\x06<|endoftext|>tail",
        "unicode": "\x00Привет, мир! 日本語 😀 naïve café ﷺ".encode(),
        "numbers": b"\x00 1234567890 3.14159 1e-10 0x1F",
        "spaces": b"\x00a  b   c\t\td\n\n\ne    ",
        "contractions": b"\x00I'm you'll we've they'd it's DON'T",
        "nobytetoken": b"\x00ab\x04cd\x13\xf1x",
        "invalid_utf8": b"\x00\xc3\x28 \xe2\x82 \xff\xfe \xf0\x9f\x98",
        "ids": b"\x01" + struct.pack("<12H", 1, 2, 3, 100, 4000, 49151, 0, 17, 255, 256, 30000, 9),
        "ids_skip": b"\x03" + struct.pack("<6H", 1, 2, 49150, 33, 34, 0),
    }
    for k, v in texts.items():
        put("tokenizer", k, v)


def chat_seeds():
    def conv(*pairs):
        return b"".join(r.encode() + b"\0" + c.encode() + b"\0" for r, c in pairs)
    put("chat_template", "chatml", b"\x03\0" + conv(("user", "Hi!"), ("assistant", "Hello."), ("user", "  x  ")))
    put("chat_template", "chatml_system", b"\x05\0" + conv(("user", "hello")))
    put("chat_template", "llama3", b"\x07\0" + conv(("system", "Be brief. "), ("user", " Hi ")))
    put("chat_template", "llama2", b"\x08\0" + conv(("system", "sys"), ("user", "q"), ("assistant", "a"), ("user", "q2")))
    put("chat_template", "unknown", b"\x01{{ messages }}\0" + conv(("user", "x")))
    put("chat_template", "empty", b"\x00")


def sampler_seeds():
    def seed(on, fields, vocab, style, logits, history):
        b = bytes([on]) + fields + struct.pack("<Q", 42) + bytes([vocab - 1]) + bytes([style])
        b += (struct.pack("<%df" % len(logits), *logits) if style & 1 else bytes(int(x) & 0xFF for x in logits))
        b += bytes(history)
        return b
    put("sampler", "greedy", seed(1, struct.pack("<f", 0.0), 8, 0, [1, 2, 3, 4, 5, 6, 7, 8], [1, 2]))
    put("sampler", "topk_topp", seed(1 | 2 | 4, struct.pack("<fif", 0.8, 3, 0.9), 8, 1,
                                     [0.5, 2.0, 1.0, -1.0, 3.0, 0.0, 2.5, 1.5], []))
    put("sampler", "minp_penalties", seed(1 | 8 | 16 | 32 | 64, struct.pack("<fffff", 1.2, 0.05, 1.3, 0.5, 0.2), 6, 0,
                                          [8, 8, 16, 4, 250, 0], [1, 1, 2, 3]))
    put("sampler", "ties", seed(1 | 4, struct.pack("<ff", 1.0, 0.5), 5, 0, [16, 16, 16, 16, 16], [0, 4]))
    put("sampler", "nan", seed(1, struct.pack("<f", 1.0), 3, 1, [1.0, float("nan"), 0.0], []))
    put("sampler", "inf", seed(1, struct.pack("<f", 1.0), 3, 1, [float("inf"), 1.0, float("-inf")], []))


def kv_seeds():
    rng = np.random.default_rng(3)
    for i in range(6):
        put("kv_cache", "ops%d" % i, bytes([i & 1]) + rng.integers(0, 256, 96, dtype=np.uint8).tobytes())
    # add, forward 5 tokens, fork, forward on both, truncate, add with the prefix.
    put("kv_cache", "fork_cow", bytes([1, 0, 7, 0, 0, 4, 1, 1, 2, 3, 4, 5, 1, 1, 1, 1, 1,
                                       2, 0, 7, 1, 1, 0, 10, 1, 8, 1, 1, 1, 11, 1, 3, 0, 2, 1, 0, 0, 3, 7, 8, 9]))


if __name__ == "__main__":
    gguf_seeds()
    tokenizer_seeds()
    chat_seeds()
    sampler_seeds()
    kv_seeds()
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(ROOT) for f in fs)
    print("seed corpora in %s: %d bytes" % (ROOT, total), file=sys.stderr)
