#!/usr/bin/env bash
# One command for a lent GPU machine: print the GPU, run the [cuda] tests, the CUDA kernel
# benchmarks, vireo-bench model (the issue's bars on the Llama-3.1-8B shape, Q4_0 kept
# quantized, int8 K/V) and serve on CUDA; logs and JSON under $OUT (8 files, the most the device
# tool returns: summary.txt, tests-cuda.log, vireo-bench-model.log and 5 JSON).
#   scripts/gpu-check.sh                 the check: 208 s on an H100 (2026-11-27 03:26 UTC run,
#                                        the decode A/Bs included)
#   scripts/gpu-check.sh --experiments   the check, then the A/B runs listed at the loop below
#                                        (the defaults against their switches, and any new
#                                        experiment) and the per-stage profile: 259 s with 11
#                                        variants (14:56 UTC run). Everything important comes
#                                        first, so a timeout loses only experiments.
#   scripts/gpu-check.sh --bars          the [cuda] tests, the 8B bars, the decode A/Bs on the 8B
#                                        and SmolLM2 shapes, and the batch-1 step without PDL
#                                        (84-90 s, 2026-11-27 runs)
#   scripts/gpu-check.sh --ncu           Nsight Compute over the kernels of four 8B batch-1 decode
#                                        steps, each alone (duration, DRAM bytes; ncu.csv and a
#                                        per-kernel table from scripts/ncu-summary.py): 45 s
#                                        (2026-11-27). --bars-ncu: --bars, then --ncu.
#   scripts/gpu-check.sh --experiments-only
#                                        the experiments alone, plus the real-SmolLM2 [cuda]
#                                        test when the joined model is here.
#   scripts/gpu-check.sh --kernels       the kernel benchmarks alone (~60-110 s), plus the
#                                        real-SmolLM2 [cuda] test when the joined model is here.
#   scripts/gpu-check.sh --sanitize      the [cuda] tests under compute-sanitizer: memcheck,
#                                        racecheck, initcheck, synccheck (one log each;
#                                        not yet timed: give it the whole call).
# The 98 MB SmolLM2 file does not fit in one call's carry with the binaries. What worked:
#   call 1: `true`, carry gpu-bins.tar.gz + models/part-00 (starts the machine);
#   call 2, within the machine's ~30 s idle window: the real command, carry models/part-01 and
#   models/part-02 (2026-11-27: 263 s of device time for both calls, the machine's start
#   included; then --ncu, 45 s).
#
# Two steps, because the lent machine has nvcc and the CUDA libraries but no libfmt, no
# Google Benchmark and no package registry:
#
#   1. here, on the build machine (it compiles; the GPU machine does not need to):
#        scripts/gpu-check.sh --prepare
#      builds vireo-tests, vireo-kernel-bench and vireo-bench in build-cuda (sm_90) and copies
#      the shared libraries they need that are not CUDA or libc (libfmt, libbenchmark) into
#      build-cuda/devlibs.
#      It also packs the three binaries and devlibs into build-cuda/gpu-bins.tar.gz (~12 MB;
#      each binary holds its own ~14 MB fatbin, ~47 MB unpacked).
#   2. on the GPU machine, from the repository root, with the archive carried along:
#        OUT=/some/dir scripts/gpu-check.sh          # default OUT: ./gpu-check-out
#      Device tool: command "bash scripts/gpu-check.sh", timeout_s 580, carry
#      ["build-cuda/gpu-bins.tar.gz"] (unpacked over older binaries already there), plus
#      models/part-01 and part-02 after --split-model (below). Carrying the unpacked binaries works too.
#
# libcudart / libcublas / libcublasLt (CUDA 13) are taken from the machine: when the loader
# cannot find them, the usual CUDA folders and pip's nvidia-* wheels are searched. The
# SmolLM2 test needs models/SmolLM2-135M-Instruct.Q4_1.gguf (98 MB, too large to carry in one
# call; see --split-model): without it that test WARNs and passes; set VIREO_MODEL to a copy
# if the machine has one.
# If build-cuda is missing the script configures and builds it (needs cmake, a CUDA
# toolkit, fmt, Catch2 v2 and Google Benchmark: apt-get install cmake libfmt-dev catch2
# libbenchmark-dev), which the lent machines cannot do.
set -uo pipefail
cd "$(dirname "$0")/.."
# The decode settings the 8B runs A/B on one loaded model, interleaved over 5 rounds
# (vireo-bench model --ab; cuda::DecodeTuning): the first is the reference. The fused batch-1
# step against the unfused one, the one decode switch left (the others lost their A/Bs and
# were removed: bench/results/README.md). A new switch under test joins this list.
AB="${VIREO_AB:-default;fusion=0}"
BUILD="${BUILD:-build-cuda}"
BINS=("$BUILD/tests/vireo-tests" "$BUILD/bench/vireo-kernel-bench" "$BUILD/bench/vireo-bench")

