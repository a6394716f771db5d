#!/usr/bin/env bash
# CTest `cli`: runs the built vireo-generate with bad option values and a model path that is
# not a regular file, and checks that each run fails (non-zero exit, within a time limit)
# with a message naming the option (or path) and the offending value. These are the silent
# mistakes a probe found: `-n 1e12` generating one token, `-n abc` printing only "stoi",
# `--device bogus` meaning "best", `--lookup -1` turning lookup off, `-m fifo` hanging.
# usage: check_generate_options.sh path/to/vireo-generate
set -uo pipefail
bin=${1:?usage: $0 path/to/vireo-generate}
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect_fail "what must appear in stderr" args...
expect_fail() {
  local want=$1
  shift
  local err rc
  err=$(timeout 20 "$bin" "$@" 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" -eq 124 ]; then
    echo "FAIL: vireo-generate $* did not finish within 20 s"
    fails=$((fails + 1))
  elif [ "$rc" -eq 0 ]; then
    echo "FAIL: vireo-generate $* exited 0 (stderr: $err)"
    fails=$((fails + 1))
  elif [[ "$err" != *"$want"* ]]; then
    echo "FAIL: vireo-generate $* (exit $rc) did not say '$want'; it said: $err"
    fails=$((fails + 1))
  else
    echo "ok: vireo-generate $* -> exit $rc: ${err%%$'\n'*}"
  fi
}

expect_fail "-n '1e12'" -n 1e12
expect_fail "-n 'abc'" -n abc
expect_fail "-n '99999999999999999999'" -n 99999999999999999999
expect_fail "-n '-3'" -n -3
expect_fail "--tokens '12x'" --tokens 12x
expect_fail "--tokens ''" --tokens ""
expect_fail "missing value after -n" -n
expect_fail "--device 'bogus'" --device bogus
expect_fail "--lookup '-1'" --lookup -1
expect_fail "--lookup '17'" --lookup 17
expect_fail "--temp 'nan'" --temp nan
expect_fail "--temp '-1'" --temp -1
expect_fail "--temp 'inf'" --temp inf
expect_fail "--top-p '0'" --top-p 0
expect_fail "--top-p '1.5'" --top-p 1.5
expect_fail "--min-p '-0.1'" --min-p -0.1
expect_fail "--top-k '-1'" --top-k -1
expect_fail "--repeat-penalty '0'" --repeat-penalty 0
expect_fail "--seed '-1'" --seed -1
expect_fail "--seed '18446744073709551616'" --seed 18446744073709551616
expect_fail "-t 'two'" -t two
expect_fail "--threads '-2'" --threads -2
expect_fail "--gpu-weights" --gpu-weights bogus
expect_fail "--cpu-activations" --cpu-activations q4
expect_fail "unknown option '--bogus'" --bogus

# A model path that is not a regular file: a FIFO (opening it used to wait for a writer
# forever), a directory, a character device, a missing file.
mkfifo "$tmp/model.fifo"
expect_fail "$tmp/model.fifo" -m "$tmp/model.fifo" -n 1
expect_fail "not a regular file" -m "$tmp/model.fifo" -n 1
expect_fail "$tmp" -m "$tmp" -n 1
expect_fail "/dev/null" -m /dev/null -n 1
expect_fail "$tmp/missing.gguf" -m "$tmp/missing.gguf" -n 1

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all vireo-generate option checks passed"
