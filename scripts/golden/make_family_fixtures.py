#!/usr/bin/env python3
"""Random-weight models of the families vireo describes in src/model/arch/, made with HF
transformers' own model classes, written to GGUF, with transformers' fp32 logits as golden.

For each case below: a small config of the family's transformers class (fixed seed), every
parameter drawn at random (matrices ~ N(0, 1/fan_in); norm weights 1 + N(0, 0.1); biases
N(0, 0.1)) and rounded to fp16 (the GGUF stores F16 matrices, so both sides use the same
weights), one 40-token prompt of random ids, and the logits of every 5th position and the
last, from transformers in fp32. The GGUF is written with gguf-py the way llama.cpp's
convert_hf_to_gguf.py writes these families:
  - tensor names from gguf-py's own HF -> GGUF name map (gguf.get_tensor_name_map);
  - llama / mistral: Q and K rows permuted so RoPE rotates adjacent pairs (llama.cpp's
    LlamaModel.permute); qwen2 / phi3: no permutation (GPT-NeoX RoPE);
  - llama3 RoPE scaling as the rope_freqs.weight tensor (the converter's formula, below);
    linear scaling as rope.scaling.type / rope.scaling.factor;
  - norm weights and biases F32, matrices F16;
  - a byte-level BPE vocabulary (256 byte tokens, one merge, controls) so vireo can load it.
Mistral: llama.cpp writes Mistral checkpoints as arch "llama" without the window; vireo's
"mistral" family reads attention.sliding_window, so these files use arch "mistral".

Cases: llama (plain), llama-linear (linear RoPE scaling x4), llama3 (llama3 RoPE scaling
with an original context of 16, so most frequencies are scaled within 40 positions),
mistral (sliding window 8), qwen2 (QKV biases, NeoX RoPE), phi3 (fused QKV and gate/up,
partial rotary 0.5, sliding window 12).

Output: tests/fixtures/family/<case>.gguf and tests/fixtures/family/<case>.txt:
    # versions ...
    ids <40 ids>
    logits <position> v0 v1 ...   (one line per checked position, the whole vocabulary)

Needs: the pinned versions of scripts/golden/versions.py (pip install torch transformers gguf numpy)
Run:   python3 scripts/golden/make_family_fixtures.py
"""
import importlib.metadata
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import versions  # noqa: E402  (pinned versions: scripts/golden/versions.py)

versions.require("torch", "transformers", "gguf", "numpy")

import gguf
import numpy as np
import torch
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Phi3Config,
                          Phi3ForCausalLM, Qwen2Config, Qwen2ForCausalLM)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "family")
VOCAB = 300
N_PROMPT = 40
COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=False)


def llama3_factors(theta, dim, factor, low, high, old_ctx):
    """convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors for rope_type llama3."""
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    low_wl, high_wl = old_ctx / low, old_ctx / high
    out = []
    for f in freqs.tolist():
        wl = 2 * math.pi / f
        if wl < high_wl:
            out.append(1.0)
        elif wl > low_wl:
            out.append(factor)
        else:
            smooth = (old_ctx / wl - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


CASES = {
    "llama": (LlamaConfig, LlamaForCausalLM, "llama", gguf.MODEL_ARCH.LLAMA, dict(head_dim=16, rope_theta=10000.0)),
    "llama-linear": (LlamaConfig, LlamaForCausalLM, "llama", gguf.MODEL_ARCH.LLAMA,
                     dict(head_dim=16, rope_theta=10000.0,
                          rope_parameters=dict(rope_type="linear", factor=4.0, rope_theta=10000.0))),
    "llama3": (LlamaConfig, LlamaForCausalLM, "llama", gguf.MODEL_ARCH.LLAMA,
               dict(head_dim=16, rope_theta=10000.0,
                    rope_parameters=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                         original_max_position_embeddings=16, rope_theta=10000.0))),
    "mistral": (MistralConfig, MistralForCausalLM, "mistral", gguf.MODEL_ARCH.LLAMA,
                dict(head_dim=16, rope_theta=10000.0, sliding_window=8)),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, "qwen2", gguf.MODEL_ARCH.QWEN2,
              dict(rope_theta=1000000.0, rms_norm_eps=1e-6)),
    "phi3": (Phi3Config, Phi3ForCausalLM, "phi3", gguf.MODEL_ARCH.PHI3,
             dict(rope_theta=10000.0, partial_rotary_factor=0.5, sliding_window=12, pad_token_id=0,
                  bos_token_id=1, eos_token_id=2)),
}