if [ "${1:-}" = "--prepare" ]; then
  set -e
  cmake -S . -B "$BUILD" -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release
  cmake --build "$BUILD" -j2 --target vireo-tests vireo-kernel-bench vireo-bench
  mkdir -p "$BUILD/devlibs"
  # The commit these binaries are built from (the GPU machine's copy of .git may be stale):
  # recorded in every JSON the run writes.
  echo "$(git rev-parse HEAD)$(git diff --quiet HEAD -- . ':!bench/results' || echo -dirty)" > "$BUILD/devlibs/COMMIT"
  for b in "${BINS[@]}"; do
    # every resolved dependency except the CUDA libraries and the C/C++ runtime
    ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' |
      grep -Ev '/(libcuda|libcudart|libcublas|libcublasLt|libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)\.so' |
      while read -r lib; do cp -Lv "$lib" "$BUILD/devlibs/"; done || true
  done
  # One archive to carry: the binaries embed the same fatbin three times, gzip halves it.
  tar -czf "$BUILD/gpu-bins.tar.gz" "${BINS[@]}" "$BUILD/devlibs"
  ls -la "$BUILD/gpu-bins.tar.gz"
  exit 0
fi

if [ "${1:-}" = "--split-model" ]; then
  # The real SmolLM2 file (98 MB) is larger than what one device call may carry (64 MiB, the
  # working tree included). Split it into parts of 45 MiB, models/part-00 .. part-02
  # (git-ignored), and carry them over two calls while the lent machine stays warm (it keeps
  # carried files between calls while it is held): call 1 `true` carrying
  # build-cuda/gpu-bins.tar.gz (~14.5 MB) and models/part-00 (~63 MB with the ~1.8 MB tree),
  # call 2 `bash scripts/gpu-check.sh` carrying models/part-01 and part-02.
  # gpu-check joins the parts, checks the hash from fetch-model.sh, and the [cuda] SmolLM2 test
  # (fp32 greedy identical to the CPU, bf16 logits within tolerance) runs on the real weights.
  set -e
  m=models/SmolLM2-135M-Instruct.Q4_1.gguf
  [ -f "$m" ] || scripts/fetch-model.sh
  rm -f models/part-*
  split -b 45M -d "$m" models/part-
  ls -la models/part-*
  exit 0
fi

CHECK=1 EXPERIMENTS=0 BARS=0 NCU=0 KERNELS=0 SANITIZE=0
case "${1:-}" in
  "") ;;
  --experiments) EXPERIMENTS=1 ;;
  --experiments-only) CHECK=0 EXPERIMENTS=1 ;;
  --kernels) CHECK=0 KERNELS=1 ;;
  --bars) CHECK=0 BARS=1 ;;
  --ncu) CHECK=0 NCU=1 ;;
  --bars-ncu) CHECK=0 BARS=1 NCU=1 ;;
  --sanitize) CHECK=0 SANITIZE=1 ;;
  *) echo "usage: scripts/gpu-check.sh [--prepare | --split-model | --experiments | --experiments-only | --kernels | --bars | --ncu | --bars-ncu | --sanitize]" >&2; exit 2 ;;
esac

OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
status=0
say() { echo "$*" | tee -a "$SUMMARY"; }
# bench_variant LABEL ENV LIMIT ARGS...: one `vireo-bench model --device cuda --dtype bf16 ARGS`
# run under the environment assignments ENV ("" for none) and `timeout LIMIT`; its log goes to
# vireo-bench-model.log under "==== LABEL", its step, copy-floor and bar lines to the summary.
# Returns its exit status.
bench_variant() {
  local label="$1" envs="$2" limit="$3" rc
  shift 3
  env $envs timeout "$limit" "$BUILD/bench/vireo-bench" model --device cuda --dtype bf16 "$@" > "$OUT/variant.log" 2>&1
  rc=$?
  say "vireo-bench model $label exit $rc"
  { echo "==== $label"; cat "$OUT/variant.log"; } >> "$OUT/vireo-bench-model.log"
  grep -E "^  (decode|prefill)|copy-bandwidth|^bar |^  A/B|^    [a-z]" "$OUT/variant.log" | tee -a "$SUMMARY"
  rm -f "$OUT/variant.log"
  return $rc
}
: > "$SUMMARY"

say "== nvidia-smi"
nvidia-smi 2>&1 | tee -a "$SUMMARY"

# The carried archive wins over older binaries (a warm machine may keep some from an earlier
# call); binaries rebuilt after the last --prepare are left alone.
if [ -f "$BUILD/gpu-bins.tar.gz" ] && { [ ! -f "$BUILD/tests/vireo-tests" ] || [ "$BUILD/gpu-bins.tar.gz" -nt "$BUILD/tests/vireo-tests" ]; }; then
  tar -xzf "$BUILD/gpu-bins.tar.gz" && say "binaries unpacked from $BUILD/gpu-bins.tar.gz"
fi

if [ ! -f "$BUILD/tests/vireo-tests" ]; then
  say "== configure + build ($BUILD/tests/vireo-tests missing)"
  { cmake -S . -B "$BUILD" -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release &&
    timeout 300 cmake --build "$BUILD" -j"$(nproc)" --target vireo-tests vireo-kernel-bench vireo-bench; } \
    > "$OUT/build.log" 2>&1 || { say "build failed (see build.log)"; tail -40 "$OUT/build.log"; exit 1; }
fi

