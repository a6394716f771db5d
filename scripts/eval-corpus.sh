#!/usr/bin/env bash
# Calibration and held-out evaluation texts for quantization and perplexity work.
#
#   scripts/eval-corpus.sh [DIR]      (default build-corpus/; prints the two paths)
#
# Source: the PyPI sdist of docutils 0.21.2 (pinned by version and SHA-256), whose docs and
# `docutils` package are dedicated to the public domain by their authors (its COPYING.txt;
# the files chosen here all carry that dedication). English prose (reStructuredText
# documents: PEPs, the FAQ, the reStructuredText primer) and Python code (the package's own
# modules). Two disjoint sets of whole files, concatenated in a fixed order with one blank
# line between files, so the split is deterministic and no file's text appears in both:
#   calibration.txt  PEPs 257 / 258 / 287 (prose) + parsers/rst/roles.py, io.py, core.py (code)
#   evaluation.txt   FAQ.txt + docs/user/rst/quickstart.txt (prose)
#                    + transforms/references.py, transforms/universal.py (code)
# The sha256 of both texts is printed so runs on different machines can be matched.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build-corpus}"
VERSION=0.21.2
SHA=3a6b18732edf182daa3cd12775bbb338cf5691468f91eeeb109deff6ebfa986f
tarball="$dir/docutils-$VERSION.tar.gz"
mkdir -p "$dir"
if ! echo "$SHA  $tarball" | sha256sum -c --status 2>/dev/null; then
  python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$dir" "docutils==$VERSION"
  echo "$SHA  $tarball" | sha256sum -c --status || { echo "eval-corpus: docutils sdist hash mismatch" >&2; exit 1; }
fi
src="$dir/docutils-$VERSION"
[ -d "$src" ] || tar -xzf "$tarball" -C "$dir"

join() {  # join FILES... : the files in order, one blank line between them
  local first=1
  for f in "$@"; do
    [ -f "$src/$f" ] || { echo "eval-corpus: $f missing from the sdist" >&2; exit 1; }
    [ $first -eq 1 ] || printf '\n'
    cat "$src/$f"
    first=0
  done
}
join docs/peps/pep-0257.txt docs/peps/pep-0258.txt docs/peps/pep-0287.txt \
     docutils/parsers/rst/roles.py docutils/io.py docutils/core.py > "$dir/calibration.txt"
join FAQ.txt docs/user/rst/quickstart.txt \
     docutils/transforms/references.py docutils/transforms/universal.py > "$dir/evaluation.txt"
sha256sum "$dir/calibration.txt" "$dir/evaluation.txt" >&2
echo "$dir/calibration.txt"
echo "$dir/evaluation.txt"
