#!/usr/bin/env bash
# The main job: set up, build, and generate text from the default model (SmolLM2-135M).
# Arguments go to vireo-generate (see `build/examples/vireo-generate --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
[ $# -gt 0 ] || set -- "The capital of France is"
exec build/examples/vireo-generate "$@"
