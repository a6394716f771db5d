#!/usr/bin/env bash
# llama.cpp's tokenizer test vectors through vireo: every models/ggml-vocab-*.gguf of the
# pinned llama.cpp source, with its .inp/.out cases where it has them, encoded as llama.cpp's
# tests/test-tokenizer-0.cpp does (no BOS/EOS, special tokens not parsed; expected ids from
# each model's Hugging Face tokenizer). Prints per-vocabulary pass counts.
#
#   scripts/tokenizer-vectors.sh
#
# The source is the PyPI sdist of llama-cpp-python (pinned version and sha256, the same as
# scripts/peer-llamacpp.sh; it carries llama.cpp in vendor/llama.cpp). Nothing is vendored:
# an sdist already unpacked under build-peer/ is reused, else it is downloaded into
# build-vocab/ (git-ignored), hash-checked, and only the vocabulary files are extracted.
# The test program (tests/tokenizer_tools/vireo-tokenizer-vectors) is built in
# ${VIREO_BUILD_DIR:-build} (configured here if it is not yet).
#
# Exit status non-zero when a vocabulary vireo loads mismatches on any case, or when a
# vocabulary is refused that is not one of the expected refusals below (vireo has no BERT
# WordPiece or T5 Unigram tokenizer: those two files must be refused with an Error naming
# the tokenizer model, never encoded wrongly).
set -euo pipefail
cd "$(dirname "$0")/.."

LCP_VERSION=0.3.16
LCP_SHA=34ed0f9bd9431af045bb63d9324ae620ad0536653740e9bb163a2e1fcb973be6
EXPECT_REFUSED=bert-bge,nomic-bert-moe
build=${VIREO_BUILD_DIR:-build}
jobs=${VIREO_JOBS:-2}

models=""
for d in build-peer build-vocab; do
  m="$d/llama_cpp_python-$LCP_VERSION/vendor/llama.cpp/models"
  if ls "$m"/ggml-vocab-*.gguf >/dev/null 2>&1; then models=$m; break; fi
done
if [ -z "$models" ]; then
  mkdir -p build-vocab
  tarball="build-vocab/llama_cpp_python-$LCP_VERSION.tar.gz"
  if ! echo "$LCP_SHA  $tarball" | sha256sum -c --status 2>/dev/null; then
    python3 -m pip download --quiet --no-deps --no-binary :all: --dest build-vocab "llama-cpp-python==$LCP_VERSION"
    echo "$LCP_SHA  $tarball" | sha256sum -c --status || { echo "tokenizer-vectors: sdist hash mismatch" >&2; exit 1; }
  fi
  tar -xzf "$tarball" -C build-vocab --wildcards "llama_cpp_python-$LCP_VERSION/vendor/llama.cpp/models/ggml-vocab-*"
  models="build-vocab/llama_cpp_python-$LCP_VERSION/vendor/llama.cpp/models"
fi

[ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$jobs" --target vireo-tokenizer-vectors >/dev/null
echo "tokenizer-vectors: llama.cpp (llama-cpp-python $LCP_VERSION) $models"
"$build/tests/tokenizer_tools/vireo-tokenizer-vectors" --expect-refused "$EXPECT_REFUSED" "$models"/ggml-vocab-*.gguf
