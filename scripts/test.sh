#!/usr/bin/env bash
# The test command of the README: set up, build, and run every CTest group (unit, golden,
# slow; cuda tests skip themselves without a GPU). The golden group also checks Gemma 3
# 270M, fetched here (scripts/fetch-gemma.sh) beside the default model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/fetch-gemma.sh
scripts/build.sh
cd build && ctest --output-on-failure "$@"
