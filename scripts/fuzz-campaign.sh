#!/usr/bin/env bash
# A longer fuzzing campaign than CI's bounded run: every target (or those named) for
# CAMPAIGN_SECONDS each (default 600), CAMPAIGN_PARALLEL targets at a time (default 2),
# under ASan + UBSan, growing build-fuzz/corpus/<target>/. Builds like scripts/fuzz.sh.
# Writes build-fuzz/campaign/<target>.log and prints, per target: executions, exec/s, CPU
# seconds, final coverage, corpus size and crashes (artifacts under build-fuzz/artifacts/).
# A crash fails the script; copy the artifact into fuzz/regressions/<target>/ once fixed.
# usage: scripts/fuzz-campaign.sh [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${CAMPAIGN_SECONDS:-600}
par=${CAMPAIGN_PARALLEL:-2}
build=${FUZZ_BUILD:-build-fuzz}
FUZZ_SECONDS=0 scripts/fuzz.sh --build-only
if [ $# -gt 0 ]; then targets=("$@"); else
  targets=()
  for f in fuzz/fuzz_*.cpp; do n=$(basename "$f" .cpp); targets+=("${n#fuzz_}"); done
fi
mkdir -p "$build/campaign"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
run_one() {
  local t=$1 dict=()
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t"
  [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
  # -fork keeps fuzzing past a crash (each crash is saved) for the whole campaign.
  local TIMEFORMAT="cpu_seconds: %U %S"
  { time "$build/fuzz_$t" "${dict[@]}" -max_total_time="$secs" -timeout=20 \
      -rss_limit_mb=2048 -max_len=4096 -fork=1 -ignore_crashes=1 -artifact_prefix="$build/artifacts/$t/" \
      -print_final_stats=1 "$build/corpus/$t" "fuzz/corpus/$t" >"$build/campaign/$t.log" 2>&1 || true; } \
    2>>"$build/campaign/$t.log"
}
t0=$(date +%s)
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$par" ]; then wait -n; running=$((running - 1)); fi
done
wait
echo "== campaign: ${#targets[@]} targets x $secs s, $par at a time, $(( $(date +%s) - t0 )) s wall"
crashes=0
for t in "${targets[@]}"; do
  log="$build/campaign/$t.log"
  execs=$(grep -o 'exec/s: [0-9]*\|#[0-9]*' "$log" | sed -n 's/^#//p' | tail -1)
  cpu=$(sed -n 's/^cpu_seconds: \([0-9.]*\) \([0-9.]*\)/\1 \2/p' "$log" | awk '{print $1 + $2}')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  n=$(ls "$build/artifacts/$t" 2>/dev/null | wc -l)
  crashes=$((crashes + n))
  printf "   %-15s %10s execs  cpu %7ss  cov %-6s corpus %5s  crashes %s\n" "$t" "${execs:-?}" "${cpu:-?}" \
    "${cov:-?}" "$(ls "$build/corpus/$t" | wc -l)" "$n"
done
[ "$crashes" -eq 0 ] || { echo "campaign found $crashes crash input(s) under $build/artifacts/" >&2; exit 1; }
