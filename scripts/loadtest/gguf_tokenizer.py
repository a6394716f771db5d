#!/usr/bin/env python3
"""Write a Hugging Face tokenizer directory (tokenizer.json + tokenizer_config.json) built from
a GGUF file's own byte-level BPE vocabulary (tokenizer.ggml.tokens / merges / token_type), so a
load generator that sizes its prompts with a HF tokenizer (aiperf --tokenizer DIR) needs no
download. The pre-tokenizer is GPT-2's byte-level split (SmolLM2's also splits digits one by
one), which is close enough for sizing prompts; the benchmark takes its token counts from the
server's usage fields (--use-server-token-count), not from this tokenizer.

usage: gguf_tokenizer.py MODEL.gguf OUT_DIR
"""
import json
import os
import sys

import gguf
from tokenizers import Tokenizer, decoders, models, pre_tokenizers


def field(reader, name):
    f = reader.fields[name]
    if len(f.data) == 1 and f.types[0] != gguf.GGUFValueType.ARRAY:
        return f.parts[f.data[0]].tolist()[0] if f.types[0] != gguf.GGUFValueType.STRING else bytes(f.parts[f.data[0]]).decode()
    return [bytes(f.parts[i]).decode() if f.types[-1] == gguf.GGUFValueType.STRING else f.parts[i].tolist()[0]
            for i in f.data]


def main(path, out):
    r = gguf.GGUFReader(path)
    if field(r, "tokenizer.ggml.model") != "gpt2":
        sys.exit(f"{path}: only byte-level BPE ('gpt2') vocabularies are supported")
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in field(r, "tokenizer.ggml.merges")]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = [t for t, ty in zip(tokens, types) if ty == 3]  # control tokens
    tok.add_special_tokens(special)
    os.makedirs(out, exist_ok=True)
    tok.save(os.path.join(out, "tokenizer.json"))
    eos = tokens[field(r, "tokenizer.ggml.eos_token_id")]
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": eos, "model_max_length": 8192}
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=1)
    print(f"{out}: {len(tokens)} tokens, {len(merges)} merges, {len(special)} special")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
