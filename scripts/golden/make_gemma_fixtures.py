#!/usr/bin/env python3
"""Golden fixtures for Gemma 3 270M (models/gemma-3-270m-q4_k_m.gguf, scripts/fetch-gemma.sh)
from an independent implementation: HF transformers' own Gemma3ForCausalLM in fp32.

transformers reads the GGUF itself (`gguf_file=`): it dequantizes the Q4_K / Q5_0 / Q6_K /
Q8_0 tensors with gguf-py, undoes llama.cpp's "+1" on the norm weights (Gemma's RMSNorm
multiplies by 1 + w) and runs its PyTorch Gemma 3: embedding scaled by sqrt(hidden),
Q/K norms, GeGLU, post-attention / post-FFN norms, sliding-window layers (window 512,
RoPE base 10000) and a global layer every sixth (RoPE base 1e6). The prompts include one of
more than 512 tokens, so the sliding window takes part in its logits and continuation.

For each prompt: the prompt ids (tokenized by the HF tokenizer, with <bos>; vireo is fed
the same ids so a tokenizer difference cannot hide a model difference), a sample of the
last-position logits (the 64 largest, then every 997th index), and the 32-token greedy
continuation. Same line format as model_golden.txt:
    prompt <hex>  /  ids ...  /  logits i:v ...  /  greedy ...
The versions of torch, transformers and gguf that made the file are recorded on its first
line ("# versions ...").

Needs: the pinned versions of scripts/golden/versions.py (pip install torch transformers gguf numpy)   (CPU torch is enough; the versions that
made the committed file are in its first line)
Run:   python3 scripts/golden/make_gemma_fixtures.py [models/gemma-3-270m-q4_k_m.gguf]
"""
import importlib.metadata
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import versions  # noqa: E402  (pinned versions: scripts/golden/versions.py)

versions.require("torch", "transformers", "gguf")

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GGUF = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "gemma-3-270m-q4_k_m.gguf")
OUT = os.path.join(ROOT, "tests", "fixtures", "gemma3_golden.txt")

LONG = (
    "The history of the printing press begins in the fifteenth century. "
    "Johannes Gutenberg, a goldsmith from Mainz, combined a screw press with movable metal type, "
    "oil-based ink and a hand mould for casting letters. Books that had taken scribes months to copy "
    "could now be produced in days, and the price of the written word fell sharply. "
) * 9 + "In one sentence, the most important consequence of the printing press was"

PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a little",
    "def fibonacci(n):\n    ",
    "<start_of_turn>user\nWhat is the tallest mountain on Earth?<end_of_turn>\n<start_of_turn>model\n",
    "Water boils at a temperature of",
    LONG,
]


def main():
    torch.manual_seed(0)
    d, f = os.path.split(os.path.abspath(GGUF))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    model.eval()
    v = importlib.metadata.version
    lines = [f"# versions torch {v('torch')} transformers {v('transformers')} gguf {v('gguf')}"]
    for p in PROMPTS:
        ids = tok(p)["input_ids"]
        x = torch.tensor([ids])
        with torch.no_grad():
            logits = model(x).logits[0, -1].double()
            out = model.generate(x, max_new_tokens=32, do_sample=False, num_beams=1,
                                 eos_token_id=None, pad_token_id=0)
        cont = out[0, len(ids):].tolist()
        top = torch.topk(logits, 64).indices.tolist()
        idx = top + [i for i in range(0, logits.numel(), 997) if i not in set(top)]
        lines.append("prompt " + p.encode().hex())
        lines.append("ids " + " ".join(map(str, ids)))
        lines.append("logits " + " ".join(f"{i}:{logits[i].item():.7g}" for i in idx))
        lines.append("greedy " + " ".join(map(str, cont)))
        print(len(ids), "tokens:", repr(p[:60]), "->", repr(tok.decode(cont)), file=sys.stderr)
    with open(OUT, "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
