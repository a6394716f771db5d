#!/usr/bin/env bash
# Bounded fuzzing run (a CI step): build the libFuzzer targets of fuzz/ with clang under
# AddressSanitizer + UndefinedBehaviorSanitizer (build-fuzz, CPU only), replay every input
# that once crashed a target (fuzz/regressions/<target>/), then fuzz each target for
# FUZZ_SECONDS (default 60) from its committed seeds (fuzz/corpus/<target>/) plus what
# earlier runs found (build-fuzz/corpus/<target>/, kept between runs), with its dictionary.
# Prints executions, executions/s and coverage per target. Any crash, sanitizer report,
# failed invariant, timeout (FUZZ_TIMEOUT s for one input, default 20) or out-of-memory
# fails the script; the input is saved under build-fuzz/artifacts/<target>/ and the message
# says how to make it a regression test.
# usage: scripts/fuzz.sh [target ...]      (default: every fuzz/fuzz_*.cpp; --build-only: just build)
# env:   FUZZ_SECONDS, FUZZ_TIMEOUT, VIREO_JOBS (build parallelism), FUZZ_BUILD (build folder)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
timeout_s=${FUZZ_TIMEOUT:-20}
build=${FUZZ_BUILD:-build-fuzz}
jobs=${VIREO_JOBS:-2}
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# clang and its libFuzzer / sanitizer runtimes (Debian: clang + libclang-rt-<ver>-dev).
fuzzer_rt() { clang++ -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null; }
if ! command -v clang++ >/dev/null || [ ! -f "$(fuzzer_rt)" ]; then
  echo "== installing clang and libFuzzer"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq clang >/dev/null
  ver=$(clang++ --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
  [ -f "$(fuzzer_rt)" ] || $sudo apt-get install -y -qq "libclang-rt-$ver-dev" >/dev/null
fi
[ -f models/SmolLM2-135M-Instruct.Q4_1.gguf ] || scripts/fetch-model.sh

t0=$(date +%s)
cmake -S fuzz -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang >/dev/null
cmake --build "$build" -j"$jobs" >"$build/build.log" 2>&1 || { tail -60 "$build/build.log"; exit 1; }
echo "== fuzz targets built in $(( $(date +%s) - t0 )) s"

[ "${1:-}" = "--build-only" ] && exit 0
if [ $# -gt 0 ]; then targets=("$@"); else
  targets=()
  for f in fuzz/fuzz_*.cpp; do n=$(basename "$f" .cpp); targets+=("${n#fuzz_}"); done
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
summary=()
for t in "${targets[@]}"; do
  bin="$build/fuzz_$t"
  regress="fuzz/regressions/$t"
  work="$build/corpus/$t"
  art="$build/artifacts/$t/"
  mkdir -p "$work" "$art"
  if [ -d "$regress" ] && [ -n "$(ls -A "$regress")" ]; then
    echo "== $t: replaying $(ls "$regress" | wc -l) regression inputs"
    if ! "$bin" "$regress"/* >"$build/$t.regress.log" 2>&1; then
      tail -40 "$build/$t.regress.log"
      failed+=("$t (regression)")
      continue
    fi
  fi
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
  echo "== $t: fuzzing for $secs s"
  ts=$(date +%s)
  set +e
  "$bin" "${dict[@]}" -max_total_time="$secs" -timeout="$timeout_s" -rss_limit_mb=2048 -max_len=4096 \
    -artifact_prefix="$art" -print_final_stats=1 \
    "$work" "fuzz/corpus/$t" >"$build/$t.log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/$t.log" | awk '{s+=$1} END {print s+0}')
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$build/$t.log" | awk '{s+=$1} END {print s+0}')
  cov=$(grep -o 'cov: [0-9]*' "$build/$t.log" | tail -1 | awk '{print $2}')
  line=$(printf "%-15s %10s execs %8s exec/s  cov %-6s corpus %5s files  %4ss  rc %s" "$t" "$execs" "$rate" \
         "${cov:-?}" "$(ls "$work" | wc -l)" "$(( $(date +%s) - ts ))" "$rc")
  echo "$line"
  summary+=("$line")
  if [ "$rc" -ne 0 ]; then
    grep -E "ERROR|SUMMARY|invariant|Test unit written|runtime error" "$build/$t.log" | head -20
    tail -30 "$build/$t.log"
    echo "   crash input(s) in $art: copy each into fuzz/regressions/$t/ (a regression input the"
    echo "   ordinary tests replay), fix the bug, and rerun scripts/fuzz.sh $t"
    failed+=("$t")
  fi
done

echo "== fuzz summary (${secs} s per target, ASan + UBSan)"
for l in "${summary[@]}"; do echo "   $l"; done
echo "== fuzzing took $(( $(date +%s) - t0 )) s"
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzzing FAILED: ${failed[*]}" >&2
  exit 1
fi
