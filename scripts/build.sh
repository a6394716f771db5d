#!/usr/bin/env bash
# Configure and build vireo into build/ (Release). The CUDA backend is built when nvcc is
# found (one architecture, sm_90, unless CMAKE_CUDA_ARCHITECTURES is set); extra arguments
# go to cmake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${VIREO_JOBS:-$(nproc)}
[ "$jobs" -gt 2 ] || jobs=2
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$jobs"
