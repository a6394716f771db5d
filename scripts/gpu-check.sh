#!/usr/bin/env bash
# One command for a lent GPU machine: print the GPU, build if needed, run the [cuda] tests and
# the CUDA kernel benchmarks (and vireo-bench when it exists), logs and JSON under $OUT.
#
#   OUT=/some/dir scripts/gpu-check.sh          # default OUT: ./gpu-check-out
#
# The build folder build-cuda is normally carried from the build machine; it is configured
# and built here only when missing (needs cmake, a CUDA toolkit, fmt, Catch2 v2 and Google
# Benchmark: apt-get install cmake libfmt-dev catch2 libbenchmark-dev). Budget: ~5 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-check-out}"
BUILD="${BUILD:-build-cuda}"
mkdir -p "$OUT"
status=0

echo "== nvidia-smi" | tee "$OUT/summary.txt"
nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt"

if [ ! -x "$BUILD/tests/vireo-tests" ]; then
  echo "== configure + build ($BUILD missing)" | tee -a "$OUT/summary.txt"
  cmake -S . -B "$BUILD" -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release -DVIREO_BUILD_BENCH=ON \
    > "$OUT/configure.log" 2>&1 || { echo "configure failed" | tee -a "$OUT/summary.txt"; exit 1; }
  timeout 240 cmake --build "$BUILD" -j"$(nproc)" > "$OUT/build.log" 2>&1 \
    || { echo "build failed (see build.log)" | tee -a "$OUT/summary.txt"; tail -40 "$OUT/build.log"; exit 1; }
fi

echo "== [cuda] tests" | tee -a "$OUT/summary.txt"
timeout 150 "$BUILD/tests/vireo-tests" "[cuda]" --durations yes -r console > "$OUT/tests-cuda.log" 2>&1
rc=$?
echo "vireo-tests [cuda] exit $rc" | tee -a "$OUT/summary.txt"
tail -25 "$OUT/tests-cuda.log"
[ $rc -ne 0 ] && status=1
timeout 20 "$BUILD/tests/vireo-tests" "[cuda]" -r junit > "$OUT/tests-cuda.junit.xml" 2>/dev/null || true

if [ -x "$BUILD/bench/vireo-kernel-bench" ]; then
  echo "== kernel benchmarks" | tee -a "$OUT/summary.txt"
  timeout 120 "$BUILD/bench/vireo-kernel-bench" --benchmark_filter='BM_(gemv|gemm|rmsnorm|decode_attention|prefill_attention)' \
    --benchmark_min_time=0.05s --benchmark_out="$OUT/bench-cuda-kernels.json" --benchmark_out_format=json \
    > "$OUT/bench-cuda-kernels.log" 2>&1
  rc=$?
  echo "vireo-kernel-bench exit $rc" | tee -a "$OUT/summary.txt"
  cat "$OUT/bench-cuda-kernels.log"
  [ $rc -ne 0 ] && status=1
fi

if [ -x "$BUILD/bench/vireo-bench" ]; then
  echo "== vireo-bench" | tee -a "$OUT/summary.txt"
  timeout 60 "$BUILD/bench/vireo-bench" --device cuda > "$OUT/vireo-bench.json" 2> "$OUT/vireo-bench.log"
  echo "vireo-bench exit $?" | tee -a "$OUT/summary.txt"
fi

echo "== done, status $status, files in $OUT" | tee -a "$OUT/summary.txt"
exit $status