def permute(w, n_head, n_head_kv):
    """llama.cpp's LlamaModel.permute (Q: n_head; K: n_head_kv)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def byte_vocab():
    """A gpt2-style vocabulary: the 256 byte-level characters, then control tokens."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    tokens = [chr(c) for _, c in sorted(zip(bs, cs))] + ["\u0120\u0120"]  # one merge: two spaces
    types = [1] * 257
    for i in range(VOCAB - 257):
        tokens.append(f"<|ctl{i}|>")
        types.append(3)
    return tokens, types


def make(name, cfg_cls, model_cls, arch_name, gguf_arch, extra):
    torch.manual_seed(1234)
    cfg = cfg_cls(**{**COMMON, **extra})
    model = model_cls(cfg).eval()
    g = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
            elif "norm" in pname:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            p.copy_(p.half().float())
    ids = torch.randint(3, VOCAB, (1, N_PROMPT), generator=g)
    with torch.no_grad():
        logits = model(ids).logits[0].double()

    os.makedirs(OUT, exist_ok=True)
    w = gguf.GGUFWriter(os.path.join(OUT, name + ".gguf"), arch_name)
    hd = cfg.head_dim if getattr(cfg, "head_dim", None) else cfg.hidden_size // cfg.num_attention_heads
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    rp = getattr(cfg, "rope_parameters", None) or {}
    theta = rp.get("rope_theta", extra.get("rope_theta", 10000.0))
    w.add_rope_freq_base(theta)
    n_rot = int(hd * extra.get("partial_rotary_factor", 1.0))
    w.add_rope_dimension_count(n_rot)
    if rp.get("rope_type") == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(rp["factor"])
    if extra.get("sliding_window"):
        w.add_sliding_window(extra["sliding_window"])
    tokens, types = byte_vocab()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(["\u0120 \u0120"])
    w.add_bos_token_id(257)
    w.add_eos_token_id(258)
    if rp.get("rope_type") == "llama3":
        w.add_tensor("rope_freqs.weight", llama3_factors(theta, hd, rp["factor"], rp["low_freq_factor"],
                                                         rp["high_freq_factor"], rp["original_max_position_embeddings"]))
    names = gguf.get_tensor_name_map(gguf_arch, cfg.num_hidden_layers)
    for pname, p in model.state_dict().items():
        new = names.get_name(pname, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise SystemExit(f"{name}: no GGUF name for {pname}")
        t = p.numpy()
        if arch_name in ("llama", "mistral"):
            if pname.endswith("q_proj.weight"):
                t = permute(t, cfg.num_attention_heads, cfg.num_attention_heads)
            elif pname.endswith("k_proj.weight"):
                t = permute(t, cfg.num_attention_heads, cfg.num_key_value_heads)
        w.add_tensor(new, t.astype(np.float16) if t.ndim == 2 else t.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    v = importlib.metadata.version
    lines = [f"# versions torch {v('torch')} transformers {v('transformers')} gguf {v('gguf')}",
             "ids " + " ".join(map(str, ids[0].tolist()))]
    for pos in list(range(0, N_PROMPT, 5)) + [N_PROMPT - 1]:
        lines.append(f"logits {pos} " + " ".join(f"{x:.7g}" for x in logits[pos].tolist()))
    with open(os.path.join(OUT, name + ".txt"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print(name, "max |logit|", logits.abs().max().item())


def main():
    for name, (cc, mc, an, ga, extra) in CASES.items():
        make(name, cc, mc, an, ga, extra)


if __name__ == "__main__":
    main()
