#!/usr/bin/env bash
# Draw the benchmark results under bench/results/ as PNGs beside them (scripts/plot-results.py),
# with matplotlib and numpy from PyPI in a virtual environment at build-plot/venv (git-ignored),
# pinned to the versions the committed PNGs were drawn with, so that a rerun on unchanged JSON
# gives the same files. Arguments go to plot-results.py:
#
#   scripts/plot-results.sh                   # every result outside bench/results/archive
#   scripts/plot-results.sh --list            # what each file is recognised as
#   scripts/plot-results.sh bench/results/h100-2026-11-27-0326-12cb228
#   scripts/plot-results.sh --archive --out /tmp/plots
#
# VIREO_PLOT_PYTHON=python3 uses that interpreter instead (it must have matplotlib and numpy;
# other versions draw the same charts, not the same bytes).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MATPLOTLIB_VERSION=3.11.2
NUMPY_VERSION=2.4.6

py="${VIREO_PLOT_PYTHON:-}"
if [ -z "$py" ]; then
  venv="$root/build-plot/venv"
  py="$venv/bin/python"
  want="import matplotlib, numpy, sys; sys.exit(matplotlib.__version__ != '$MATPLOTLIB_VERSION')"
  if ! { [ -x "$py" ] && "$py" -c "$want" 2>/dev/null; }; then
    echo "plot-results: installing matplotlib $MATPLOTLIB_VERSION and numpy $NUMPY_VERSION into $venv" >&2
    python3 -m venv "$venv" || {
      echo "plot-results: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
      exit 2
    }
    "$py" -m pip install --quiet --disable-pip-version-check \
      "matplotlib==$MATPLOTLIB_VERSION" "numpy==$NUMPY_VERSION"
  fi
fi
exec "$py" "$root/scripts/plot-results.py" "$@"
