#!/usr/bin/env python3
"""Golden values for vireo's dequantize(), produced by an independent implementation.

Reads the default model with the `gguf` Python package (llama.cpp's gguf-py), dequantizes
row 0 of a few tensors with gguf.quants.dequantize, and writes the first 64 values of each
to tests/fixtures/quant_golden.txt, one line per tensor: `<name> v0 ... v63` (%.9g, enough
digits to round-trip an fp32). It also quantizes a fixed, exactly representable input with
gguf.quants.quantize (gguf-py's port of ggml's quantize_row_*_ref) and writes one line per
type: `@quantize <type> <hex bytes>`. For the types the model does not use (Q5_0, Q5_1 and
the K-quants Q4_K, Q5_K, Q6_K) it builds blocks of seeded random bytes, with the fp16 scale
fields set to finite values in a realistic range, dequantizes them with gguf-py and writes
`@dequant <type> <hex bytes> v0 v1 ...`. tests/test_quant.cpp compares vireo's dequantize of
the model's bytes and of those blocks, and vireo's quantize of the same input, against these
lines.

Needs the pinned versions of scripts/golden/versions.py: pip install gguf==0.19.0 numpy==2.4.6
The first line of the fixture records the versions that made it.
Usage: python scripts/golden/make_quant_fixtures.py [model.gguf] [out.txt]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import versions  # noqa: E402

PACKAGES = ("gguf", "numpy")
versions.require(*PACKAGES)

import numpy as np  # noqa: E402
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader  # noqa: E402
from gguf.quants import dequantize, quantize  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MODEL = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "tests" / "fixtures" / "quant_golden.txt"
TENSORS = ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.ffn_down.weight", "output_norm.weight"]
N = 64

reader = GGUFReader(MODEL)
by_name = {t.name: t for t in reader.tensors}
lines = []
for name in TENSORS:
    t = by_name[name]
    # t.data is [rows, row_bytes] (uint8) for quantized types, [rows, cols] for floats.
    rows = np.asarray(t.data).reshape(-1, t.data.shape[-1])
    row0 = dequantize(rows[0:1], t.tensor_type).reshape(-1).astype(np.float32)
    vals = " ".join("%.9g" % float(v) for v in row0[:N])
    lines.append(f"{name} {vals}")
    print(f"{name}: {t.tensor_type.name} shape {list(t.shape)} -> {row0[:4]}")

# The quantize input, rebuilt identically in tests/test_quant.cpp: 8 blocks of exact
# multiples of 1/256 in [-1000/256, 1000/256], one block of zeros (d = 0), one constant block.
x = np.array([((i * 7919) % 2001 - 1000) / 256.0 for i in range(256)] + [0.0] * 32 + [0.75] * 32,
             dtype=np.float32)
for qt in (GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q4_1):
    q = quantize(x.reshape(1, -1), qt)
    lines.append(f"@quantize {qt.name} {q.tobytes().hex()}")

# Random blocks of the read-only types: (type, blocks, [(byte offset of an fp16 field, lo, hi)]).
rng = np.random.default_rng(20261126)
RANDOM_BLOCKS = [
    (GGMLQuantizationType.Q5_0, 8, [(0, 1e-3, 5e-2)]),
    (GGMLQuantizationType.Q5_1, 8, [(0, 1e-3, 5e-2), (2, -0.5, 0.5)]),
    (GGMLQuantizationType.Q4_K, 2, [(0, 1e-3, 5e-2), (2, 1e-3, 5e-2)]),
    (GGMLQuantizationType.Q5_K, 2, [(0, 1e-3, 5e-2), (2, 1e-3, 5e-2)]),
    (GGMLQuantizationType.Q6_K, 2, [(208, 1e-3, 5e-2)]),
    # Appended later: the draws above, and so their lines, stay as they were.
    (GGMLQuantizationType.Q2_K, 2, [(80, 1e-3, 5e-2), (82, 1e-3, 5e-2)]),
    (GGMLQuantizationType.Q3_K, 2, [(108, 1e-3, 5e-2)]),
    (GGMLQuantizationType.IQ4_NL, 8, [(0, 1e-3, 5e-2)]),
    (GGMLQuantizationType.IQ4_XS, 2, [(0, 1e-3, 5e-2)]),
]
for qt, n_blocks, halves in RANDOM_BLOCKS:
    block_elems, block_bytes = GGML_QUANT_SIZES[qt]
    raw = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for off, lo, hi in halves:
        vals = rng.uniform(lo, hi, size=n_blocks).astype(np.float16)
        raw[:, off:off + 2] = vals.view(np.uint8).reshape(n_blocks, 2)
    vals = dequantize(raw.reshape(1, -1), qt).reshape(-1).astype(np.float32)
    assert vals.size == n_blocks * block_elems and np.all(np.isfinite(vals))
    lines.append(f"@dequant {qt.name} {raw.tobytes().hex()} " + " ".join("%.9g" % float(v) for v in vals))
    print(f"{qt.name}: {n_blocks} random blocks -> {vals[:4]}")

OUT.write_text("\n".join([versions.header(*PACKAGES)] + lines) + "\n")
print(f"wrote {OUT}")
