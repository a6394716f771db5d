#!/usr/bin/env python3
"""Golden bytes for vireo's reference quantizers, from gguf-py (llama.cpp's own Python port
of ggml's quantize_row_*_ref, in numpy float32 with ggml's order of operations).

For every type gguf-py can quantize and vireo writes (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, BF16),
it quantizes the same seeded input (normal values at three scales, a block of zeros, a block
with one large outlier, a constant block) and writes one line per type:
    <type> <n> <hex of the n float32 inputs> <hex of gguf-py's bytes>
tests/test_quantize_tool.cpp quantizes the same inputs with vireo and compares the bytes.

Needs: pip install gguf numpy
Run:   python3 scripts/golden/make_quantize_fixtures.py
"""
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "quantize_golden.txt"

rng = np.random.default_rng(16)
parts = [rng.standard_normal(256) * s for s in (0.02, 1.0, 37.0)]
zeros = np.zeros(32)
outlier = rng.standard_normal(32) * 0.01
outlier[7] = 3.5
const = np.full(32, -0.75)
x = np.concatenate(parts + [zeros, outlier, const]).astype(np.float32)

lines = []
for t in (T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.BF16):
    q = quantize(x.reshape(1, -1), t)
    lines.append(f"{t.name} {x.size} {x.tobytes().hex()} {np.asarray(q).tobytes().hex()}")
OUT.write_text("\n".join(lines) + "\n")
print(f"wrote {OUT}")
