#!/usr/bin/env python3
"""Turn the benchmark results under bench/results/ into PNG charts written beside them.

usage: scripts/plot-results.py [PATH ...] [--archive] [--out DIR] [--list]

  PATH       JSON files or folders to scan (default: bench/results, recursively).
  --archive  also scan bench/results/archive/ (skipped by default; its PNGs are not committed).
  --out DIR  write the PNGs under DIR (mirroring the paths under the scanned folder) instead of
             beside each file.
  --list     only print what each file is recognised as; draw nothing.

Each result file is recognised by its "benchmark" field, or by its shape where the writer
records none (vireo-bench model and Google Benchmark JSON), and gets the chart of its kind:

  vireo-bench model     <stem>.png: tokens/s achieved against the roofline floor (tokens /
                        floor_ms) per batch size (decode) and per prompt length (prefill, TTFT),
                        the fraction of the floor written at each point; the issue bars
                        (value / target) where the run has them.
  Google Benchmark      <stem>-bandwidth.png: GB/s per kernel against the read bandwidth;
                        <stem>-roofline.png: FLOP/s against arithmetic intensity for the kernels
                        that report both bytes and FLOPs. The roof (bandwidth_gbs,
                        matmul_gflops) comes from the vireo-bench model run on the same device
                        nearest in time (within 12 h, named on the chart): the kernel JSON does
                        not record the machine's rates itself.
  ncu CSV (ncu.csv.gz)  <stem>.png: DRAM GB/s per kernel (Nsight Compute, each kernel alone)
                        against the read bandwidth of a vireo-bench model run in the same folder.
  vireo-bench serve     <stem>-<trace>.png: output tokens/s and TTFT / inter-token / end-to-end
                        latency percentiles per policy (bars: mean of the repeats; dots: each
                        repeat). The JSON holds percentiles, not per-request latencies, so no
                        CDF is drawn; and no offered-load sweep, so no goodput curve.
  vireo-bench stress    <stem>.png: request outcomes per preemption mode, with the accounting.
  aiperf load test      <stem>.png: request throughput and goodput per load phase, TTFT and
                        inter-token latency percentiles per phase.
  vireo-bench spec      <stem>.png: speed-up over plain greedy decoding per task and method.
  quantize evaluation   <stem>.png: perplexity and KL divergence per type and method.
  peer llama.cpp        <stem>.png: llama.cpp against vireo, tokens/s per file and workload.
  Medusa training       <stem>.png: held-out top-1 acceptance per head and mode.

Anything else is listed as skipped with the reason, never an error. The charts are
deterministic: fixed style and size, no timestamps beyond the dates the files record.
Needs matplotlib and numpy (`python3 -m pip install matplotlib`, or run
scripts/plot-results.sh, which installs them into build-plot/venv when missing).
Exit status: 0 when every recognised file was drawn, 1 when a chart failed, 2 on bad usage.
"""
import argparse
import gzip
import importlib.util
import json
import math
import os
import signal
import sys
import textwrap
import traceback
from datetime import datetime, timezone

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np
except ImportError:
    sys.stderr.write("plot-results: needs matplotlib and numpy: python3 -m pip install matplotlib "
                     "(or run scripts/plot-results.sh, which installs them into build-plot/venv)\n")
    sys.exit(2)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DPI = 100
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
          "#7f7f7f", "#bcbd22"]
STYLE = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "figure.titlesize": 11, "axes.grid": True,
    "grid.alpha": 0.3, "grid.linewidth": 0.6, "axes.spines.top": False, "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=COLORS), "savefig.dpi": DPI, "figure.dpi": DPI,
    "path.simplify": False,
}


# ---------------------------------------------------------------------------------------------
# reading and recognising files

class Skip(Exception):
    """A file this script does not draw, with the reason."""


def load_json(path):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Skip(f"not valid JSON ({e}; truncated by an interrupted run?)")


def kind_of(doc):
    """The name of the chart for a parsed result file, or raise Skip with the reason."""
    if not isinstance(doc, dict):
        raise Skip(f"top level is a {type(doc).__name__}, not an object")
    bench = doc.get("benchmark")
    if isinstance(bench, str):
        if bench == "vireo-bench serve" and isinstance(doc.get("traces"), list):
            return "serve"
        if bench == "vireo-bench spec" and isinstance(doc.get("tasks"), list):
            return "spec"
        if bench == "vireo-bench stress" and isinstance(doc.get("modes"), list):
            return "stress"
        if "aiperf" in bench and isinstance(doc.get("phases"), list):
            return "aiperf"
        if bench.startswith("peer: llama.cpp") and isinstance(doc.get("runs"), list):
            return "peer"
        if "perplexity" in bench and isinstance(doc.get("runs"), dict):
            return "quantize"
        raise Skip(f"benchmark {bench!r}: no chart for this kind")
    if isinstance(doc.get("results"), list) and "bandwidth_gbs" in doc:
        return "model"  # vireo-bench model writes no "benchmark" field
    if isinstance(doc.get("context"), dict) and isinstance(doc.get("benchmarks"), list):
        return "gbench"
    if isinstance(doc.get("acceptance_on_heldout"), dict):
        return "medusa"
    raise Skip("no \"benchmark\" field and not a shape this script knows")


def is_ncu_csv(path):
    name = os.path.basename(path)
    return name.startswith("ncu") and (name.endswith(".csv") or name.endswith(".csv.gz"))


def parse_date(s):
    """ISO 8601 from the result files ('...Z' or '+00:00') -> aware datetime, or None."""
    if not isinstance(s, str):
        return None
    try:
        d = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def date_text(s):
    d = parse_date(s)
    return d.strftime("%Y-%m-%d %H:%M UTC") if d else (s or "date not recorded")


