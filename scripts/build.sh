#!/usr/bin/env bash
# Configure and build vireo into build/ (Release). The CUDA backend is built when nvcc is
# found, for one architecture to keep the build short: $VIREO_CUDA_ARCHS if set, else the
# GPU of this machine ("native") when nvidia-smi sees one, else sm_90. (CMake's own default,
# for builds that do not go through this script, is 80;86;89;90.) Extra arguments go to
# cmake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${VIREO_JOBS:-$(nproc)}
[ "$jobs" -gt 2 ] || jobs=2
archs=${VIREO_CUDA_ARCHS:-}
if [ -z "$archs" ]; then
  if nvidia-smi -L >/dev/null 2>&1; then archs=native; else archs=90; fi
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$archs" "$@" >/dev/null
cmake --build build -j"$jobs"
