#!/usr/bin/env bash
# Held-out perplexity of SmolLM2-135M-Instruct quantized by RTN, GPTQ and AWQ at Q4_0, Q4_1,
# Q4_K and Q3_K, against the fp32 reference (the shipped Q4_1 file dequantized to F32: its
# weights are real trained weights). Texts from scripts/eval-corpus.sh (docutils, public
# domain): GPTQ / AWQ calibrate on calibration.txt, perplexity on evaluation.txt.
#
#   scripts/quantize-eval.sh [--build DIR] [--ctx 256] [--chunks 16] [--calib-tokens 4096] [--json FILE]
#
# Writes a JSON (default bench/results/cpu-DATE-quantize-smollm2.json) with every file's
# perplexity, KL divergence from the reference and top-1 agreement, and, per type, how much
# of RTN's perplexity increase GPTQ and AWQ remove.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build; ctx=256; chunks=16; calib_tokens=4096
out="bench/results/cpu-$(date -u +%Y-%m-%d)-quantize-smollm2.json"
types="Q4_0 Q4_1 Q4_K Q3_K"
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --ctx) ctx="$2"; shift 2 ;;
    --chunks) chunks="$2"; shift 2 ;;
    --calib-tokens) calib_tokens="$2"; shift 2 ;;
    --types) types="$2"; shift 2 ;;
    --json) out="$2"; shift 2 ;;
    *) echo "usage: scripts/quantize-eval.sh [--build DIR] [--ctx N] [--chunks N] [--calib-tokens N] [--types 'Q4_0 ...'] [--json FILE]" >&2; exit 2 ;;
  esac
done
scripts/fetch-model.sh
mapfile -t corpus < <(scripts/eval-corpus.sh 2>/dev/null)
calib="${corpus[0]}"; eval="${corpus[1]}"
q="$build/tools/vireo-quantize"; ppl="$build/tools/vireo-perplexity"
work=build-quantize-eval; mkdir -p "$work"
ref="$work/smollm2-f32.gguf"
[ -f "$ref" ] || "$q" models/SmolLM2-135M-Instruct.Q4_1.gguf "$ref" F32
"$ppl" -m "$ref" -f "$eval" --ctx "$ctx" --chunks "$chunks" --save-logits "$work/ref.lp" --json "$work/ref.json" >/dev/null
for t in $types; do
  for m in rtn gptq awq; do
    f="$work/smollm2-$t-$m.gguf"
    start=$(date +%s)
    if [ "$m" = rtn ]; then "$q" "$ref" "$f" "$t" 2>/dev/null
    else "$q" "$ref" "$f" "$t" --method "$m" --calib "$calib" --calib-tokens "$calib_tokens" --calib-ctx "$ctx" 2>"$work/$t-$m.log"; fi
    echo "{\"quantize_seconds\": $(( $(date +%s) - start ))}" > "$work/$t-$m.qtime.json"
    "$ppl" -m "$f" -f "$eval" --ctx "$ctx" --chunks "$chunks" --kl-base "$work/ref.lp" --json "$work/$t-$m.json" >/dev/null
    echo "quantize-eval: $t $m: $(python3 -c "import json;print(round(json.load(open('$work/$t-$m.json'))['ppl'],4))")"
  done
done
python3 - "$work" "$out" "$ctx" "$chunks" "$calib_tokens" "$types" <<'PY'
import json, sys, datetime, subprocess, platform
work, out, ctx, chunks, calib_tokens, types = sys.argv[1:7]
ref = json.load(open(f"{work}/ref.json"))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
res = {"benchmark": "held-out perplexity of SmolLM2-135M-Instruct quantized by RTN / GPTQ / AWQ (vireo-quantize, vireo-perplexity)",
       "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
       "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
       "machine": f"{cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores",
       "reference": {"file": "SmolLM2-135M-Instruct.Q4_1.gguf dequantized to F32", "ppl": ref["ppl"], "nll_stderr": ref["nll_stderr"]},
       "eval": {"text": "scripts/eval-corpus.sh evaluation.txt (docutils 0.21.2, public domain)", "ctx": int(ctx), "chunks": int(chunks), "scored": ref["scored"]},
       "calibration": {"text": "scripts/eval-corpus.sh calibration.txt", "tokens": int(calib_tokens), "ctx": int(ctx)},
       "notes": "token_embd (tied LM head) Q8_0 in every file; K-quant targets fall back on SmolLM2's 576-wide rows "
                "(Q4_K -> Q5_0, Q3_K -> IQ4_NL) and keep the K-quant for the 1536-wide ffn_down rows. GPTQ: damp 0.01, "
                "no act order, Hessians from the fp32 model's activations (not sequential). AWQ: scales on q/k/v, gate/up, down.",
       "runs": {}}
for t in types.split():
    r = {}
    for m in ("rtn", "gptq", "awq"):
        j = json.load(open(f"{work}/{t}-{m}.json"))
        j.update(json.load(open(f"{work}/{t}-{m}.qtime.json")))
        r[m] = {k: j[k] for k in ("ppl", "nll", "kl", "kl_stderr", "top1_agreement", "quantize_seconds")}
    inc = r["rtn"]["ppl"] - ref["ppl"]
    for m in ("gptq", "awq"):
        r[m]["cut_of_rtn_increase"] = (inc - (r[m]["ppl"] - ref["ppl"])) / inc if inc > 0 else None
    res["runs"][t] = r
json.dump(res, open(out, "w"), indent=2)
print(f"reference ppl {ref['ppl']:.4f}")
for t, r in res["runs"].items():
    print(t, " ".join(f"{m} {r[m]['ppl']:.4f} (KL {r[m]['kl']:.4f})" for m in ("rtn", "gptq", "awq")),
          f"cut: gptq {r['gptq']['cut_of_rtn_increase']:.2f} awq {r['awq']['cut_of_rtn_increase']:.2f}")
print(f"quantize-eval: {out}")
PY
