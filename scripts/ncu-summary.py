#!/usr/bin/env python3
"""Summarize an Nsight Compute CSV (ncu --csv --print-units base --metrics ...) per kernel.

Used by scripts/gpu-check.sh --ncu on the lent GPU: ncu profiles each kernel of a few 8B
decode steps alone (serialized, caches flushed before each), and this prints one line per
(kernel, grid): launches, mean duration, DRAM bytes read / written per launch and the DRAM
rate those give, sorted by total time. The rate against the card's measured copy / read
bandwidth says which kernel is short of the floor, and by how much, without the overlap
that programmatic dependent launch gives in a real step.

Reads ncu's "details" page (one row per kernel and metric: ID, Kernel Name, Grid Size,
Metric Name, Metric Unit, Metric Value) or its "raw" page (one row per kernel, a column
per metric, the second row giving units). Python 3 standard library only.

usage: ncu-summary.py NCU_CSV [--top N]
"""
import csv
import re
import sys
from collections import OrderedDict

SCALE = {
    "": 1.0, "byte": 1.0, "kbyte": 1e3, "mbyte": 1e6, "gbyte": 1e9,
    "nsecond": 1e-9, "usecond": 1e-6, "msecond": 1e-3, "second": 1.0, "ns": 1e-9, "us": 1e-6, "ms": 1e-3,
}
DURATION = "gpu__time_duration.sum"
READ = "dram__bytes_read.sum"
WRITE = "dram__bytes_write.sum"


def number(value, unit):
    v = value.replace(",", "").strip()
    try:
        x = float(v)
    except ValueError:
        return None
    return x * SCALE.get(unit.strip().lower(), 1.0)


def short_name(name):
    """'void ns::(anonymous namespace)::gemv_mma_kernel<T, ...>(args)' -> 'gemv_mma_kernel<T, ...>'."""
    n = name.strip()
    if n.startswith("void "):
        n = n[5:]
    depth, cut = 0, len(n)
    for i, ch in enumerate(n):  # the argument list starts at the first '(' outside <...>
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0 and not n.startswith("(anonymous", i):
            cut = i
            break
    n = n[:cut]
    n = re.sub(r"\(anonymous namespace\)::", "", n)
    n = re.sub(r"\bvireo::cuda::", "", n)
    return n


def read_kernels(path):
    """{kernel id: {'name', 'grid', metric: value in base units}} in file order."""
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]  # ncu's own ==PROF== lines are not CSV
    rows = list(csv.reader(lines))
    if not rows:
        return OrderedDict()
    head = rows[0]
    col = {h: i for i, h in enumerate(head)}
    kernels = OrderedDict()
    if "Metric Name" in col:  # details page
        for r in rows[1:]:
            if len(r) < len(head):
                continue
            k = kernels.setdefault(r[col["ID"]], {"name": r[col["Kernel Name"]], "grid": r[col.get("Grid Size", 0)]})
            k[r[col["Metric Name"]]] = number(r[col["Metric Value"]], r[col.get("Metric Unit", 0)] if "Metric Unit" in col else "")
    else:  # raw page: the second row holds units
        units = rows[1] if len(rows) > 1 else [""] * len(head)
        for r in rows[2:]:
            if len(r) < len(head):
                continue
            k = {"name": r[col["Kernel Name"]], "grid": r[col["Grid Size"]] if "Grid Size" in col else ""}
            for m in (DURATION, READ, WRITE):
                if m in col:
                    k[m] = number(r[col[m]], units[col[m]])
            kernels[r[col["ID"]]] = k
    return kernels


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    top = int(argv[argv.index("--top") + 1]) if "--top" in argv else 40
    kernels = read_kernels(argv[1])
    if not kernels:
        print(f"ncu-summary: no kernel rows in {argv[1]}")
        return 1
    groups = OrderedDict()
    for k in kernels.values():
        g = groups.setdefault((short_name(k["name"]), k["grid"]), {"n": 0, "t": 0.0, "r": 0.0, "w": 0.0})
        g["n"] += 1
        g["t"] += k.get(DURATION) or 0.0
        g["r"] += k.get(READ) or 0.0
        g["w"] += k.get(WRITE) or 0.0
    total = sum(g["t"] for g in groups.values())
    print(f"ncu: {len(kernels)} kernels, {total * 1e3:.3f} ms in all (each alone, caches flushed)")
    print(f"{'launches':>8} {'mean us':>9} {'MB read':>9} {'MB wrt':>8} {'GB/s':>7} {'share':>6}  kernel [grid]")
    for (name, grid), g in sorted(groups.items(), key=lambda kv: -kv[1]["t"])[:top]:
        n, t = g["n"], g["t"] / g["n"]
        r, w = g["r"] / n, g["w"] / n
        rate = (r + w) / t / 1e9 if t > 0 else 0.0
        print(f"{n:>8} {t * 1e6:>9.2f} {r / 1e6:>9.2f} {w / 1e6:>8.2f} {rate:>7.0f} {g['t'] / total:>6.1%}  {name} [{grid}]")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
