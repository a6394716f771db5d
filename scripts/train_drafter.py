#!/usr/bin/env python3
"""Train Medusa heads for SmolLM2-135M by distillation on the CPU and write them as sidecar GGUFs.

The base model is read from its GGUF with transformers (dequantized to float32) and stays
frozen. Prompts come from scripts/prompts-corpus.sh (public-domain docutils documentation,
split by file into disjoint training and evaluation sets); each prompt is wrapped in the
model's chat template as one user turn. The three distillation modes of the lecture each
produce their own sidecar:

  hard      self-distillation: the target's own greedy continuations of the training
            prompts; head k is trained with cross-entropy on the token at t+2+k.
  soft      KL(target || head) to the target's renormalised top-k distribution for the
            token at t+2+k, taken from the target's logits on the same sequences.
  onpolicy  DAgger-style rounds starting from the soft heads: the current heads propose their
            top-1 chain d_0..d_{K-1} at every position t; the target scores the chain token by
            token (one forward with a tree attention mask: each chain token sees the sequence
            up to t+1 and its own chain ancestors), so head k's label is the target's top-k
            distribution after x_{<=t+1}, d_0..d_{k-1}; data of all rounds is aggregated.

Head k (0-based) maps the final-normed hidden state h_t to x = h_t; x = x + silu(W x + b) per
residual block; logits = x @ E^T with E the base's (tied) output matrix; it predicts the token
at t+2+k. Heads start as the identity (W = 0, b = 0).

Evaluation on the held-out prompts' greedy continuations: per head, top-1 accuracy against the
target's greedy token at t+2+k given the target's own prefix, and the expected mean accepted
length of greedy chain verification, 1 + sum_k P(heads 0..k all right). The untrained
(identity) heads are reported as a baseline.

Sidecar layout (general.architecture = "medusa"): medusa.format_version, head_count,
layer_count, embedding_length, vocab_size (uint32), medusa.vocab_hash (FNV-1a 64 over the base
GGUF's tokenizer.ggml.tokens, each token's UTF-8 bytes then one 0x00 byte, 16 lowercase hex
digits), F32 tensors medusa.{k}.{r}.weight [d_out, d_in] and medusa.{k}.{r}.bias [d]. Each
written file is read back and its heads recomputed in numpy against the torch heads.

Greedy continuations, the target's hidden states and its top-k logits all come from the same
transformers generate() calls (not from vireo; the generated tokens are checked to be the argmax
of the returned logits, and the hidden states to give those logits through E). They are cached
under --out keyed by the settings, so a rerun only retrains. By default the heads' softmax is
taken over the tokens that occur as labels or in the target's top-k lists (--train-vocab
subset, a sampled-softmax approximation); evaluation always uses the full vocabulary.
The defaults are sized for a shared, loaded 2-core VM; raise --train-prompts / --new-tokens
where more CPU is available.

  python3 scripts/train_drafter.py [--quick] [--results bench/results/X.json]
"""
import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(f"[train_drafter {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def vocab_hash(gguf_path):
    from gguf import GGUFReader
    reader = GGUFReader(gguf_path)
    field = reader.fields["tokenizer.ggml.tokens"]
    h = 0xCBF29CE484222325
    for idx in field.data:
        for byte in bytes(field.parts[idx]) + b"\x00":
            h ^= byte
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}", len(field.data)


class Heads(torch.nn.Module):
    """K Medusa heads of R residual SiLU blocks each, over a frozen output matrix E."""

    def __init__(self, k, r, d):
        super().__init__()
        self.k, self.r = k, r
        self.blocks = torch.nn.ModuleList(
            torch.nn.ModuleList(torch.nn.Linear(d, d) for _ in range(r)) for _ in range(k))
        for head in self.blocks:
            for lin in head:
                torch.nn.init.zeros_(lin.weight)
                torch.nn.init.zeros_(lin.bias)

    def states(self, h):  # h [N, d] -> [K, N, d]
        out = []
        for head in self.blocks:
            x = h
            for lin in head:
                x = x + F.silu(lin(x))
            out.append(x)
        return torch.stack(out)