# Carried files may lose their executable bit; the libraries come from devlibs and the machine.
for b in "${BINS[@]}"; do [ -f "$b" ] && chmod +x "$b"; done
case "$BUILD" in /*) LIBDIRS="$BUILD/devlibs" ;; *) LIBDIRS="$PWD/$BUILD/devlibs" ;; esac
missing() { for b in "${BINS[@]}"; do [ -f "$b" ] && LD_LIBRARY_PATH="$LIBDIRS" ldd "$b" 2>/dev/null; done | awk '/not found/ {print $1}' | sort -u; }
for lib in $(missing); do
  found=$(find /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets /usr/lib/x86_64-linux-gnu \
               /usr/local/lib /opt /usr/lib/python3 /usr/local/lib/python3* -name "$lib" 2>/dev/null | head -1)
  if [ -n "$found" ]; then
    LIBDIRS="$LIBDIRS:$(dirname "$found")"
    say "library $lib from $(dirname "$found")"
  fi
done
export LD_LIBRARY_PATH="$LIBDIRS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
[ -f "$BUILD/devlibs/COMMIT" ] && export VIREO_COMMIT="$(cat "$BUILD/devlibs/COMMIT")"
say "commit ${VIREO_COMMIT:-unknown (no $BUILD/devlibs/COMMIT)}"
still=$(missing | tr '\n' ' ')
[ -n "$still" ] && say "WARNING: shared libraries still not found: $still (run scripts/gpu-check.sh --prepare before carrying $BUILD)"

MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$MODEL" ] && ls models/part-* > /dev/null 2>&1; then
  sha=$(sed -n 's/^sha=//p' scripts/fetch-model.sh)
  cat models/part-* > "$MODEL.tmp"
  if echo "$sha  $MODEL.tmp" | sha256sum -c --status; then
    mv "$MODEL.tmp" "$MODEL"
    say "model joined from $(ls models/part-* | wc -l) parts, sha256 ok"
  else
    rm -f "$MODEL.tmp"
    say "model parts present but incomplete or corrupt ($(ls models/part-* | tr '\n' ' ')): SmolLM2 test skips"
  fi
fi
[ -f "$MODEL" ] && export VIREO_MODEL="$PWD/$MODEL"

# The CUDA kernel benchmarks (console log into the summary, JSON beside it).
kernel_benchmarks() {
  if [ -f "$BUILD/bench/vireo-kernel-bench" ]; then
    say "== kernel benchmarks"
    # Google Benchmark 1.7 (Debian) takes --benchmark_min_time in plain seconds, no 's' suffix.
    # ~50 s up to the GEMMs with the weights streamed from HBM (2026-11-27, when 50 s cut it off).
    timeout 110 "$BUILD/bench/vireo-kernel-bench" \
      --benchmark_filter='BM_(gemv|gemm|rmsnorm|prefill_attention|pdl_probe|decode_attention)' \
      --benchmark_min_time=0.05 --benchmark_out="$OUT/bench-cuda-kernels.json" --benchmark_out_format=json \
      > "$OUT/bench-cuda-kernels.log" 2>&1
    rc=$?
    say "vireo-kernel-bench exit $rc"
    cat "$OUT/bench-cuda-kernels.log"
    [ $rc -ne 0 ] && status=1
    # The device tool returns at most 8 files: the console log joins the summary.
    { echo "== kernel benchmark console log"; cat "$OUT/bench-cuda-kernels.log"; } >> "$SUMMARY"
    rm -f "$OUT/bench-cuda-kernels.log"
  fi
}

if [ "$CHECK" = 1 ]; then
say "== [cuda] tests"
timeout 150 "$BUILD/tests/vireo-tests" "[cuda]" --durations yes > "$OUT/tests-cuda.log" 2>&1
rc=$?
say "vireo-tests [cuda] exit $rc $(tail -2 "$OUT/tests-cuda.log" | tr '\n' ' ')"
tail -30 "$OUT/tests-cuda.log"
[ $rc -ne 0 ] && status=1

kernel_benchmarks

if [ -f "$BUILD/bench/vireo-bench" ]; then
  say "== vireo-bench model (cuda, bf16, random weights)"
  # The real SmolLM2 file too when it is here (see --split-model).
  MODELS=smollm2-135m,llama-3.2-1b
  [ -f "$MODEL" ] && MODELS="$MODELS,file:$MODEL"
  timeout 90 "$BUILD/bench/vireo-bench" model --device cuda --dtype bf16 --model "$MODELS" \
    --batch 1,8,32,64 --prefill 512,2048 --decode-steps 16 --context 512 --ttft 512 --repeats 2 \
    --json "$OUT/vireo-bench-model.json" > "$OUT/vireo-bench-model.log" 2>&1
  rc=$?
  say "vireo-bench model exit $rc"
  tail -30 "$OUT/vireo-bench-model.log"
  [ $rc -ne 0 ] && status=1
  # The issue's bars are set on the Llama-3.1-8B shape: its own step, so a timeout there
  # keeps the results above (random bf16 weights: ~16 GB host + device, built in parallel).
  say "== vireo-bench model, llama-3.1-8b (the bar's shape)"
  timeout 150 "$BUILD/bench/vireo-bench" model --device cuda --dtype bf16 --model llama-3.1-8b --weights bf16 \
    --batch 1,8,32,64 --prefill 512,2048 --decode-steps 16 --context 512 --ttft 512 --repeats 2 \
    --json "$OUT/vireo-bench-8b.json" >> "$OUT/vireo-bench-model.log" 2>&1
  rc=$?
  say "vireo-bench model 8b exit $rc"
  tail -12 "$OUT/vireo-bench-model.log"
  grep -E "^bar " "$OUT/vireo-bench-model.log" | tail -3 >> "$SUMMARY"
  [ $rc -ne 0 ] && status=1
  # The decode settings still being measured, each process apart from the bars above (a
  # setting that faults the GPU must not take the bars with it): the 8B shape, then the small
  # ones (launch-bound: ~200 kernels per SmolLM2 step, so a kernel fewer per layer shows
  # most there). JSON to the log.
  say "== decode A/B, llama-3.1-8b: $AB"
  bench_variant "8b A/B" "" 150 --model llama-3.1-8b --weights bf16 --batch 1,8 --prefill none \
    --decode-steps 32 --context 512 --ttft 0 --ab "$AB" --ab-rounds 5 || status=1
  say "== decode A/B, small models: $AB"
  bench_variant "small A/B" "" 90 --model "$MODELS" --batch 1,8 --prefill none --decode-steps 32 --context 512 \
    --ttft 0 --ab "$AB" --ab-rounds 3 || status=1
  # Quantized weights kept quantized on the GPU (ModelOptions::gpu_quantized; written without
  # a GPU on 2026-11-26): the 8B shape in Q4_0, batch 1 (the design's target: >= 3x the bf16
  # batch-1 token rate above), batch 8 (the largest single GEMV), 16 and 32 (GEMV groups of
  # 8 tokens) and 64 (dequantize + cuBLAS).
  say "== vireo-bench model, llama-3.1-8b Q4_0 kept quantized (--gpu-weights native)"
  timeout 120 "$BUILD/bench/vireo-bench" model --device cuda --dtype bf16 --model llama-3.1-8b --weights q4_0 \
    --gpu-weights native --batch 1,8,16,32,64 --prefill 512 --decode-steps 16 --context 512 --ttft 0 --repeats 2 \
    --json "$OUT/vireo-bench-8b-q4_0.json" >> "$OUT/vireo-bench-model.log" 2>&1
  rc=$?
  say "vireo-bench model 8b q4_0 native exit $rc"
  grep -E "^  (decode|prefill)" "$OUT/vireo-bench-model.log" | tail -6 | tee -a "$SUMMARY"
  [ $rc -ne 0 ] && status=1
  say "== decode A/B, llama-3.1-8b Q4_0 kept quantized: fused against unfused"
  bench_variant "8b q4_0 A/B" "" 120 --model llama-3.1-8b --weights q4_0 --gpu-weights native --batch 1,8 \
    --prefill none --decode-steps 32 --context 512 --ttft 0 --ab "default;fusion=0" --ab-rounds 3 || status=1

  # Continuous batching on the GPU (issue 4's serving numbers were CPU-only): Llama-3.2-1B
  # shape, random weights, 96 requests at 48/s through the Scheduler.
  say "== vireo-bench serve (cuda, llama-3.2-1b)"
  timeout 100 "$BUILD/bench/vireo-bench" serve --device cuda --random llama-3.2-1b --requests 96 --rate 48 \
    --prompt 64,512 --output 32,160 --block-size 16 --kv-tokens 65536 --max-batch-tokens 2048 --max-running 64 \
    --repeats 1 --json "$OUT/vireo-bench-serve-cuda.json" >> "$OUT/vireo-bench-model.log" 2>&1
  rc=$?
  say "vireo-bench serve exit $rc"
  tail -25 "$OUT/vireo-bench-model.log"
  [ $rc -ne 0 ] && status=1

  # int8 K/V on the GPU (KVPrecision::Int8; on 2026-11-27 slower than 16-bit: 5.48 against
  # 4.74 ms at batch 32) against the
  # 16-bit cache at a long context, Llama-3.2-1B shape: decode reads ~half the KV bytes.
  for kv in model int8; do
    say "== vireo-bench model llama-3.2-1b, --kv $kv, context 8192"
    bench_variant "llama-3.2-1b --kv $kv, context 8192" "" 60 --model llama-3.2-1b --kv "$kv" --batch 1,32 \
      --prefill 2048 --decode-steps 16 --context 8192 --ttft 0 --repeats 2 || status=1
  done
fi

fi # CHECK

if [ "$CHECK" = 0 ] && [ -f "$MODEL" ]; then
  # --experiments-only on a warm machine after the check (the split model's second part came
  # with this call): the real-SmolLM2 test the check could not run.
  say "== [cuda] SmolLM2 test on the real file"
  timeout 90 "$BUILD/tests/vireo-tests" "cuda SmolLM2*" --durations yes > "$OUT/tests-cuda.log" 2>&1
  rc=$?
  say "vireo-tests cuda SmolLM2 exit $rc $(tail -2 "$OUT/tests-cuda.log" | tr '\n' ' ')"
  [ $rc -ne 0 ] && status=1
fi

if [ "$KERNELS" = 1 ]; then
  # --kernels: the kernel benchmarks alone (with the real-SmolLM2 test above when the joined
  # model is here).
  kernel_benchmarks
fi

if [ "$BARS" = 1 ]; then
  # --bars: the short confirmation for a session's last minutes of device time (~2-3 min):
  # the [cuda] tests, the 8B bars on the defaults, the decode A/B (the defaults against their
  # switches) on the 8B and SmolLM2 shapes, and the batch-1 step without PDL, all in one run
  # on one card.
  say "== [cuda] tests"
  timeout 150 "$BUILD/tests/vireo-tests" "[cuda]" --durations yes > "$OUT/tests-cuda.log" 2>&1
  rc=$?
  say "vireo-tests [cuda] exit $rc $(tail -2 "$OUT/tests-cuda.log" | tr '\n' ' ')"
  [ $rc -ne 0 ] && status=1
  say "== vireo-bench model, llama-3.1-8b (the bar's shape)"
  timeout 100 "$BUILD/bench/vireo-bench" model --device cuda --dtype bf16 --model llama-3.1-8b --weights bf16 \
    --batch 1,8,64 --prefill 2048 --decode-steps 32 --context 512 --ttft 512 --repeats 3 \
    --json "$OUT/vireo-bench-8b.json" > "$OUT/vireo-bench-model.log" 2>&1
  rc=$?
  say "vireo-bench model 8b exit $rc"
  grep -E "^  (decode|prefill)|copy-bandwidth|^bar " "$OUT/vireo-bench-model.log" | tee -a "$SUMMARY"
  [ $rc -ne 0 ] && status=1
  say "== decode A/B, llama-3.1-8b: $AB"
  bench_variant "8b A/B" "" 150 --model llama-3.1-8b --weights bf16 --batch 1,8 --prefill none \
    --decode-steps 32 --context 512 --ttft 0 --ab "$AB" --ab-rounds 5 || status=1
  say "== decode A/B, smollm2-135m shape: $AB"
  bench_variant "smollm2 A/B" "" 60 --model smollm2-135m --batch 1,8 --prefill none --decode-steps 32 --context 512 \
    --ttft 0 --ab "$AB" --ab-rounds 3 || status=1
  for variant in "VIREO_PDL=0"; do
    say "== $variant: llama-3.1-8b decode batch 1"
    bench_variant "8b ($variant)" "$variant" 60 --model llama-3.1-8b --weights bf16 --batch 1 --prefill none \
      --decode-steps 32 --context 512 --ttft 0 --repeats 2
  done
fi

if [ "$EXPERIMENTS" = 1 ] && [ -f "$BUILD/bench/vireo-bench" ]; then
  say "== experiments (--experiments): the defaults against their switches"
  # Each variant: the [cuda][model] tests where a field asks for them (whole forward passes
  # through the switched kernels), then the 8B steps the switch can change (JSON to the log).
  # Every switch measured on 2026-11-26 is decided (bench/results/h100-2026-11-26-1456 and
  # -1502); this loop now A/Bs the defaults against their switches, so a new card or a change
  # shows what each default is worth. A new experiment goes here as one more spec line:
  #   VIREO_DECODE_FUSION=0          the unfused decode step (default: fused at batch 1)
  #   VIREO_PDL=0                    no programmatic dependent launch
  # (docs/TUNING.md lists every variable.) Each variant generates the 8B weights again (~10 s).
  for spec in "VIREO_DECODE_FUSION=0|1,8|none|[cuda][model]~[slow]" "VIREO_PDL=0|1|none|"; do
    IFS='|' read -r variant batches prefills tests <<< "$spec"
    say "== $variant: llama-3.1-8b decode batch $batches, prefill $prefills"
    if [ -n "$tests" ]; then
      env $variant timeout 60 "$BUILD/tests/vireo-tests" "$tests" > "$OUT/tests-cuda-variant.log" 2>&1
      rc=$?
      say "vireo-tests $tests ($variant) exit $rc $(tail -2 "$OUT/tests-cuda-variant.log" | tr '\n' ' ')"
      { echo "==== $variant"; cat "$OUT/tests-cuda-variant.log"; } >> "$OUT/tests-cuda.log"
      rm -f "$OUT/tests-cuda-variant.log"
      [ $rc -ne 0 ] && status=1
    fi
    bench_variant "8b ($variant)" "$variant" 80 --model llama-3.1-8b --weights bf16 --batch "$batches" \
      --prefill "$prefills" --decode-steps 16 --context 512 --ttft 0 --repeats 2
  done
  # Where a batch-1 decode step (the fused default) spends its GPU time (VIREO_CUDA_PROFILE=1:
  # eager steps with an event after every stage, so no PDL overlap; JSON to the log).
  say "== vireo-bench model, llama-3.1-8b with VIREO_CUDA_PROFILE=1"
  VIREO_CUDA_PROFILE=1 timeout 100 "$BUILD/bench/vireo-bench" model --device cuda --dtype bf16 --model llama-3.1-8b \
    --weights bf16 --batch 1 --prefill none --decode-steps 8 --context 512 --ttft 0 --repeats 1 \
    >> "$OUT/vireo-bench-model.log" 2>&1
  say "vireo-bench model 8b (profile) exit $?"
  grep -A11 "vireo cuda profile" "$OUT/vireo-bench-model.log" | tee -a "$SUMMARY"
fi

if [ "$SANITIZE" = 1 ]; then
  # Each tool over every [cuda] test case; a tool's errors fail the run. The real-SmolLM2
  # test is slow under memcheck and is left out ([cuda]~[golden]).
  CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null | head -1)
  if [ -z "$CS" ]; then
    say "compute-sanitizer not found"; status=1
  else
    for tool in memcheck racecheck initcheck synccheck; do
      timeout 140 "$CS" --tool "$tool" --error-exitcode 99 "$BUILD/tests/vireo-tests" "[cuda]~[golden]" \
        > "$OUT/sanitize-$tool.log" 2>&1
      rc=$?
      say "compute-sanitizer $tool exit $rc ($(grep -c 'ERROR SUMMARY' "$OUT/sanitize-$tool.log") summaries)"
      grep -E "ERROR SUMMARY|test cases" "$OUT/sanitize-$tool.log" | tail -2 | tee -a "$SUMMARY"
      [ $rc -ne 0 ] && status=1
    done
  fi
fi

if [ "$NCU" = 1 ] && [ -f "$BUILD/bench/vireo-bench" ]; then
  # --ncu: every kernel of four batch-1 decode steps of the 8B shape (eager: VIREO_CUDA_PROFILE=1
  # turns the graphs off), each profiled alone by Nsight Compute with the caches flushed before
  # it: duration and DRAM bytes per kernel, so each one's distance from the bandwidth floor
  # shows without PDL's overlap (the A/B and the step time say what overlap adds). Seen
  # working on the Firecracker H100s (KINDS.md: ncu with --clock-control none); written on
  # 2026-11-26; first run 2026-11-27 (45 s). The CSV is ncu.csv; scripts/ncu-summary.py groups it.
  NCU_BIN="$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)"
  if [ -z "$NCU_BIN" ]; then
    say "== ncu: not found on this machine; skipped"
  else
    say "== ncu ($NCU_BIN): kernels of 4 batch-1 decode steps, llama-3.1-8b bf16, context 512"
    VIREO_CUDA_PROFILE=1 timeout 300 "$NCU_BIN" --clock-control none --print-units base --csv --log-file "$OUT/ncu.csv" \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum \
      -k 'regex:gemv|attention|rmsnorm|embed|rope|swiglu|sampl|argmax|greedy' --launch-count 1500 \
      "$BUILD/bench/vireo-bench" model --device cuda --dtype bf16 --model llama-3.1-8b --weights bf16 --batch 1 \
      --prefill none --decode-steps 2 --context 512 --ttft 0 > "$OUT/ncu-bench.log" 2>&1
    rc=$?
    say "ncu exit $rc ($(grep -c '^"' "$OUT/ncu.csv" 2>/dev/null || echo 0) CSV rows)"
    [ $rc -ne 0 ] && { tail -20 "$OUT/ncu-bench.log" | tee -a "$SUMMARY"; status=1; }
    python3 scripts/ncu-summary.py "$OUT/ncu.csv" --top 40 2>&1 | tee -a "$SUMMARY"
    rm -f "$OUT/ncu-bench.log"
  fi
fi

say "== done, status $status, files in $OUT"
exit $status