def machine_text(m):
    """One line naming the machine from the several 'machine' shapes the writers use."""
    if isinstance(m, str):
        return m.split(" (")[0]
    if not isinstance(m, dict):
        return "machine not recorded"
    dev = m.get("gpu") or (m.get("device") if m.get("device") not in (None, "cpu") else None)
    if dev:
        dev = dev.split("(", 1)[1].split(",")[0] if dev.startswith("cuda:") and "(" in dev else dev
        return dev
    cores = m.get("cores") or m.get("hardware_threads")
    cpu = m.get("cpu") or "CPU"
    return f"{cpu}, {cores} cores" if cores else cpu


def short_model(name):
    name = str(name)
    if name.startswith("file:") or "/" in name:
        name = os.path.basename(name.split(":", 1)[-1])
    return name


def title(fig, what, doc, rel, machine=None, date=None, commit=None):
    machine = machine if machine is not None else machine_text(doc.get("machine"))
    date = date if date is not None else doc.get("date")
    commit = commit if commit is not None else (doc.get("commit") or doc.get("vireo_commit"))
    line = f"{what} — {machine} — {date_text(date)}"
    if commit:
        line += f" — commit {str(commit)[:7]}"
    fig.suptitle(f"{line}\n{rel}", fontsize=10)


def save(fig, path, written):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    # No software version or creation time in the PNG: the same JSON gives the same file.
    fig.savefig(path, dpi=DPI, metadata={"Software": None}, pil_kwargs={"optimize": True})
    plt.close(fig)
    written.append(path)


def log_axis(axis):
    """Label a log axis in plain numbers (no 10^n), 1-2-5 per decade or denser where the data
    span less than two decades, no minor labels. Call after the data are drawn."""
    lo, hi = sorted(axis.get_view_interval())
    decades = math.log10(hi / lo) if lo > 0 and hi > 0 else 3.0
    subs = (1.0, 2.0, 5.0) if decades > 2 else (1.0, 2.0, 3.0, 5.0, 7.0) if decades > 0.7 else \
        tuple(float(i) for i in range(1, 10))
    axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:.3g}"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def flops_text(gflops):
    return f"{gflops / 1e3:,.1f} TFLOP/s" if gflops >= 1e3 else f"{gflops:,.0f} GFLOP/s"


def num(x):
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


# ---------------------------------------------------------------------------------------------
# vireo-bench model: achieved against the floor

def model_group_label(r):
    label = short_model(r.get("model"))
    extra = [str(r["weights"])] if r.get("weights") else []
    if r.get("dtype") and r.get("dtype") != r.get("weights"):
        extra.append(str(r["dtype"]))
    if r.get("kv") not in (None, "model"):
        extra.append(f"kv {r['kv']}")
    return f"{label} ({', '.join(extra)})" if extra else label


def plot_model(doc, rel, out, notes, written):
    groups = {}
    for r in doc["results"]:
        if r.get("kind") in ("decode", "prefill", "ttft"):
            groups.setdefault(model_group_label(r), []).append(r)
    if not groups:
        raise Skip("no decode / prefill / TTFT results")
    bars = doc.get("bars") if isinstance(doc.get("bars"), list) else []
    fig = plt.figure(figsize=(15 if bars else 10.5, 8.6))
    gs = fig.add_gridspec(2, 3 if bars else 2, height_ratios=(1.6, 1))
    color = {g: COLORS[i % len(COLORS)] for i, g in enumerate(groups)}
    marker = {g: "osD^v<>ph*"[i % 10] for i, g in enumerate(groups)}
    contexts = sorted({r.get("context") for rs in groups.values() for r in rs if r.get("kind") == "decode"})
    for col, kind, xkey, xlabel, what in (
            (0, "decode", "batch", "batch size (sequences, one token each per step)",
             "decode" + (f" at context {', '.join(map(str, contexts))}" if contexts else "")),
            (1, "prefill", "tokens", "prompt length (tokens)", "prefill")):
        ax, axf = fig.add_subplot(gs[0, col]), fig.add_subplot(gs[1, col])
        xt = set()
        for g, rs in groups.items():
            # A TTFT result is a prefill plus the first sample: drawn only where no prefill of
            # the same length was measured.
            pre = {r.get("tokens") for r in rs if r.get("kind") == "prefill"}
            pts = sorted((r[xkey], r["tok_s"], r.get("floor_ms"), r.get("fraction_of_floor"), r["tokens"])
                         for r in rs if num(r.get("tok_s")) and num(r.get(xkey)) and num(r.get("tokens"))
                         and r[xkey] > 0 and (r.get("kind") == kind or (
                             kind == "prefill" and r.get("kind") == "ttft" and r["tokens"] not in pre)))
            if not pts:
                continue
            xt.update(p[0] for p in pts)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker[g], color=color[g], label=g)
            fl = [(p[0], p[4] / (p[2] / 1e3)) for p in pts if num(p[2]) and p[2] > 0]
            if fl:
                ax.plot([f[0] for f in fl], [f[1] for f in fl], linestyle="--", marker=marker[g], mfc="none",
                        color=color[g], alpha=0.8)
            fr = [(p[0], p[3]) for p in pts if num(p[3]) is not None]
            if fr:
                axf.plot([f[0] for f in fr], [f[1] for f in fr], marker=marker[g], color=color[g])
                for x, f in fr:
                    axf.annotate(f"{f:.0%}", (x, f), textcoords="offset points", xytext=(4, 3), fontsize=7, color=color[g])
        ax.set_title(what)
        ax.set_ylabel("tokens / s")
        axf.set_xlabel(xlabel)
        axf.set_ylabel("fraction of the floor")
        axf.set_ylim(0, 1.05)
        axf.axhline(1.0, color="k", linewidth=0.6)
        if xt:
            xt = sorted(xt)
            for a in (ax, axf):
                a.set_xscale("log", base=2)
                a.minorticks_off()
                a.set_xticks(xt)
                a.set_xticklabels([str(x) for x in xt])
                if len(xt) == 1:
                    a.set_xlim(xt[0] / 1.5, xt[0] * 1.5)
            ax.set_yscale("log")
            log_axis(ax.yaxis)
        else:
            ax.text(0.5, 0.5, "not measured in this run", ha="center", va="center", transform=ax.transAxes)
    rates = []
    if num(doc.get("bandwidth_gbs")):
        rates.append(f"read {doc['bandwidth_gbs']:,.0f} GB/s")
    if num(doc.get("memcpy_gbs")):
        rates.append(f"copy {doc['memcpy_gbs']:,.0f} GB/s")
    if num(doc.get("matmul_gflops")):
        rates.append(f"GEMM {flops_text(doc['matmul_gflops'])}")
    handles = [plt.Line2D([], [], color=color[g], marker=marker[g], label=g) for g in groups]
    handles += [plt.Line2D([], [], color="k", label="achieved tokens / s"),
                plt.Line2D([], [], color="k", linestyle="--", marker="o", mfc="none",
                           label="at the floor: tokens / floor_ms")]
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), frameon=False)
    fig.text(0.5, 0.075, "floor: decode = bytes read (weights + KV) / read bandwidth; prefill = FLOPs / GEMM rate. "
             "Measured in the run: " + (", ".join(rates) or "no rates"), ha="center", fontsize=8)
    if bars:
        ax = fig.add_subplot(gs[:, 2])
        labels, ratio, met, text = [], [], [], []
        for b in bars:
            v, t = num(b.get("value")), num(b.get("target"))
            if v is None or not t:
                continue
            labels.append(f"{short_model(b.get('model'))}\n{b.get('bar')}")
            ratio.append(v / t)
            met.append(bool(b.get("met")))
            text.append(f"{v:.3g} / {t:.3g}")
        y = np.arange(len(labels))
        ax.barh(y, ratio, color=["#2ca02c" if m else "#d62728" for m in met])
        ax.axvline(1.0, color="k", linewidth=0.8)
        for yi, r, tx in zip(y, ratio, text):
            ax.text(r, yi, f" {tx}", va="center", fontsize=7)
        ax.set_yticks(y)
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("value / target (green: met)")
        ax.set_title("the issue's bars")
        ax.set_xlim(0, max(ratio + [1.0]) * 1.35)
    title(fig, "vireo-bench model", doc, rel)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    save(fig, out + ".png", written)
    if any(r.get("kind") == "decode" and "floor_flops" not in r for rs in groups.values() for r in rs):
        notes.append("no per-kernel figures; decode results have floor_bytes but no floor_flops")