# ---------------------------------------------------------------- data

def load_prompts(corpus_dir, name, limit):
    with open(os.path.join(corpus_dir, name), encoding="utf-8") as f:
        rows = [line.strip() for line in f if line.strip()]
    return rows[:limit]


def encode_chat(tok, prompt):
    ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return list(ids)


@torch.no_grad()
def greedy_generate(model, tok, prompts, new_tokens, batch, topk, E):
    """Greedy continuations (transformers generate, left-padded batches) together with the
    target's data at every generated step s: the final-normed hidden state of the position
    that predicts generated token s, and the top-k of its logits. Returns a list of dicts."""
    eos = tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    out, worst = [], 0.0
    for i in range(0, len(prompts), batch):
        enc = [encode_chat(tok, p) for p in prompts[i:i + batch]]
        width = max(len(e) for e in enc)
        ids = torch.tensor([[pad] * (width - len(e)) + e for e in enc])
        mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in enc])
        g = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                           do_sample=False, pad_token_id=pad, eos_token_id=None,
                           return_dict_in_generate=True, output_hidden_states=True, output_logits=True)
        H = torch.stack([step[-1][:, -1] for step in g.hidden_states], 1)   # [B, S, d]
        logits = torch.stack(g.logits, 1)                                   # [B, S, V]
        # the hidden state read is what the LM head multiplies: logits == h @ E^T
        worst = max(worst, float((H[:, :4] @ E.T - logits[:, :4]).abs().max()))
        v, ti = logits.topk(topk, -1)
        for b, e in enumerate(enc):
            row = g.sequences[b, width:].tolist()
            if eos in row:
                row = row[:row.index(eos) + 1]
            n = len(row)
            assert row == logits[b, :n].argmax(-1).tolist()
            out.append({"ids": e + row, "plen": len(e), "h": H[b, :n].clone(),
                        "topk_ids": ti[b, :n].to(torch.int32), "topk_p": torch.softmax(v[b, :n], -1).half()})
        log(f"  generated {len(out)}/{len(prompts)}")
    if worst > 1e-2:
        raise SystemExit(f"generate's last hidden state is not the LM head's input (max err {worst})")
    return out


def build_dataset(seqs, k_heads):
    """Rows t = P-1 .. L-3 (generation steps s = 0 .. n-2): h_t and, per head k, the target's
    greedy token at t+2+k (-1 past the end) and its top-k distribution for that token."""
    hid, tk_ids, tk_p, greedy, offsets = [], [], [], [], []
    off = 0
    for sq in seqs:
        n = len(sq["ids"]) - sq["plen"]
        rows = max(0, n - 1)
        offsets.append((off, rows))
        off += rows
        if rows == 0:
            continue
        s = torch.arange(rows)
        lab = s[:, None] + 1 + torch.arange(k_heads)[None, :]               # generation step
        valid = lab <= n - 1
        lab_c = lab.clamp(max=n - 1)
        gen = torch.tensor(sq["ids"][sq["plen"]:])
        g = gen[lab_c]
        g[~valid] = -1
        i = sq["topk_ids"][lab_c].clone()
        i[~valid] = -1
        hid.append(sq["h"][:rows])
        tk_ids.append(i)
        tk_p.append(sq["topk_p"][lab_c])
        greedy.append(g)
    return {"h": torch.cat(hid), "topk_ids": torch.cat(tk_ids), "topk_p": torch.cat(tk_p),
            "greedy": torch.cat(greedy), "offsets": offsets}


