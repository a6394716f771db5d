#!/usr/bin/env python3
"""Golden model fixtures for vireo, from an independent implementation (HF transformers).

transformers loads the SmolLM2-135M-Instruct GGUF itself (`gguf_file=`): it dequantizes
the Q4_1/Q8_0 tensors to fp32 and undoes llama.cpp's Q/K row permutation, then runs its own
PyTorch Llama in fp32. For each prompt we record the prompt token ids (both sides get the
same ids, so a tokenizer difference cannot hide a model difference), a sample of the
last-position logits, and the 32-token greedy continuation.

Output: tests/fixtures/model_golden.txt, one block per prompt:
    prompt <hex of the prompt text>
    ids <prompt ids>
    logits <index>:<value> ...     (the 64 largest, then every 97th index)
    greedy <32 ids>

Needs the pinned versions of scripts/golden/versions.py (CPU torch is enough):
       pip install torch==2.15.0 transformers==5.25.0 accelerate==1.16.0 gguf==0.19.0 numpy==2.4.6
The first line of the fixture records the versions that made it.
Run:   python3 scripts/golden/make_model_fixtures.py [models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import versions  # noqa: E402

PACKAGES = ("torch", "transformers", "accelerate", "gguf", "numpy")
versions.require(*PACKAGES)

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GGUF = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(ROOT, "tests", "fixtures", "model_golden.txt")

PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a little",
    "def fibonacci(n):\n    ",
    "<|im_start|>user\nWhat is the tallest mountain on Earth?<|im_end|>\n<|im_start|>assistant\n",
    "Water boils at a temperature of",
    # More than 1,000 tokens: RoPE and attention far from position 0 (issue 18).
    "".join(f"Chapter {i}. The river town of Millbrook kept its records in a stone library by the "
            f"bridge; in year {1700 + 13 * i} the keeper listed {i * 7} new volumes on farming, "
            f"weather and the mill, and noted that the water rose {i % 5 + 1} feet in spring. "
            for i in range(1, 31)) + "In summary, the keeper of the library",
]


def main():
    torch.manual_seed(0)
    d, f = os.path.split(os.path.abspath(GGUF))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    model.eval()
    lines = []
    for p in PROMPTS:
        ids = tok(p, add_special_tokens=False)["input_ids"]
        x = torch.tensor([ids])
        with torch.no_grad():
            logits = model(x).logits[0, -1].double()
            out = model.generate(x, max_new_tokens=32, do_sample=False, num_beams=1,
                                 eos_token_id=None, pad_token_id=tok.eos_token_id)
        cont = out[0, len(ids):].tolist()
        top = torch.topk(logits, 64).indices.tolist()
        idx = top + [i for i in range(0, logits.numel(), 97) if i not in set(top)]
        lines.append("prompt " + p.encode().hex())
        lines.append("ids " + " ".join(map(str, ids)))
        lines.append("logits " + " ".join(f"{i}:{logits[i].item():.7g}" for i in idx))
        lines.append("greedy " + " ".join(map(str, cont)))
        print(repr(p), "->", repr(tok.decode(cont)), file=sys.stderr)
    with open(OUT, "w") as fh:
        fh.write("\n".join([versions.header(*PACKAGES)] + lines) + "\n")


if __name__ == "__main__":
    main()