# ---------------------------------------------------------------------------------------------
# roofs for kernel charts: the vireo-bench model run on the same device nearest in time

def roof_for(device, when, folder, models):
    """(bandwidth_gbs, matmul_gflops, source path) for a kernel chart, or None.

    device ('gpu', name) or ('cpu', cores): the model run on that device nearest in time to
    `when`, within 12 hours. device None (an ncu CSV, which names no device or date): of the
    model runs in `folder`, the one with the highest measured read bandwidth (the strictest
    roof)."""
    best = None
    for path, doc in models:
        if not num(doc.get("bandwidth_gbs")):
            continue
        m = doc.get("machine") if isinstance(doc.get("machine"), dict) else {}
        if device is None:
            if os.path.dirname(path) != folder:
                continue
            key = (-doc["bandwidth_gbs"], path)
        else:
            if (m.get("gpu") != device[1]) if device[0] == "gpu" else (m.get("gpu") or m.get("cores") != device[1]):
                continue
            d = parse_date(doc.get("date"))
            if when is None or d is None or abs((d - when).total_seconds()) > 12 * 3600:
                continue
            key = (abs((d - when).total_seconds()), path)
        if best is None or key < best[0]:
            best = (key, path, doc)
    if best is None:
        return None
    return best[2]["bandwidth_gbs"], num(best[2].get("matmul_gflops")), best[1]


def bench_name(b):
    n = b.get("name", "?")
    for suffix in ("/manual_time", "/real_time"):
        n = n.replace(suffix, "")
    if b.get("label"):
        n += f" {b['label']}"
    return n


