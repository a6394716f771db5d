#!/usr/bin/env bash
# CI step: the threaded tests under ThreadSanitizer. Builds build-tsan (CPU only, no
# benchmarks or examples, -fsanitize=thread) and runs vireo-thread-tests: one Model shared
# by threads with their own caches, the thread pool driven from several threads, logging
# from several threads, cancellation from another thread (tests/test_threads.cpp). A data
# race or a failed test fails the step.
set -euo pipefail
cd "$(dirname "$0")/../.."
jobs=${VIREO_JOBS:-2}
t0=$(date +%s)
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIREO_CUDA=OFF -DVIREO_BUILD_BENCH=OFF \
  -DVIREO_BUILD_EXAMPLES=OFF -DVIREO_INSTALL=OFF -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" >/dev/null
cmake --build build-tsan -j"$jobs" --target vireo-thread-tests >build-tsan/build.log 2>&1 ||
  { tail -60 build-tsan/build.log; exit 1; }
echo "== TSan build: $(( $(date +%s) - t0 )) s"
t1=$(date +%s)
TSAN_OPTIONS="halt_on_error=1 abort_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
  build-tsan/tests/vireo-thread-tests "[threads],[pool]"
echo "== TSan run: $(( $(date +%s) - t1 )) s"
