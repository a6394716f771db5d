#!/usr/bin/env python3
"""Golden fixtures for vireo's tokenizer on Gemma 3 (models/gemma-3-270m-q4_k_m.gguf).

The reference is HF tokenizers, through transformers' GGUF tokenizer loader
(AutoTokenizer.from_pretrained(dir, gguf_file=...)): it converts the GGUF vocabulary (pieces,
scores, types; tokenizer.ggml.model "llama", add_space_prefix false) to a tokenizers BPE with
byte fallback, and the user-defined pieces to added tokens. It is cross-checked against a
second implementation, Google's SentencePiece (the `sentencepiece` package) running a model
built here from the same pieces, scores and types (BPE, byte fallback, no dummy prefix,
identity normalisation). The two agree on every text except those holding a run of two or
more spaces: the GGUF stores Gemma's whitespace-run pieces ("  ", "   ", ... ids 138-...) with
literal spaces as user-defined tokens; HF tokenizers (and llama.cpp) match user-defined
tokens in the raw text, SentencePiece only after it has turned spaces into U+2581, where they
never match. vireo follows HF and llama.cpp; the script prints the disagreements. A few
encodings are printed as pieces to be checked by eye.

Not in the corpus: runs of more than 16 spaces. The GGUF has user-defined tokens for runs of
2 to 31 spaces; HF's tokenizer built by transformers' GGUF loader splits a 1000-space run
into 16-space tokens, where llama.cpp (longest user-defined token first) and vireo use
31-space ones. Which one Gemma's own tokenizer.json gives was not established here.

Texts are encoded without BOS, special tokens parsed (HF encode(add_special_tokens=False);
vireo encode with add_special=false).

Writes
  tests/fixtures/tokenizer_gemma3.txt       "<hex of the UTF-8 text>\t<ids>" lines
  tests/fixtures/tokenizer_gemma3_chat.txt  Gemma 3's official chat template (CHAT_TEMPLATE below,
                                            from google/gemma-3 tokenizer_config.json) rendered by
                                            jinja2 for the conversations in CHATS with bos_token=""
                                            (vireo leaves BOS to the encoder, as llama.cpp does):
                                            "<case name>\t<hex of the rendering>\t<ids of '<bos>' +
                                            rendering>"

Setup: pip install transformers tokenizers sentencepiece protobuf gguf jinja2
Usage: python3 scripts/golden/make_gemma_tokenizer_fixtures.py [models/gemma-3-270m-q4_k_m.gguf]
"""
import os
import re
import sys

import gguf
import jinja2
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tokenizer_fixtures import CORPUS  # noqa: E402  (the SmolLM2 corpus, reused)

# Gemma 3's chat template, verbatim (google/gemma-3-*-it tokenizer_config.json "chat_template").
CHAT_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    "        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n"
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\\n'}}\n"
    "{%- endif -%}\n"
)

# Conversations for the rendering golden: (name, messages, add_generation_prompt). The same
# list is written in tests/test_tokenizer_gemma.cpp.
CHATS = [
    ("one-user", [{"role": "user", "content": "What is the capital of France?"}], True),
    ("three-turns", [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello. How can I help?"},
                     {"role": "user", "content": "Name 3 colours."}], True),
    ("system-folded", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why is the sky blue?"}],
     True),
    ("trimmed", [{"role": "system", "content": " Keep spaces \n"},
                 {"role": "user", "content": "  \u3000padded\u00a0 \n"},
                 {"role": "assistant", "content": "\tok\n\n"}], False),
]

EXTRA = [
    "Hello world", " Hello world", "Hello  world   ", "\n\nParagraph one.\n\n\nParagraph two.",
    "<table><tr><td>cell</td></tr></table>", "    four leading spaces", "trailing tabs\t\t",
    "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n", "<bos>text<eos>",
    "<start_of_turn <end_of_turn>>", "x" * 300, ("  " * 8 + "word") * 40, "\n" * 700, "ab" * 1500, "é" * 1200,
    "中" * 900, "1" * 800, "\t" * 600, "🙂" * 300, "\u0004\u0013 control bytes \u007f",
]


