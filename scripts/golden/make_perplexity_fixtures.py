#!/usr/bin/env python3
"""Golden perplexity fixture for vireo::perplexity, from an independent implementation.

HF transformers loads the SmolLM2-135M-Instruct GGUF itself (`gguf_file=`, dequantized to
fp32, its own PyTorch Llama) and computes the perplexity of a short fixed English text with
llama.cpp's windowing, written out here independently of vireo's code: windows of CTX tokens
starting every STRIDE tokens (each evaluated from scratch), and in each window only the
predictions made at positions CTX/2 .. CTX-2 (of tokens CTX/2+1 .. CTX-1) are scored. The
token ids come from HF's tokenizer and are stored, so both sides score the same ids.

Output: tests/fixtures/perplexity_golden.txt, one block per (ctx, stride) case:
    case <ctx> <stride>
    ids <ids>
    scored <number of predictions scored>
    nll <mean negative log-likelihood, nats>
    ppl <exp(nll)>

Needs: pip install torch transformers gguf numpy  (CPU torch is enough)
Run:   python3 scripts/golden/make_perplexity_fixtures.py [models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import math
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GGUF = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(ROOT, "tests", "fixtures", "perplexity_golden.txt")

TEXT = (
    "The lighthouse keeper climbed the spiral stairs every evening at dusk, carrying a can of oil "
    "and a rag for the brass. From the gallery he could see the whole bay: the fishing boats coming "
    "home, the gulls settling on the breakwater, and far to the south the dark line of the cliffs. "
    "He had kept the light for thirty years, and in all that time it had failed only once, on the "
    "night of the great storm, when the glass cracked and the wind blew out the flame. He never "
    "forgot the sound of the bell buoy that night, ringing without pause until morning.\n\n"
    "def mean(values):\n"
    "    \"\"\"Return the arithmetic mean of a non-empty sequence of numbers.\"\"\"\n"
    "    if not values:\n"
    "        raise ValueError(\"mean() of an empty sequence\")\n"
    "    return sum(values) / len(values)\n\n"
    "When the keeper retired, the light was automated. A small electric lamp now turns inside the "
    "old lens, and nobody climbs the stairs except the inspector, twice a year, who writes in the "
    "logbook that everything is in order."
)
CASES = [(64, 32), (96, 96)]


def window_nll(model, ids, ctx, stride):
    first = ctx // 2
    total, n = 0.0, 0
    start = 0
    while start + ctx <= len(ids):
        x = torch.tensor([ids[start:start + ctx]])
        with torch.no_grad():
            logp = torch.log_softmax(model(x).logits[0].double(), dim=-1)
        for p in range(first, ctx - 1):
            total -= logp[p, ids[start + p + 1]].item()
            n += 1
        start += stride
    return total / n, n


def main():
    d, f = os.path.split(os.path.abspath(GGUF))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    model.eval()
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    lines = []
    for ctx, stride in CASES:
        nll, n = window_nll(model, ids, ctx, stride)
        lines += [f"case {ctx} {stride}", "ids " + " ".join(map(str, ids)), f"scored {n}",
                  f"nll {nll:.9f}", f"ppl {math.exp(nll):.9f}"]
        print(f"ctx {ctx} stride {stride}: {len(ids)} tokens, {n} scored, ppl {math.exp(nll):.6f}", file=sys.stderr)
    with open(OUT, "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