def plot_gbench(doc, rel, out, notes, written, models, rel_of):
    ctx = doc["context"]
    rows = [b for b in doc["benchmarks"] if b.get("run_type") == "aggregate" and b.get("aggregate_name") == "median"]
    if not rows:
        rows = [b for b in doc["benchmarks"] if b.get("run_type", "iteration") == "iteration"]
    bw = [(bench_name(b), b["bytes_per_second"] / 1e9) for b in rows if num(b.get("bytes_per_second"))]
    fl = []
    for b in rows:
        f = num(b.get("flops")) or num(b.get("FLOP/s"))
        by = num(b.get("bytes_per_second"))
        if f and by:
            fl.append((bench_name(b), f / by, f / 1e9))
    if not bw:
        raise Skip("no kernel reports bytes_per_second")
    gpu = ctx.get("gpu")
    device = ("gpu", gpu) if gpu else ("cpu", ctx.get("num_cpus"))
    roof = roof_for(device, parse_date(ctx.get("date")), None, models)
    machine = gpu.split("(", 1)[1].split(",")[0] if gpu and "(" in gpu else (gpu or f"{ctx.get('num_cpus')}-CPU host")
    roof_text = (f"roof from {rel_of(roof[2])}" if roof else
                 "no roof: no vireo-bench model run on this device within 12 h of this run")
    if not roof:
        notes.append("no roof: the kernel JSON records no bandwidth / GEMM rate and no model run is near")
    # bandwidth bars
    h = max(4.0, 0.17 * len(bw) + 1.8)
    fig, ax = plt.subplots(figsize=(10, h))
    y = np.arange(len(bw))
    fam = {}
    for n, _ in bw:
        fam.setdefault(n.split("/")[0].split(" ")[0], COLORS[len(fam) % len(COLORS)])
    ax.barh(y, [v for _, v in bw], color=[fam[n.split("/")[0].split(" ")[0]] for n, _ in bw])
    for yi, (_, v) in zip(y, bw):
        ax.text(v, yi, f" {v:,.0f}" if v >= 10 else f" {v:.2f}", va="center", fontsize=6)
    if roof:
        ax.axvline(roof[0], color=COLORS[1], linestyle="--", label=f"read bandwidth {roof[0]:,.0f} GB/s")
        ax.legend(loc="lower right")
    ax.set_yticks(y)
    ax.set_yticklabels([n for n, _ in bw], fontsize=6)
    ax.set_ylim(len(bw) - 0.5, -0.5)
    ax.set_xlabel("GB/s (bytes the op has to move / time)")
    ax.set_title(roof_text, fontsize=8)
    title(fig, "kernel benchmarks", doc, rel, machine=machine, date=ctx.get("date"), commit=ctx.get("vireo_commit", ""))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / h))
    save(fig, out + "-bandwidth.png", written)
    if not fl:
        notes.append("no kernel reports FLOPs: no roofline scatter")
        return
    fig, ax = plt.subplots(figsize=(10, 6.5))
    fams = {}
    for n, ai, g in fl:
        fams.setdefault(n.split("/")[0], []).append((n, ai, g))
    markers = "osD^v<>ph*"
    for i, (fam, pts) in enumerate(fams.items()):
        ax.scatter([p[1] for p in pts], [p[2] for p in pts], label=fam, color=COLORS[i % len(COLORS)],
                   marker=markers[i % len(markers)], s=22, zorder=3)
        for n, ai, g in pts:
            ax.annotate(n.split("/", 1)[1] if "/" in n else n, (ai, g), textcoords="offset points",
                        xytext=(3, 2), fontsize=5, color="0.3")
    ax.set_xscale("log")
    ax.set_yscale("log")
    lo = min(p[1] for p in fl) / 2
    hi = max(p[1] for p in fl) * 2
    if roof:
        peak = roof[1]
        if peak:
            hi = max(hi, 2 * peak / roof[0])
        xs = np.logspace(math.log10(lo), math.log10(hi), 200)
        ys = xs * roof[0]
        if peak:
            ys = np.minimum(ys, peak)
        ax.plot(xs, ys, color="k", linewidth=1, label=f"roof: {roof[0]:,.0f} GB/s" + (f", {flops_text(peak)}" if peak else " (GEMM rate not measured)"))
    ax.set_xlim(lo, hi)
    ax.set_xlabel("arithmetic intensity (FLOP / byte moved)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title(roof_text, fontsize=8)
    ax.legend(loc="upper left", fontsize=7)
    title(fig, "kernel roofline", doc, rel, machine=machine, date=ctx.get("date"), commit=ctx.get("vireo_commit", ""))
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    save(fig, out + "-roofline.png", written)


# ---------------------------------------------------------------------------------------------
# Nsight Compute CSV: per-kernel DRAM rate (scripts/ncu-summary.py reads the CSV)

def ncu_module():
    spec = importlib.util.spec_from_file_location("ncu_summary", os.path.join(HERE, "ncu-summary.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def plot_ncu(path, rel, out, notes, written, models, rel_of, top=16):
    ncu = ncu_module()
    if path.endswith(".gz"):
        import tempfile
        with gzip.open(path, "rb") as f, tempfile.NamedTemporaryFile("wb", suffix=".csv", delete=False) as t:
            t.write(f.read())
            tmp = t.name
        try:
            kernels = ncu.read_kernels(tmp)
        finally:
            os.unlink(tmp)
    else:
        kernels = ncu.read_kernels(path)
    if not kernels:
        raise Skip("no kernel rows in the ncu CSV")
    groups = {}
    for k in kernels.values():
        # ncu writes anonymous namespaces as 'unnamed>::', whose '>' would end short_name's
        # template scan early.
        name = k["name"].replace("unnamed>::", "")
        g = groups.setdefault((ncu.short_name(name), k["grid"]), {"n": 0, "t": 0.0, "b": 0.0})
        g["n"] += 1
        g["t"] += k.get(ncu.DURATION) or 0.0
        g["b"] += (k.get(ncu.READ) or 0.0) + (k.get(ncu.WRITE) or 0.0)
    total = sum(g["t"] for g in groups.values())
    rows = sorted(groups.items(), key=lambda kv: (-kv[1]["t"], kv[0]))[:top]
    roof = roof_for(None, None, os.path.dirname(path), models)
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 2.2))
    y = np.arange(len(rows))
    rates = [g["b"] / g["t"] / 1e9 if g["t"] > 0 else 0.0 for _, g in rows]
    ax.barh(y, rates, color=COLORS[0])
    for yi, r, (_, g) in zip(y, rates, rows):
        ax.text(r, yi, f" {r:,.0f} GB/s, {g['t'] / total:.1%} of the time, {g['n']} launches", va="center", fontsize=6)
    if roof:
        ax.axvline(roof[0], color=COLORS[1], linestyle="--", label=f"read bandwidth {roof[0]:,.0f} GB/s ({rel_of(roof[2])})")
        ax.legend(loc="center right", fontsize=7)
    else:
        notes.append("no vireo-bench model JSON in the same folder: no roof")
    ax.set_yticks(y)
    ax.set_yticklabels([f"{n if len(n) <= 72 else n[:70] + '..'} [{grid}]" for (n, grid), _ in rows], fontsize=6)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(0, max(rates + [roof[0] if roof else 0]) * 1.6)
    ax.set_xlabel("DRAM bytes read + written / kernel time (each kernel alone, caches flushed)")
    ax.set_title(f"{len(kernels)} kernels, {total * 1e3:.2f} ms in all; the {len(rows)} longest (kernel, grid) groups", fontsize=8)
    fig.suptitle(f"Nsight Compute per-kernel DRAM rate\n{rel}", fontsize=10)
    fig.tight_layout()
    save(fig, out + ".png", written)
    notes.append("the ncu CSV names neither the card, the model nor the date (see ncu-summary.txt)")


# ---------------------------------------------------------------------------------------------
# vireo-bench serve: per policy, per trace

def pct_bars(ax, policies, runs_of, key, pcts, unit_scale, ylabel, log=True):
    """Grouped bars of percentiles per policy: the mean of the repeats, a dot per repeat."""
    width = 0.8 / len(pcts)
    drawn = False
    for j, p in enumerate(pcts):
        xs, hs = [], []
        for i, pol in enumerate(policies):
            vals = [num((r.get(key) or {}).get(p)) for r in runs_of[pol]]
            vals = [v * unit_scale for v in vals if v is not None]
            if not vals:
                continue
            x = i + (j - (len(pcts) - 1) / 2) * width
            xs.append(x)
            hs.append(sum(vals) / len(vals))
            if len(vals) > 1:
                ax.scatter([x] * len(vals), vals, color="k", s=5, zorder=3)
        if xs:
            drawn = True
            ax.bar(xs, hs, width=width, label=p, color=COLORS[j % len(COLORS)])
    ax.set_xticks(range(len(policies)))
    ax.set_xticklabels(policies, rotation=20, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    if not drawn:
        ax.text(0.5, 0.5, f"no {key} recorded", ha="center", va="center", transform=ax.transAxes)
        return
    if log and all(h > 0 for b in ax.patches for h in [b.get_height()]):
        ax.set_yscale("log")
        log_axis(ax.yaxis)
    ax.legend(fontsize=7)


def safe_stem(s):
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in str(s)).strip("-") or "trace"


def plot_serve(doc, rel, out, notes, written):
    cfg = doc.get("config") or {}
    drawn = 0
    for t in doc["traces"]:
        runs = t.get("runs") or []
        if not runs:
            continue
        policies, runs_of = [], {}
        for r in runs:
            pol = r.get("policy", "?")
            if pol not in runs_of:
                policies.append(pol)
                runs_of[pol] = []
            runs_of[pol].append(r)
        fig, axes = plt.subplots(2, 2, figsize=(11, 8))
        ax = axes[0][0]
        means = []
        for i, pol in enumerate(policies):
            vals = [r["output_tokens_per_s"] for r in runs_of[pol] if num(r.get("output_tokens_per_s"))]
            m = sum(vals) / len(vals) if vals else 0.0
            means.append(m)
            ax.bar(i, m, color=COLORS[0])
            if len(vals) > 1:
                ax.scatter([i] * len(vals), vals, color="k", s=6, zorder=3)
            rps = [r["requests_per_s"] for r in runs_of[pol] if num(r.get("requests_per_s"))]
            done = [r.get("completed") for r in runs_of[pol]]
            lab = f"{m:,.0f}"
            if rps:
                lab += f"\n{sum(rps) / len(rps):.2f} req/s"
            if done and all(isinstance(d, int) for d in done):
                lab += f"\n{min(done)} done"
            ax.text(i, m, lab, ha="center", va="bottom", fontsize=6)
        ax.set_xticks(range(len(policies)))
        ax.set_xticklabels(policies, rotation=20, ha="right", fontsize=7)
        ax.set_ylabel("output tokens / s")
        ax.set_ylim(0, max(means + [1]) * 1.3)
        reps = max(len(v) for v in runs_of.values())
        ax.set_title("throughput" + (f" (bar: mean of {reps} repeats, dots: each)" if reps > 1 else ""))
        pct_bars(axes[0][1], policies, runs_of, "ttft_s", ["p50", "p95", "p99"], 1e3, "time to first token (ms)")
        axes[0][1].set_title("TTFT percentiles")
        pct_bars(axes[1][0], policies, runs_of, "itl_s", ["p50", "p95", "p99"], 1e3, "inter-token latency (ms)")
        axes[1][0].set_title("inter-token latency percentiles")
        pct_bars(axes[1][1], policies, runs_of, "e2e_s", ["p50", "p95", "p99"], 1e3, "end-to-end latency (ms)")
        axes[1][1].set_title("end-to-end latency percentiles")
        sub = t.get("description", "")
        knobs = ", ".join(f"{k} {cfg[k]}" for k in ("max_running", "static_batch_size", "max_batch_tokens", "kv_pool_tokens") if k in cfg)
        fig.text(0.5, 0.005, f"trace '{t.get('trace')}': {sub}\n{short_model(doc.get('model'))}; {knobs}",
                 ha="center", va="bottom", fontsize=7)
        title(fig, "vireo-bench serve", doc, rel)
        fig.tight_layout(rect=(0, 0.05, 1, 0.93))
        save(fig, f"{out}-{safe_stem(t.get('trace'))}.png", written)
        drawn += 1
    if not drawn:
        raise Skip("no trace has runs")
    notes.append("percentile bars only: runs carry ttft_s / itl_s / e2e_s percentiles, "
                 "no per-request latencies (no CDF) and no offered-load sweep or goodput under an SLO")


# ---------------------------------------------------------------------------------------------
# vireo-bench stress: outcomes per mode

def plot_stress(doc, rel, out, notes, written):
    modes = doc["modes"]
    keys = []
    for m in modes:
        for k in (m.get("outcomes") or {}):
            if k not in keys:
                keys.append(k)
    if not keys:
        raise Skip("no outcomes recorded")
    fig, ax = plt.subplots(figsize=(10, 2.2 + 1.1 * len(modes)))
    y = np.arange(len(modes))
    left = np.zeros(len(modes))
    totals = [sum(float(v) for v in (m.get("outcomes") or {}).values() if num(v)) for m in modes]
    for j, k in enumerate(keys):
        vals = np.array([float((m.get("outcomes") or {}).get(k, 0)) for m in modes])
        ax.barh(y, vals, left=left, color=COLORS[j % len(COLORS)], label=k, height=0.55)
        for yi, l, v, tot in zip(y, left, vals, totals):
            if v >= 0.04 * tot:  # a label only where the segment has room for it
                ax.text(l + v / 2, yi, f"{v:,.0f}", ha="center", va="center", fontsize=7, color="white")
        left += vals
    labels = []
    for m in modes:
        acct = ", ".join(f"{k} {m[k]}" for k in ("lost", "duplicated", "mismatched_complete") if k in m)
        rate = ""
        if num(m.get("offered_req_per_s")) and num(m.get("capacity_req_per_s")):
            rate = f"\n{m['offered_req_per_s']:,.0f} req/s offered, capacity {m['capacity_req_per_s']:,.0f}"
        labels.append(f"{m.get('preemption', '?')} preemption\n{acct}{rate}")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("requests")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=len(keys), frameon=False)
    ok = doc.get("passed")
    ax.set_title(f"request outcomes ({'passed' if ok else 'FAILED' if ok is False else 'pass not recorded'})")
    title(fig, "vireo-bench stress", doc, rel)
    fig.tight_layout(rect=(0, 0, 1, 0.88))
    save(fig, out + ".png", written)