def gguf_vocab(path):
    r = gguf.GGUFReader(path)
    f = r.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(f.parts[i]).decode("utf-8") for i in f.data]
    f = r.fields["tokenizer.ggml.scores"]
    scores = [float(f.parts[i][0]) for i in f.data]
    f = r.fields["tokenizer.ggml.token_type"]
    types = [int(f.parts[i][0]) for i in f.data]
    meta = {k: r.fields[k].contents() for k in ("tokenizer.ggml.model", "tokenizer.ggml.add_space_prefix",
                                                 "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                                 "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id")}
    return tokens, scores, types, meta


def build_sentencepiece(tokens, scores, types, meta):
    assert meta["tokenizer.ggml.model"] == "llama" and meta["tokenizer.ggml.add_space_prefix"] is False, meta
    m = pb.ModelProto()
    kinds = {1: pb.ModelProto.SentencePiece.NORMAL, 2: pb.ModelProto.SentencePiece.UNKNOWN,
             3: pb.ModelProto.SentencePiece.CONTROL, 4: pb.ModelProto.SentencePiece.USER_DEFINED,
             5: pb.ModelProto.SentencePiece.UNUSED, 6: pb.ModelProto.SentencePiece.BYTE}
    unk = meta["tokenizer.ggml.unknown_token_id"]
    for i, (t, s, k) in enumerate(zip(tokens, scores, types)):
        p = m.pieces.add()
        p.piece, p.score = t, s
        # SentencePiece needs its one unknown piece typed UNKNOWN (the GGUF types <unk> as
        # control); it is never produced here (every byte has a byte token).
        p.type = pb.ModelProto.SentencePiece.UNKNOWN if i == unk else kinds[k]
    ts = m.trainer_spec
    ts.model_type = pb.TrainerSpec.BPE
    ts.vocab_size = len(tokens)
    ts.byte_fallback = True
    ts.unk_id = unk
    ts.bos_id = meta["tokenizer.ggml.bos_token_id"]
    ts.eos_id = meta["tokenizer.ggml.eos_token_id"]
    ts.pad_id = meta["tokenizer.ggml.padding_token_id"]
    ns = m.normalizer_spec
    ns.name = "identity"
    ns.add_dummy_prefix = False
    ns.remove_extra_whitespaces = False
    ns.escape_whitespaces = True
    return spm.SentencePieceProcessor(model_proto=m.SerializeToString())


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "gemma-3-270m-q4_k_m.gguf")
    tokens, scores, types, meta = gguf_vocab(path)
    sp = build_sentencepiece(tokens, scores, types, meta)
    controls = sorted((t for t, k in zip(tokens, types) if k == 3 and t), key=len, reverse=True)
    ctl_re = re.compile("|".join(re.escape(t) for t in controls))
    ids_of = {t: i for i, t in enumerate(tokens)}

    def spm_enc(text):  # SentencePiece, control tokens split off as HF does with special tokens
        out, pos = [], 0
        for m in ctl_re.finditer(text):
            out += sp.encode(text[pos:m.start()]) + [ids_of[m.group()]]
            pos = m.end()
        return out + sp.encode(text[pos:])

    from transformers import AutoTokenizer
    hf = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(path)), gguf_file=os.path.basename(path))

    def enc(text):
        return hf.encode(text, add_special_tokens=False)

    texts = CORPUS + EXTRA
    for t in ["Hello world", " Hello  world", "\n\nx", "<table>", "😀 fr", "<start_of_turn>user\n"]:
        print(repr(t), "->", [tokens[i] for i in enc(t)])
    same = [enc(t) == spm_enc(t) for t in texts]
    print(f"sentencepiece agrees with HF tokenizers on {sum(same)}/{len(texts)} texts")
    for t, ok in zip(texts, same):
        if not ok:
            assert "  " in t, f"sentencepiece and HF differ on a text without a run of spaces: {t!r}"
            print("  differs (run of spaces) on", repr(t[:50]))

    with open(os.path.join(FIX, "tokenizer_gemma3.txt"), "w") as f:
        for t in texts:
            ids = enc(t)
            assert hf.decode(ids) == t, repr(t)
            f.write(t.encode("utf-8").hex() + "\t" + " ".join(map(str, ids)) + "\n")
    env = jinja2.Environment()

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    env.globals["raise_exception"] = raise_exception
    tmpl = env.from_string(CHAT_TEMPLATE)
    with open(os.path.join(FIX, "tokenizer_gemma3_chat.txt"), "w") as f:
        for name, msgs, gen in CHATS:
            text = tmpl.render(messages=msgs, add_generation_prompt=gen, bos_token="")
            ids = enc("<bos>" + text)
            f.write(f"{name}\t{text.encode('utf-8').hex()}\t{' '.join(map(str, ids))}\n")
    print(f"wrote tokenizer_gemma3.txt ({len(texts)} texts) and tokenizer_gemma3_chat.txt ({len(CHATS)} chats)")


if __name__ == "__main__":
    main()