@torch.no_grad()
def onpolicy_labels(model, seqs, rows_of, data, heads, E, k_heads, topk):
    """The heads' top-1 chains at every row t, scored token by token by the target: one forward
    per sequence over x plus every chain with a tree mask (a chain token sees x_0..x_{t+1} and
    its own chain ancestors, at position t+2+a). Head 0's label is the target's distribution
    after x_{<=t+1}; head k's after x_{<=t+1}, d_0..d_{k-1}."""
    tk_ids, tk_p, agree = [], [], []
    for sq, (off, n) in zip(seqs, rows_of):
        if n == 0:
            continue
        x = torch.tensor(sq["ids"])
        ts = torch.arange(n) + sq["plen"] - 1
        chain = (heads.states(data["h"][off:off + n]) @ E.T).argmax(-1).T   # [n, K]
        m = k_heads - 1
        base_len = int(ts[-1]) + 2
        total = base_len + n * m
        inp = torch.cat([x[:base_len], chain[:, :m].reshape(-1)])
        pos = torch.cat([torch.arange(base_len), (ts[:, None] + 2 + torch.arange(m)[None, :]).reshape(-1)])
        mask = torch.zeros(total, total, dtype=torch.bool)
        mask[:base_len, :base_len] = torch.ones(base_len, base_len).tril().bool()
        for j in range(n):
            t = int(ts[j])
            for a in range(m):
                row = base_len + j * m + a
                mask[row, :t + 2] = True
                mask[row, base_len + j * m: row + 1] = True
        lg = model(inp[None], attention_mask=mask[None, None], position_ids=pos[None]).logits[0]
        sel = torch.stack([lg[ts + 1]] + [lg[base_len + torch.arange(n) * m + a] for a in range(m)], 1)
        v, i = sel.topk(topk, -1)
        tk_ids.append(i.to(torch.int32))
        tk_p.append(torch.softmax(v, -1).half())
        agree.append(chain == sel.argmax(-1))
    return torch.cat(tk_ids), torch.cat(tk_p), torch.cat(agree)


# ---------------------------------------------------------------- training / evaluation