# ---------------------------------------------------------------------------------------------
# aiperf load test: per phase

def plot_aiperf(doc, rel, out, notes, written):
    phases = doc["phases"]
    names = [f"{p.get('phase', '?')}\n" + textwrap.fill(str(p.get('load', '')), 16) for p in phases]

    def avg(p, k):
        v = p.get(k)
        return num(v.get("avg")) if isinstance(v, dict) else None

    fig, axes = plt.subplots(1, 3, figsize=(14, 5))
    ax = axes[0]
    x = np.arange(len(phases))
    for j, (k, lab) in enumerate((("request_throughput", "completed"), ("goodput", "within the SLO (goodput)"))):
        vals = [avg(p, k) or 0.0 for p in phases]
        ax.bar(x + (j - 0.5) * 0.38, vals, width=0.38, label=lab, color=COLORS[j])
        for xi, v in zip(x, vals):
            ax.text(xi + (j - 0.5) * 0.38, v, f"{v:.2f}", ha="center", va="bottom", fontsize=6)
    ax.set_xticks(x)
    ax.set_xticklabels(names, fontsize=7)
    ax.set_ylabel("requests / s")
    ax.set_title("throughput and goodput per load")
    ax.legend(fontsize=7)
    for ax, key, lab in ((axes[1], "time_to_first_token", "time to first token"),
                         (axes[2], "inter_token_latency", "inter-token latency")):
        pcts = [p for p in ("p50", "p90", "p99") if any(isinstance(ph.get(key), dict) and p in ph[key] for ph in phases)]
        unit = next((ph[key].get("unit") for ph in phases if isinstance(ph.get(key), dict)), "")
        for j, pc in enumerate(pcts):
            vals = [num((ph.get(key) or {}).get(pc)) or 0.0 for ph in phases]
            ax.bar(x + (j - (len(pcts) - 1) / 2) * 0.26, vals, width=0.26, label=pc, color=COLORS[j])
        ax.set_xticks(x)
        ax.set_xticklabels(names, fontsize=7)
        ax.set_ylabel(f"{lab} ({unit})")
        ax.set_title(f"{lab} percentiles")
        if not pcts:
            ax.text(0.5, 0.5, f"no {key} recorded", ha="center", va="center", transform=ax.transAxes)
            continue
        if all(b.get_height() > 0 for b in ax.patches):
            ax.set_yscale("log")
            log_axis(ax.yaxis)
        ax.legend(fontsize=7)
    fig.text(0.5, 0.005, f"{doc.get('workload', '')}; goodput SLO: {doc.get('goodput_slo', 'not recorded')}; "
             f"aiperf {doc.get('aiperf_version', '?')}", ha="center", va="bottom", fontsize=7)
    title(fig, "aiperf against vireo-server", doc, rel)
    fig.tight_layout(rect=(0, 0.04, 1, 0.9))
    save(fig, out + ".png", written)
    notes.append("phases are named loads (concurrency / rate strings), not a numeric offered-load sweep")


