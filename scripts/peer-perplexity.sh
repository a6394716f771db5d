#!/usr/bin/env bash
# llama.cpp's perplexity tool against vireo's on the same GGUF files and the same text:
# checks that files written by vireo-quantize load in llama.cpp and that both tools agree.
#
#   scripts/peer-perplexity.sh [--build DIR] [--ctx 256] [--chunks 16] [--threads N] [--json FILE] [FILE.gguf ...]
#
# Files: those given, else the shipped SmolLM2 Q4_1 file and every vireo-quantized file
# scripts/quantize-eval.sh left in build-quantize-eval/. Text: evaluation.txt of
# scripts/eval-corpus.sh. llama.cpp comes from the same pinned source as
# scripts/peer-llamacpp.sh (the llama-cpp-python 0.3.16 sdist, vendor/llama.cpp, built under
# build-peer/; the llama-perplexity target). Both tools use the same windows: --ctx tokens,
# disjoint, the first --chunks of them, the second half of each scored; SmolLM2's vocabulary
# adds no BOS, so neither replaces the first token. What differs: llama.cpp keeps the KV
# cache in f16 and multiplies quantized weights with 8-bit quantized activations; vireo's
# CPU reference computes in fp32.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build; ctx=256; chunks=16; threads=$(nproc)
out="bench/results/cpu-$(date -u +%Y-%m-%d)-peer-perplexity-smollm2.json"
files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --ctx) ctx="$2"; shift 2 ;;
    --chunks) chunks="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --json) out="$2"; shift 2 ;;
    -*) echo "usage: scripts/peer-perplexity.sh [--build DIR] [--ctx N] [--chunks N] [--threads N] [--json FILE] [FILE ...]" >&2; exit 2 ;;
    *) files+=("$1"); shift ;;
  esac
done
scripts/fetch-model.sh
mapfile -t corpus < <(scripts/eval-corpus.sh 2>/dev/null)
eval="${corpus[1]}"
if [ ${#files[@]} -eq 0 ]; then
  files=(models/SmolLM2-135M-Instruct.Q4_1.gguf)
  for f in build-quantize-eval/smollm2-*.gguf; do [ -f "$f" ] && files+=("$f"); done
fi

LCP_VERSION=0.3.16
LCP_SHA=34ed0f9bd9431af045bb63d9324ae620ad0536653740e9bb163a2e1fcb973be6
peer=build-peer
src="$peer/llama_cpp_python-$LCP_VERSION/vendor/llama.cpp"
bin="$peer/build/bin/llama-perplexity"
if [ ! -x "$bin" ]; then
  mkdir -p "$peer"
  tarball="$peer/llama_cpp_python-$LCP_VERSION.tar.gz"
  if ! echo "$LCP_SHA  $tarball" | sha256sum -c --status 2>/dev/null; then
    python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$peer" "llama-cpp-python==$LCP_VERSION"
    echo "$LCP_SHA  $tarball" | sha256sum -c --status || { echo "peer-perplexity: sdist hash mismatch" >&2; exit 1; }
  fi
  [ -d "$src" ] || tar -xzf "$tarball" -C "$peer"
  [ -f "$peer/build/CMakeCache.txt" ] || cmake -S "$src" -B "$peer/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >/dev/null
  cmake --build "$peer/build" -j"$(nproc)" --target llama-perplexity >/dev/null
fi

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=0
for f in "${files[@]}"; do
  "$build/tools/vireo-perplexity" -m "$f" -f "$eval" --ctx "$ctx" --chunks "$chunks" --threads "$threads" \
    --json "$tmp/vireo-$n.json" >/dev/null 2>&1
  "$bin" -m "$f" -f "$eval" -c "$ctx" -b "$ctx" --chunks "$chunks" -t "$threads" > "$tmp/llama-$n.log" 2>&1 ||
    { tail -20 "$tmp/llama-$n.log" >&2; echo "peer-perplexity: llama-perplexity failed on $f" >&2; exit 1; }
  echo "$f" > "$tmp/file-$n"
  n=$((n + 1))
done
python3 - "$tmp" "$n" "$out" "$ctx" "$chunks" "$LCP_VERSION" <<'PY'
import json, re, sys, datetime, subprocess, platform
tmp, n, out, ctx, chunks, ver = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
rows = []
for i in range(n):
    v = json.load(open(f"{tmp}/vireo-{i}.json"))
    log = open(f"{tmp}/llama-{i}.log").read()
    m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", log)
    if not m:
        sys.exit(f"peer-perplexity: no final estimate in llama-perplexity's output for {open(f'{tmp}/file-{i}').read().strip()}")
    lp = float(m.group(1))
    rows.append({"file": open(f"{tmp}/file-{i}").read().strip(), "vireo_ppl": v["ppl"], "llama_cpp_ppl": lp,
                 "llama_cpp_ppl_stderr": float(m.group(2)), "vireo_over_llama_cpp": v["ppl"] / lp, "scored": v["scored"]})
res = {"benchmark": "perplexity: vireo-perplexity vs llama.cpp llama-perplexity, same files, same text, same windows",
       "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
       "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
       "machine": cpu, "ctx": int(ctx), "chunks": int(chunks),
       "llama_cpp": f"llama-cpp-python {ver} sdist (vendor/llama.cpp), llama-perplexity, f16 KV cache",
       "runs": rows}
json.dump(res, open(out, "w"), indent=2)
print(f"{'file':60}{'vireo':>10}{'llama.cpp':>11}{'ratio':>9}")
for r in rows:
    print(f"{r['file']:60}{r['vireo_ppl']:10.4f}{r['llama_cpp_ppl']:11.4f}{r['vireo_over_llama_cpp']:9.4f}")
worst = max(abs(r["vireo_over_llama_cpp"] - 1) for r in rows)
print(f"peer-perplexity: largest difference {100 * worst:.2f}% ({out})")
PY
