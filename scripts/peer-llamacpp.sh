#!/usr/bin/env bash
# The same work through a peer: llama.cpp's own llama-bench against vireo-bench on the real
# SmolLM2-135M-Instruct Q4_1 file, on this machine's CPU, same thread count.
#
#   scripts/peer-llamacpp.sh [--threads N] [--json FILE]
#
# llama.cpp is not vendored: its sources come from the PyPI sdist of llama-cpp-python (a pinned
# version and hash; the sdist carries llama.cpp in vendor/llama.cpp), unpacked and built under
# build-peer/ (git-ignored; the llama-bench and llama-quantize targets, -DGGML_NATIVE=ON: on
# this project's 2-core AMD EPYC (Zen 4) VM llama.cpp gets AVX-512 and VNNI, vireo AVX2; a few
# minutes on 2 cores the first time).
#
# Three files: the shipped Q4_1 GGUF, and Q4_0 and Q4_K_M copies made from it by
# llama-quantize (--allow-requantize; build-peer/, the same files for both tools): Q4_0 is
# the format llama.cpp's x86 CPU kernels optimise most (repacked weights), Q4_K_M the most
# common download (Q4_K / Q6_K, with Q5_0 where SmolLM2's 576-wide rows rule out K-quants).
#
# The workloads, chosen to be the same work:
#   prefill   llama-bench pp512: one 512-token prompt from an empty cache, tokens / s;
#             vireo-bench --prefill 512 (one forward of 512 tokens, best of the repeats).
#   decode    llama-bench tg128: 128 tokens one at a time from an empty cache (positions
#             0..127), tokens / s; vireo-bench --batch 1 --decode-steps 128 at --context 64,
#             the mean position of tg128, with fp32 activations (the reference) and with
#             --cpu-activations q8 (ModelOptions::cpu_quantize_activations).
# Both compute the logits of every decoded token. What differs, and is reported, not hidden:
# llama.cpp quantizes the activations to 8 bits and uses integer dot products (AVX-512 VNNI
# where the CPU has it); vireo's CPU reference keeps fp32 activations (its numerics are the
# golden path), its q8 option uses AVX2 integer dots.
#
# Writes a JSON (default bench/results/cpu-DATE-peer-llamacpp.json) with both tools' numbers,
# the ratios, the machine and both versions, and prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."

threads=$(nproc)
out="bench/results/cpu-$(date -u +%Y-%m-%d)-peer-llamacpp.json"
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --json) out="$2"; shift 2 ;;
    *) echo "usage: scripts/peer-llamacpp.sh [--threads N] [--json FILE]" >&2; exit 2 ;;
  esac
done

LCP_VERSION=0.3.16
LCP_SHA=34ed0f9bd9431af045bb63d9324ae620ad0536653740e9bb163a2e1fcb973be6
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
peer=build-peer

scripts/setup.sh
scripts/fetch-model.sh
scripts/build.sh >/dev/null

# ---- llama.cpp from the llama-cpp-python sdist ------------------------------------------------
src="$peer/llama_cpp_python-$LCP_VERSION/vendor/llama.cpp"
bench_bin="$peer/build/bin/llama-bench"
if [ ! -x "$bench_bin" ] || [ ! -x "$peer/build/bin/llama-quantize" ]; then
  mkdir -p "$peer"
  tarball="$peer/llama_cpp_python-$LCP_VERSION.tar.gz"
  if ! echo "$LCP_SHA  $tarball" | sha256sum -c --status 2>/dev/null; then
    python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$peer" "llama-cpp-python==$LCP_VERSION"
    echo "$LCP_SHA  $tarball" | sha256sum -c --status || { echo "peer-llamacpp: sdist hash mismatch" >&2; exit 1; }
  fi
  [ -d "$src" ] || tar -xzf "$tarball" -C "$peer"
  cmake -S "$src" -B "$peer/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >/dev/null
  cmake --build "$peer/build" -j"$(nproc)" --target llama-bench llama-quantize >/dev/null
fi
q4_0="$peer/SmolLM2-135M-Instruct.Q4_0-requantized.gguf"
[ -f "$q4_0" ] || "$peer/build/bin/llama-quantize" --allow-requantize "$model" "$q4_0" Q4_0 >/dev/null 2>&1
q4_k_m="$peer/SmolLM2-135M-Instruct.Q4_K_M-requantized.gguf"
[ -f "$q4_k_m" ] || "$peer/build/bin/llama-quantize" --allow-requantize "$model" "$q4_k_m" Q4_K_M >/dev/null 2>&1

# ---- both benchmarks, back to back, per file -------------------------------------------------
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=0
for f in "$model" "$q4_0" "$q4_k_m"; do
  echo "peer-llamacpp: $f: llama-bench pp512 / tg128, $threads threads"
  "$bench_bin" -m "$f" -t "$threads" -p 512 -n 128 -r 3 -o json > "$tmp/llama-$n.json"
  echo "peer-llamacpp: $f: vireo-bench prefill 512 / decode 128 steps at context 64, $threads threads"
  build/bench/vireo-bench model --device cpu --model "file:$f" --threads "$threads" --batch 1 \
    --prefill 512 --decode-steps 128 --context 64 --ttft 0 --repeats 3 --json "$tmp/vireo-$n.json" \
    --note "peer run against llama.cpp llama-bench (scripts/peer-llamacpp.sh)" > "$tmp/vireo.log" 2>&1 ||
    { cat "$tmp/vireo.log" >&2; exit 1; }
  echo "peer-llamacpp: $f: vireo-bench decode with --cpu-activations q8"
  build/bench/vireo-bench model --device cpu --model "file:$f" --threads "$threads" --batch 1 \
    --prefill none --decode-steps 128 --context 64 --ttft 0 --cpu-activations q8 --json "$tmp/vireo-q8-$n.json" \
    > "$tmp/vireo.log" 2>&1 || { cat "$tmp/vireo.log" >&2; exit 1; }
  n=$((n + 1))
