#!/usr/bin/env bash
# Tokenizer speed on long runs of one character (16 MiB of spaces, 'a', newlines, digits,
# 'é', '中', '!', tabs, '<'): each run is a single pre-tokenizer piece, the worst case for the
# merge loop. Prints wall and CPU time per run and a hash of the ids (compare two builds'
# hashes to check they produce the same tokens).
#
#   scripts/tokenizer-bench.sh [--mib N] [--repeats R] [model.gguf...]
#
# Default model: the SmolLM2 file; add e.g. build-vocab/.../ggml-vocab-llama-spm.gguf (from
# scripts/tokenizer-vectors.sh) or models/gemma-3-270m-q4_k_m.gguf. Built in
# ${VIREO_BUILD_DIR:-build}.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${VIREO_BUILD_DIR:-build}
args=()
files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --mib|--repeats) args+=("$1" "$2"); shift 2 ;;
    *) files+=("$1"); shift ;;
  esac
done
[ ${#files[@]} -gt 0 ] || files=(models/SmolLM2-135M-Instruct.Q4_1.gguf)
[ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"${VIREO_JOBS:-2}" --target vireo-tokenizer-runs >/dev/null
echo "tokenizer-bench: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
"$build/tests/tokenizer_tools/vireo-tokenizer-runs" ${args[@]+"${args[@]}"} "${files[@]}"