# ---------------------------------------------------------------------------------------------
# vireo-bench spec, quantize, peer, Medusa training: small bar charts

def plot_spec(doc, rel, out, notes, written):
    tasks = doc["tasks"]
    methods = []
    for t in tasks:
        for l in t.get("lookup") or []:
            m = f"lookup k={l.get('k')}"
            if m not in methods:
                methods.append(m)
        if isinstance(t.get("medusa"), dict) and "medusa" not in methods:
            methods.append("medusa")
    if not methods:
        raise Skip("no speculative method measured")
    fig, ax = plt.subplots(figsize=(9, 5))
    x = np.arange(len(tasks))
    w = 0.8 / len(methods)
    for j, m in enumerate(methods):
        xs, hs, ann = [], [], []
        for i, t in enumerate(tasks):
            if m == "medusa":
                r = t.get("medusa")
                extra = f"{r.get('tokens_per_forward', 0):.2f} tok/fwd" if r else ""
            else:
                r = next((l for l in t.get("lookup") or [] if f"lookup k={l.get('k')}" == m), None)
                extra = f"acc {r.get('acceptance', 0):.2f}" if r else ""
            if not r or not num(r.get("speedup")):
                continue
            xs.append(i + (j - (len(methods) - 1) / 2) * w)
            hs.append(r["speedup"])
            ann.append(f"{r['speedup']:.2f}x\n{extra}" + ("" if r.get("identical", True) else "\nDIFFERS"))
        ax.bar(xs, hs, width=w, label=m, color=COLORS[j % len(COLORS)])
        for xx, hh, a in zip(xs, hs, ann):
            ax.text(xx, hh, a, ha="center", va="bottom", fontsize=6)
    ax.axhline(1.0, color="k", linewidth=0.8)
    plain = [f"{t.get('task')}: {t['plain']['ms_per_token']:.2f}" for t in tasks if isinstance(t.get("plain"), dict) and num(t["plain"].get("ms_per_token"))]
    ax.set_xticks(x)
    ax.set_xticklabels([f"{t.get('task')} ({t.get('prompt_tokens')} prompt tokens)" for t in tasks])
    ax.set_ylabel("speed-up over plain greedy decoding")
    ax.set_ylim(0, max([1.0] + [t2 for t2 in ax.get_ylim()]) * 1.15)
    ax.set_title(f"plain ms/token: {', '.join(plain)}; floor {doc.get('floor_ms_per_token', '?')} ms/token", fontsize=8)
    ax.legend(fontsize=7)
    title(fig, f"vireo-bench spec ({short_model(doc.get('model'))})", doc, rel)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    save(fig, out + ".png", written)