done

python3 - "$tmp" "$n" "$out" "$LCP_VERSION" <<'PY'
import json, sys, datetime
tmp, n, out, lcp_version = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

def llama_rate(rows, n_prompt, n_gen):
    for r in rows:
        if r["n_prompt"] == n_prompt and r["n_gen"] == n_gen:
            return r
    raise SystemExit(f"peer-llamacpp: no llama-bench result for pp{n_prompt} tg{n_gen}")

runs, first_llama, first_vireo = [], None, None
for i in range(n):
    llama = json.load(open(f"{tmp}/llama-{i}.json"))
    vireo = json.load(open(f"{tmp}/vireo-{i}.json"))
    first_llama, first_vireo = first_llama or llama[0], first_vireo or vireo
    pp, tg = llama_rate(llama, 512, 0), llama_rate(llama, 0, 128)
    rows = vireo["results"]
    v_pp = next(r for r in rows if r["kind"] == "prefill" and r["tokens"] == 512)
    v_tg = next(r for r in rows if r["kind"] == "decode" and r["batch"] == 1)
    q8 = json.load(open(f"{tmp}/vireo-q8-{i}.json"))
    v_q8 = next(r for r in q8["results"] if r["kind"] == "decode" and r["batch"] == 1)
    runs.append({
        "model": pp["model_filename"], "model_type": pp.get("model_type"),
        "llama_cpp": {"pp512_tokens_per_s": pp["avg_ts"], "pp512_stddev": pp["stddev_ts"],
                      "tg128_tokens_per_s": tg["avg_ts"], "tg128_stddev": tg["stddev_ts"]},
        "vireo": {"prefill_512_tokens_per_s": v_pp["tok_s"], "prefill_512": v_pp,
                  "decode_b1_ctx64_tokens_per_s": v_tg["tok_s"], "decode_b1_ctx64": v_tg,
                  "decode_b1_ctx64_q8_activations_tokens_per_s": v_q8["tok_s"],
                  "decode_b1_ctx64_q8_activations": v_q8},
        "vireo_over_llama_cpp": {"prefill_512": v_pp["tok_s"] / pp["avg_ts"],
                                 "decode_b1": v_tg["tok_s"] / tg["avg_ts"],
                                 "decode_b1_q8_activations": v_q8["tok_s"] / tg["avg_ts"]},
    })
res = {
    "benchmark": "peer: llama.cpp llama-bench vs vireo-bench, same GGUF, same CPU, same threads",
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "machine": first_vireo.get("machine"),
    "vireo_commit": first_vireo.get("commit"),
    "vireo_roofline": {k: first_vireo.get(k) for k in ("bandwidth_gbs", "memcpy_gbs", "matmul_gflops")},
    "threads": first_llama.get("n_threads"),
    "llama_cpp": {"source": f"llama-cpp-python {lcp_version} sdist (vendor/llama.cpp)",
                  "build_commit": first_llama.get("build_commit"), "cpu_info": first_llama.get("cpu_info"),
                  "type_k": first_llama.get("type_k"), "flash_attn": first_llama.get("flash_attn")},
    "runs": runs,
    "notes": "llama.cpp: 8-bit quantized activations, integer dot products (AVX-512/VNNI where the "
             "CPU has them); vireo CPU: fp32 activations over dequantized blocks (AVX2), and with "
             "--cpu-activations q8 (ModelOptions::cpu_quantize_activations) 8-bit activations and "
             "AVX2 integer dot products in decode steps. tg128 runs "
             "positions 0..127; vireo decodes at context 64, their mean. The Q4_0 and Q4_K_M "
             "files are requantized from the Q4_1 one by llama-quantize, the same files for both tools.",
}
with open(out, "w") as f:
    json.dump(res, f, indent=2)
    f.write("\n")
print(f"{'SmolLM2-135M-Instruct':40}{'llama.cpp':>11}{'vireo':>11}{'vireo/llama.cpp':>17}")
for r in runs:
    name = (r["model_type"] or r["model"]).split(" ", 2)[-1]  # the weight format, e.g. Q4_1, Q4_K - Medium
    for label, a, b in (("prefill 512 tok/s", r["llama_cpp"]["pp512_tokens_per_s"], r["vireo"]["prefill_512_tokens_per_s"]),
                        ("decode b1 tok/s", r["llama_cpp"]["tg128_tokens_per_s"], r["vireo"]["decode_b1_ctx64_tokens_per_s"]),
                        ("decode b1 tok/s, vireo q8 act.", r["llama_cpp"]["tg128_tokens_per_s"],
                         r["vireo"]["decode_b1_ctx64_q8_activations_tokens_per_s"])):
        print(f"{name + ' ' + label:40}{a:11.1f}{b:11.1f}{b / a:17.2f}")
print(f"peer-llamacpp: {out}")
PY
