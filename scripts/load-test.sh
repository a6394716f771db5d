#!/usr/bin/env bash
# Load test of vireo-server with a third-party generator: NVIDIA's aiperf (PyPI), the LLM
# benchmarking client that reports TTFT, inter-token latency, throughput and goodput under
# SLOs, and can cancel requests mid-stream. It runs offline: its prompts are sized with a
# Hugging Face tokenizer written from the GGUF's own vocabulary (scripts/loadtest/
# gguf_tokenizer.py, no download) and token counts come from the server's usage fields.
# Installs aiperf into a venv (.venv-loadtest, git-ignored), starts vireo-server on a free
# port, runs four phases on synthetic chat prompts (128 +- 32 prompt tokens, 64 +- 16 output
# tokens), snapshots /metrics around each, stops the server with SIGTERM, and writes
# bench/results/cpu-<date>-loadtest-aiperf.{json,md}.
#   c1      concurrency 1 (latency without batching)
#   c8      concurrency 8 (= --max-running: continuous batching)
#   rate8   Poisson arrivals at 8 requests/s, above capacity: the queue (--max-waiting 16) fills, 429s
#   cancel  concurrency 8, a quarter of the requests abandoned 1 s after they are sent
# usage: scripts/load-test.sh [NOTE]   (env: VIREO_MODEL, LOADTEST_THREADS, LOADTEST_SCALE=1)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-loadtest
server=build/examples/vireo-server/vireo-server
model=${VIREO_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
threads=${LOADTEST_THREADS:-2}
scale=${LOADTEST_SCALE:-1}
note=${1:-"2-core shared VM (other builds may be running): the figures are noisy; compare phases within this run, not across runs"}
[ -x "$server" ] || { echo "load-test.sh: $server is missing (scripts/setup.sh, scripts/build.sh)" >&2; exit 1; }
[ -f "$model" ] || { echo "load-test.sh: $model is missing (scripts/fetch-model.sh)" >&2; exit 1; }
out=build/loadtest/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
t0=$(date +%s)

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import aiperf, gguf, tokenizers" 2>/dev/null ||
  "$venv/bin/python" -m pip install --quiet "aiperf==0.13.0" gguf
"$venv/bin/python" scripts/loadtest/gguf_tokenizer.py "$model" "$out/tokenizer"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

server_args=(-m "$model" --device cpu -t "$threads" --max-running 8 --max-waiting 16 --kv-tokens 8192)
( exec "$server" "${server_args[@]}" --port 0 >"$out/server.out" 2>"$out/server.err" ) &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 600); do grep -q "listening on" "$out/server.out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.*listening on http:\/\/[0-9.]*:\([0-9]*\).*/\1/p' "$out/server.out")
[ -n "$port" ] || { cat "$out/server.err" >&2; exit 1; }
name=$(basename "$model" .gguf)
metrics() { python3 -c "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:$port/metrics').read().decode())"; }

slo="time_to_first_token:2000 inter_token_latency:150"
phases_json=""
phase() {  # NAME "LOAD DESCRIPTION" aiperf-args...
  local pname=$1 load=$2
  shift 2
  echo "== load test phase $pname: $load"
  metrics >"$out/$pname.before.prom"
  "$venv/bin/python" -m aiperf profile --model "$name" --url "http://127.0.0.1:$port" --endpoint-type chat \
    --streaming --tokenizer "$PWD/$out/tokenizer" --use-server-token-count --isl 128 --isl-stddev 32 \
    --osl 64 --osl-stddev 16 --random-seed 7 --goodput "$slo" --ui-type none \
    --output-artifact-dir "$out/$pname" "$@" >"$out/$pname.log" 2>&1 ||
    { tail -30 "$out/$pname.log" >&2; exit 1; }
  metrics >"$out/$pname.after.prom"
  grep -E "Request Throughput|Time to First Token \(ms\)|Inter Token Latency|Request Error Rate" "$out/$pname.log" | head -4 || true
  phases_json+="${phases_json:+,}{\"name\": \"$pname\", \"load\": \"$load\"}"
}
phase c1 "concurrency 1" --concurrency 1 --request-count $((12 * scale))
phase c8 "concurrency 8" --concurrency 8 --request-count $((48 * scale))
phase rate8 "Poisson 8 req/s" --request-rate 8 --request-count $((80 * scale))
phase cancel "concurrency 8, 25% cancelled after 1 s" --concurrency 8 --request-count $((40 * scale)) \
  --request-cancellation-rate 25 --request-cancellation-delay 1

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
trap - EXIT
[ "$rc" -eq 0 ] || { echo "vireo-server exited with $rc" >&2; cat "$out/server.err" >&2; exit 1; }

date=$(date -u +%Y-%m-%d)
cat >"$out/meta.json" <<JSON
{"benchmark": "scripts/load-test.sh (aiperf against vireo-server)",
 "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "commit": "$(git rev-parse HEAD 2>/dev/null || echo unknown)",
 "machine": {"cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')", "hardware_threads": $(nproc),
             "device": "cpu", "load_average_before": "$load_before", "load_average_after": "$(cut -d' ' -f1-3 /proc/loadavg)"},
 "aiperf_version": "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("aiperf"))')",
 "model": "$model", "server_command": "vireo-server ${server_args[*]}",
 "workload": "synthetic chat prompts, 128 +- 32 prompt tokens, 64 +- 16 output tokens (max_completion_tokens), streaming",
 "goodput_slo": "$slo (ms)", "note": "$note", "phases": [$phases_json]}
JSON
"$venv/bin/python" scripts/loadtest/report.py "$out" "bench/results/cpu-$date-loadtest-aiperf.json" \
  "bench/results/cpu-$date-loadtest-aiperf.md"
cat "bench/results/cpu-$date-loadtest-aiperf.md"
echo "== load test: $(( $(date +%s) - t0 )) s (aiperf artifacts in $out)"