def train(heads, E, h, target, mode, epochs, lr, batch, seed, tag, vocab_subset=None):
    """mode 'hard': target [N, K] token ids (-1 = none); 'soft': (ids [N,K,k], p [N,K,k]).
    With vocab_subset the softmax runs over those tokens only (every label and target top-k id
    is in it): a sampled-softmax approximation that makes a step ~10x cheaper on this CPU."""
    g = torch.Generator().manual_seed(seed)
    remap = None
    if vocab_subset is not None:
        remap = torch.full((E.shape[0],), -1, dtype=torch.long)
        remap[vocab_subset] = torch.arange(len(vocab_subset))
        E = E[vocab_subset]

    def ids_in(x):
        x = x.long()
        return x if remap is None else torch.where(x >= 0, remap[x.clamp(min=0)], x)
    opt = torch.optim.AdamW(heads.parameters(), lr=lr, weight_decay=0.0)
    n = h.shape[0]
    steps = epochs * ((n + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    step = 0
    for ep in range(epochs):
        perm = torch.randperm(n, generator=g)
        total, count = 0.0, 0
        for s in range(0, n, batch):
            idx = perm[s:s + batch]
            logp = torch.log_softmax(heads.states(h[idx]) @ E.T, -1)      # [K, B, V]
            if mode == "hard":
                lab = ids_in(target[idx]).T                                       # [K, B]
                ok = lab >= 0
                loss = -(logp.gather(-1, lab.clamp(min=0)[..., None])[..., 0] * ok).sum() / ok.sum()
            else:
                ids, p = ids_in(target[0][idx]).transpose(0, 1), target[1][idx].transpose(0, 1).float()
                ok = (ids[..., :1] >= 0).float()
                lq = logp.gather(-1, ids.clamp(min=0))                    # [K, B, k]
                kl = (p * (torch.log(p.clamp(min=1e-9)) - lq)).sum(-1, keepdim=True)
                loss = (kl * ok).sum() / ok.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        log(f"  {tag} epoch {ep + 1}/{epochs}: loss {total / count:.4f}")
    return heads


@torch.no_grad()
def evaluate(heads, E, data, k_heads):
    pred = torch.cat([(heads.states(data["h"][s:s + 256]) @ E.T).argmax(-1).T
                      for s in range(0, data["h"].shape[0], 256)])              # [N, K]
    g = data["greedy"]
    ok = g >= 0
    right = (pred == g) & ok
    per_head = [float(right[:, k][ok[:, k]].float().mean()) for k in range(k_heads)]
    # chain: only positions where all K labels exist, so every depth is measured on one set
    full = ok.all(1)
    chain = torch.cumprod(right[full].float(), 1)
    chain_p = [float(chain[:, k].mean()) for k in range(k_heads)]
    return {"top1_per_head": per_head, "chain_all_right_per_depth": chain_p,
            "mean_accepted_length": 1.0 + sum(chain_p), "positions": int(full.sum())}


# ---------------------------------------------------------------- sidecar

def write_sidecar(path, heads, d, vocab, vhash):
    import gguf
    w = gguf.GGUFWriter(path, "medusa")
    w.add_uint32("medusa.format_version", 1)
    w.add_uint32("medusa.head_count", heads.k)
    w.add_uint32("medusa.layer_count", heads.r)
    w.add_uint32("medusa.embedding_length", d)
    w.add_uint32("medusa.vocab_size", vocab)
    w.add_string("medusa.vocab_hash", vhash)
    for k, head in enumerate(heads.blocks):
        for r, lin in enumerate(head):
            w.add_tensor(f"medusa.{k}.{r}.weight", lin.weight.detach().numpy().astype(np.float32))
            w.add_tensor(f"medusa.{k}.{r}.bias", lin.bias.detach().numpy().astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@torch.no_grad()
def check_sidecar(path, heads, h):
    """Read the file back and recompute the heads' states in numpy from its tensors."""
    from gguf import GGUFReader
    reader = GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    x_ref = heads.states(h).numpy()
    worst = 0.0
    for k in range(heads.k):
        x = h.numpy().astype(np.float64)
        for r in range(heads.r):
            wt = tensors[f"medusa.{k}.{r}.weight"]
            assert [int(s) for s in wt.shape] == [h.shape[1], h.shape[1]], wt.shape
            W = np.asarray(wt.data, dtype=np.float64).reshape(h.shape[1], h.shape[1])
            b = np.asarray(tensors[f"medusa.{k}.{r}.bias"].data, dtype=np.float64)
            z = x @ W.T + b
            x = x + z / (1.0 + np.exp(-z))
        worst = max(worst, float(np.abs(x - x_ref[k]).max()))
    if worst > 1e-3:
        raise SystemExit(f"{path}: heads read back differ from the trained ones by {worst}")
    return worst


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--corpus", default=os.path.join(ROOT, "build-corpus"))
    ap.add_argument("--out", default=os.path.join(ROOT, "models/medusa"))
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--train-prompts", type=int, default=96)
    ap.add_argument("--eval-prompts", type=int, default=12)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--gen-batch", type=int, default=32)
    ap.add_argument("--topk", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--onpolicy-rounds", type=int, default=1)
    ap.add_argument("--onpolicy-prompts", type=int, default=6,
                    help="training prompts whose positions the drafter proposes on, per round")
    ap.add_argument("--train-vocab", choices=["subset", "full"], default="subset")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fixture", default=os.path.join(ROOT, "tests/fixtures/medusa/smollm2-medusa.gguf"))
    ap.add_argument("--results", default=None)
    ap.add_argument("--quick", action="store_true", help="tiny settings to check the pipeline")
    a = ap.parse_args()
    if a.quick:
        a.train_prompts, a.eval_prompts, a.new_tokens, a.epochs = 4, 2, 12, 1
        a.onpolicy_rounds, a.onpolicy_prompts, a.fixture = 1, 2, None
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    phases = {}
    t_all = time.time()

    from transformers import AutoModelForCausalLM, AutoTokenizer
    t0 = time.time()
    mdir, mfile = os.path.split(os.path.abspath(a.model))
    tok = AutoTokenizer.from_pretrained(mdir, gguf_file=mfile)
    model = AutoModelForCausalLM.from_pretrained(mdir, gguf_file=mfile, dtype=torch.float32).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    E = model.get_output_embeddings().weight.detach()          # tied: token_embd.weight
    d, vocab = E.shape[1], E.shape[0]
    vhash, nvocab = vocab_hash(a.model)
    assert nvocab == vocab, (nvocab, vocab)
    phases["load_s"] = time.time() - t0
    log(f"base loaded: d={d} vocab={vocab} vocab_hash={vhash} ({phases['load_s']:.0f} s)")

    train_prompts = load_prompts(a.corpus, "prompts-train.txt", a.train_prompts)
    eval_prompts = load_prompts(a.corpus, "prompts-eval.txt", a.eval_prompts)
    assert not set(train_prompts) & set(eval_prompts)
    key = hashlib.sha256(json.dumps([a.model, os.path.getsize(a.model), train_prompts, eval_prompts,
                                     a.new_tokens, a.heads, a.topk]).encode()).hexdigest()[:12]
    cache = os.path.join(a.out, f"cache-{key}.pt")
    if os.path.exists(cache):
        t0 = time.time()
        c = torch.load(cache)
        gen_train, gen_eval = c["gen_train"], c["gen_eval"]
        phases["cache_load_s"] = time.time() - t0
        phases.update(c["phases"])
        log(f"cached generations and target data from {cache}")
    else:
        t0 = time.time()
        log(f"greedy generation (transformers) of {len(train_prompts)} + {len(eval_prompts)} prompts")
        gen_train = greedy_generate(model, tok, train_prompts, a.new_tokens, a.gen_batch, a.topk, E)
        gen_eval = greedy_generate(model, tok, eval_prompts, a.new_tokens, a.gen_batch, a.topk, E)
        phases["generate_s"] = time.time() - t0
        torch.save({"gen_train": gen_train, "gen_eval": gen_eval, "phases": dict(phases)}, cache)
    tr = build_dataset(gen_train, a.heads)
    ev = build_dataset(gen_eval, a.heads)
    log(f"train positions {tr['h'].shape[0]}, eval positions {ev['h'].shape[0]}")

    t0 = time.time()
    results = {"identity_heads": evaluate(Heads(a.heads, a.layers, d), E, ev, a.heads)}
    phases["evaluate_identity_s"] = time.time() - t0
    log(f"identity heads: {results['identity_heads']}")
    trained = {}

    def subset(*id_tensors):
        """Training vocabulary: every label and top-k id seen (or the full vocabulary)."""
        if a.train_vocab == "full":
            return None
        ids = torch.cat([t.reshape(-1).long() for t in id_tensors])
        return torch.unique(ids[ids >= 0])

    t0 = time.time()
    sub = subset(tr["greedy"], tr["topk_ids"])
    log(f"training vocabulary: {'full' if sub is None else len(sub)} tokens")
    hard = train(Heads(a.heads, a.layers, d), E, tr["h"], tr["greedy"], "hard", a.epochs,
                 a.lr, a.batch, a.seed, "hard", sub)
    phases["train_hard_s"] = time.time() - t0
    trained["hard"] = hard

    t0 = time.time()
    soft = train(Heads(a.heads, a.layers, d), E, tr["h"], (tr["topk_ids"], tr["topk_p"]), "soft",
                 a.epochs, a.lr, a.batch, a.seed, "soft", sub)
    phases["train_soft_s"] = time.time() - t0
    trained["soft"] = soft

    onp = Heads(a.heads, a.layers, d)
    onp.load_state_dict(soft.state_dict())
    agg_h, agg_i, agg_p, rounds = [], [], [], []
    for rnd in range(a.onpolicy_rounds):
        t0 = time.time()
        start = (rnd * a.onpolicy_prompts) % len(gen_train)
        pick = [(start + j) % len(gen_train) for j in range(min(a.onpolicy_prompts, len(gen_train)))]
        rows_of = [tr["offsets"][j] for j in pick]
        ids_, p_, agree = onpolicy_labels(model, [gen_train[j] for j in pick], rows_of, tr, onp, E,
                                          a.heads, a.topk)
        rows = torch.cat([torch.arange(o, o + n) for o, n in rows_of])
        assert len(rows) == ids_.shape[0], (len(rows), ids_.shape)
        agg_h.append(tr["h"][rows]); agg_i.append(ids_); agg_p.append(p_)
        t1 = time.time()
        h_all = torch.cat([tr["h"]] + agg_h)
        i_all = torch.cat([tr["topk_ids"]] + agg_i)
        p_all = torch.cat([tr["topk_p"]] + agg_p)
        onp = train(onp, E, h_all, (i_all, p_all), "soft", 1, a.lr / 3, a.batch, a.seed + 1 + rnd,
                    f"onpolicy round {rnd + 1}", subset(tr["greedy"], i_all))
        rounds.append({"label_s": t1 - t0, "train_s": time.time() - t1, "positions": int(len(rows)),
                       "chain_token_agrees_with_target": [float(x) for x in agree.float().mean(0)]})
        log(f"  on-policy round {rnd + 1}: {rounds[-1]}")
    phases["onpolicy_rounds"] = rounds
    phases["train_onpolicy_s"] = sum(r["label_s"] + r["train_s"] for r in rounds)
    trained["onpolicy"] = onp

    t0 = time.time()
    files = {}
    for mode, heads in trained.items():
        results[mode] = evaluate(heads, E, ev, a.heads)
        path = os.path.join(a.out, f"smollm2-medusa-{mode}.gguf")
        write_sidecar(path, heads, d, vocab, vhash)
        err = check_sidecar(path, heads, ev["h"][:64])
        files[mode] = {"path": os.path.relpath(path, ROOT), "bytes": os.path.getsize(path),
                       "readback_max_abs_err": err}
        log(f"{mode}: {results[mode]}  -> {path}")
    phases["evaluate_write_s"] = time.time() - t0
    best = max(trained, key=lambda m: results[m]["mean_accepted_length"])
    if a.fixture:
        os.makedirs(os.path.dirname(a.fixture), exist_ok=True)
        write_sidecar(a.fixture, trained[best], d, vocab, vhash)
        check_sidecar(a.fixture, trained[best], ev["h"][:64])
        log(f"fixture ({best}) -> {a.fixture}")
    phases["total_s"] = time.time() - t_all

    def sh(*cmd):
        try:
            return subprocess.check_output(cmd, cwd=ROOT, text=True, stderr=subprocess.DEVNULL).strip()
        except Exception:
            return None
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except Exception:
        pass
    report = {
        "what": "Medusa heads for SmolLM2-135M-Instruct trained by distillation (scripts/train_drafter.py)",
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": a.threads,
                    "loadavg_at_end": os.getloadavg(), "platform": platform.platform()},
        "commit": sh("git", "rev-parse", "HEAD"),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base": os.path.relpath(a.model, ROOT), "vocab_hash": vhash,
        "settings": {k: v for k, v in vars(a).items() if k not in ("results",)},
        "corpus": "scripts/prompts-corpus.sh: docutils 0.21.2 documentation (public domain), split by file",
        "data": {"train_prompts": len(train_prompts), "eval_prompts": len(eval_prompts),
                 "train_positions": int(tr["h"].shape[0]), "eval_positions": int(ev["h"].shape[0]),
                 "greedy_generator": "transformers generate (float32, batched, left-padded); target data from the same calls"},
        "acceptance_on_heldout": results,
        "best_mode": best,
        "fixture": os.path.relpath(a.fixture, ROOT) if a.fixture else None,
        "files": files,
        "phases_s": phases,
    }
    print(json.dumps(report["acceptance_on_heldout"], indent=1))
    if a.results:
        with open(a.results, "w") as f:
            json.dump(report, f, indent=1)
        log(f"results -> {a.results}")


if __name__ == "__main__":
    main()
