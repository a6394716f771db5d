#!/usr/bin/env bash
# CI step: vireo-server on the loopback interface, driven by the official `openai` Python
# client and raw HTTP (tests/python/test_server.py): completions and chat, streaming and not,
# greedy output cross-checked with vireo-generate, stop strings, errors (400/404/413/429),
# a client disconnect cancelling its request, and a clean SIGTERM shutdown. Needs build/
# from scripts/build.sh with the examples (scripts/setup.sh installs cpp-httplib and
# nlohmann-json, without which vireo-server is not built, and this step fails).
set -euo pipefail
cd "$(dirname "$0")/../.."
t0=$(date +%s)
server=build/examples/vireo-server/vireo-server
generate=build/examples/vireo-generate
model=${VIREO_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
for f in "$server" "$generate" "$model"; do
  [ -e "$f" ] || { echo "server.sh: $f is missing (run scripts/setup.sh and scripts/build.sh)" >&2; exit 1; }
done
# The openai client: the one installed, else a pinned copy in build/ (pip --target, as
# fetch-gemma.sh does, so a system Python that refuses global installs works too).
deps=build/python-openai
if ! python3 -c "import openai" 2>/dev/null; then
  export PYTHONPATH="$PWD/$deps${PYTHONPATH:+:$PYTHONPATH}"
  if ! python3 -c "import openai" 2>/dev/null; then
    echo "server.sh: installing the openai client (pip --target $deps)"
    python3 -m pip install --quiet --no-compile --target "$deps" "openai==3.63.0"
  fi
fi
python3 -c "import openai; print('openai client', openai.__version__)"
python3 tests/python/test_server.py "$server" "$generate" "$model"
echo "== server step: $(( $(date +%s) - t0 )) s"