def plot_quantize(doc, rel, out, notes, written):
    runs = doc["runs"]
    types = list(runs)
    methods = []
    for t in types:
        for m in runs[t]:
            if m not in methods:
                methods.append(m)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.8))
    x = np.arange(len(types))
    w = 0.8 / max(1, len(methods))
    for ax, key, err, lab in ((axes[0], "ppl", None, "perplexity (lower is better)"),
                              (axes[1], "kl", "kl_stderr", "KL divergence from the reference"),
                              (axes[2], "top1_agreement", None, "top-1 agreement with the reference")):
        for j, m in enumerate(methods):
            xs, hs, es = [], [], []
            for i, t in enumerate(types):
                r = runs[t].get(m) or {}
                if num(r.get(key)) is None:
                    continue
                xs.append(i + (j - (len(methods) - 1) / 2) * w)
                hs.append(r[key])
                es.append(num(r.get(err)) or 0.0 if err else 0.0)
            ax.bar(xs, hs, width=w, yerr=es if err else None, capsize=2, label=m, color=COLORS[j % len(COLORS)])
            for xx, hh, ee in zip(xs, hs, es):
                ax.text(xx, hh + ee, f"{hh:.3g}", ha="center", va="bottom", fontsize=6)
        ax.set_xticks(x)
        ax.set_xticklabels(types)
        ax.set_title(lab)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.2)
        ax.legend(fontsize=7, ncol=len(methods), loc="upper center")
    ref = doc.get("reference") or {}
    if num(ref.get("ppl")):
        axes[0].axhline(ref["ppl"], color="k", linestyle="--", linewidth=0.8)
        axes[0].text(-0.45, ref["ppl"], f"reference {ref['ppl']:.2f}", va="top", fontsize=7,
                     bbox=dict(fc="white", ec="none", pad=1))
    ev = doc.get("eval") or {}
    fig.text(0.5, 0.005, f"reference: {ref.get('file', '?')}; eval: {ev.get('scored', '?')} scored tokens at ctx {ev.get('ctx', '?')}",
             ha="center", va="bottom", fontsize=7)
    title(fig, "quantization: held-out perplexity", doc, rel)
    fig.tight_layout(rect=(0, 0.04, 1, 0.9))
    save(fig, out + ".png", written)


def plot_peer(doc, rel, out, notes, written):
    runs = doc["runs"]
    files = [short_model(r.get("model")) for r in runs]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    x = np.arange(len(runs))
    for ax, series, lab in (
            (axes[0], [("llama.cpp pp512", "llama_cpp", "pp512_tokens_per_s", "pp512_stddev"),
                       ("vireo prefill 512", "vireo", "prefill_512_tokens_per_s", None)], "prefill, 512-token prompt"),
            (axes[1], [("llama.cpp tg128", "llama_cpp", "tg128_tokens_per_s", "tg128_stddev"),
                       ("vireo decode (fp32 activations)", "vireo", "decode_b1_ctx64_tokens_per_s", None),
                       ("vireo decode (q8 activations)", "vireo", "decode_b1_ctx64_q8_activations_tokens_per_s", None)],
             "decode, batch 1")):
        w = 0.8 / len(series)
        for j, (name, tool, key, sd) in enumerate(series):
            hs = [num((r.get(tool) or {}).get(key)) or 0.0 for r in runs]
            es = [num((r.get(tool) or {}).get(sd)) or 0.0 for r in runs] if sd else None
            xs = x + (j - (len(series) - 1) / 2) * w
            ax.bar(xs, hs, width=w, yerr=es, capsize=2, label=name, color=COLORS[j])
            for xx, hh in zip(xs, hs):
                ax.text(xx, hh, f"{hh:.0f}", ha="center", va="bottom", fontsize=6)
        ax.set_xticks(x)
        ax.set_xticklabels(files, fontsize=7, rotation=10)
        ax.set_ylabel("tokens / s")
        ax.set_title(lab)
        ax.legend(fontsize=7)
    lc = doc.get("llama_cpp") or {}
    title(fig, f"vireo against llama.cpp {lc.get('build_commit', '')} ({doc.get('threads', '?')} threads)",
          doc, rel, commit=doc.get("vireo_commit"))
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    save(fig, out + ".png", written)
    notes.append("one run per tool: the JSON holds the last run, not the spread")


def plot_medusa(doc, rel, out, notes, written):
    acc = doc["acceptance_on_heldout"]
    modes = [m for m in acc if isinstance(acc[m], dict) and isinstance(acc[m].get("top1_per_head"), list)]
    if not modes:
        raise Skip("no top1_per_head recorded")
    heads = max(len(acc[m]["top1_per_head"]) for m in modes)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, key, lab in ((axes[0], "top1_per_head", "top-1 acceptance per head"),
                         (axes[1], "chain_all_right_per_depth", "whole chain right, per depth")):
        w = 0.8 / len(modes)
        for j, m in enumerate(modes):
            vals = acc[m].get(key) or []
            xs = np.arange(len(vals)) + (j - (len(modes) - 1) / 2) * w
            ax.bar(xs, vals, width=w, color=COLORS[j % len(COLORS)],
                   label=f"{m} (mean accepted {acc[m].get('mean_accepted_length', float('nan')):.3f})")
        ax.set_xticks(range(heads))
        ax.set_xticklabels([f"head {i + 1}" for i in range(heads)])
        ax.set_ylabel("fraction of held-out positions")
        ax.set_title(lab)
        ax.legend(fontsize=7)
    pos = next((acc[m].get("positions") for m in modes if acc[m].get("positions")), "?")
    fig.text(0.5, 0.005, f"{pos} held-out positions; best mode: {doc.get('best_mode', '?')}", ha="center", va="bottom", fontsize=7)
    title(fig, "Medusa heads trained by distillation", doc, rel)
    fig.tight_layout(rect=(0, 0.04, 1, 0.9))
    save(fig, out + ".png", written)


# ---------------------------------------------------------------------------------------------

def scan(paths, archive):
    found = []
    for p in paths:
        if os.path.isfile(p):
            found.append((os.path.dirname(os.path.abspath(p)), os.path.abspath(p)))
            continue
        base = os.path.abspath(p)
        for d, dirs, files in os.walk(base):
            dirs[:] = sorted(x for x in dirs if archive or not (x == "archive" and os.path.abspath(d) == base))
            for f in sorted(files):
                if f.endswith(".json") or is_ncu_csv(f):
                    found.append((base, os.path.join(d, f)))
    return found


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*")
    ap.add_argument("--archive", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args(argv)
    paths = a.paths or [os.path.join(ROOT, "bench", "results")]
    for p in paths:
        if not os.path.exists(p):
            sys.stderr.write(f"plot-results: {p}: no such file or folder\n")
            return 2
    plt.rcdefaults()
    plt.rcParams.update(STYLE)
    files = scan(paths, a.archive)
    # Model runs give the kernel charts their roofs: those scanned, those beside the files
    # named, and those under bench/results.
    pool = set(p for _, p in files)
    pool.update(p for _, p in scan(sorted({os.path.dirname(p) for p in pool}), a.archive))
    default = os.path.join(ROOT, "bench", "results")
    if os.path.isdir(default):
        pool.update(p for _, p in scan([default], a.archive))
    docs, models = {}, []
    for path in sorted(pool):
        if path.endswith(".json"):
            try:
                docs[path] = load_json(path)
                if kind_of(docs[path]) == "model":
                    models.append((path, docs[path]))
            except Skip:
                pass

    def rel_of(p):
        return os.path.relpath(p, ROOT) if p.startswith(ROOT + os.sep) else p

    failed = drawn = skipped = 0
    for base, path in files:
        rel = rel_of(path)
        stem = path[:-len(".csv.gz")] if path.endswith(".csv.gz") else os.path.splitext(path)[0]
        out = os.path.join(os.path.abspath(a.out), os.path.relpath(stem, base)) if a.out else stem
        notes, written = [], []
        try:
            if is_ncu_csv(path):
                kind = "ncu"
            else:
                doc = docs[path] if path in docs else load_json(path)
                kind = kind_of(doc)
            if a.list:
                print(f"{kind:9} {rel}")
                continue
            if kind == "ncu":
                plot_ncu(path, rel, out, notes, written, models, rel_of)
            elif kind == "model":
                plot_model(doc, rel, out, notes, written)
            elif kind == "gbench":
                plot_gbench(doc, rel, out, notes, written, models, rel_of)
            else:
                {"serve": plot_serve, "stress": plot_stress, "aiperf": plot_aiperf, "spec": plot_spec,
                 "quantize": plot_quantize, "peer": plot_peer, "medusa": plot_medusa}[kind](doc, rel, out, notes, written)
            drawn += 1
            print(f"drew    {rel} ({kind}) -> {', '.join(os.path.basename(w) for w in written)}")
            for n in notes:
                print(f"          note: {n}")
        except Skip as s:
            skipped += 1
            print(f"skipped {rel}: {s}")
        except Exception:  # a chart that fails is a bug in this script: say so and go on
            plt.close("all")
            failed += 1
            print(f"FAILED  {rel}:\n" + "".join("          " + l for l in traceback.format_exc().splitlines(True)))
    if not a.list:
        print(f"plot-results: {drawn} drawn, {skipped} skipped, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends the listing quietly
    sys.exit(main(sys.argv[1:]))
